package bucket

import (
	"fmt"
	"strings"
)

// Sense is what a packet's bucket is computed from, as the seed's
// `-m saru --sense` option. The zero value is SrcPort, the seed's default.
type Sense uint8

// Senses. The order is the API's (saru.v1.Sense is one more, its zero being
// "unspecified").
const (
	// SrcPort: source port & (B-1). The default.
	SrcPort Sense = iota
	// DstPort: destination port & (B-1).
	DstPort
	// SrcAddr: jhash(source address) scaled to B.
	SrcAddr
	// DstAddr: jhash(destination address) scaled to B.
	DstAddr
	// SrcAddrPort: jhash(source address . source port) scaled to B.
	SrcAddrPort
	numSenses
)

// EchoSense splits ICMP echo requests to a VIP, whatever the services'
// senses, as the seed's rules do.
const EchoSense = SrcAddr

// senseNames are the configuration names, indexed by Sense.
var senseNames = [numSenses]string{
	SrcPort:     "src-port",
	DstPort:     "dst-port",
	SrcAddr:     "src-addr",
	DstAddr:     "dst-addr",
	SrcAddrPort: "src-addr+src-port",
}

// Senses returns every sense, in order.
func Senses() []Sense {
	out := make([]Sense, numSenses)
	for i := range out {
		out[i] = Sense(i)
	}
	return out
}

// Valid reports whether s is one of Senses.
func (s Sense) Valid() bool { return s < numSenses }

// String returns the sense's configuration name, e.g. "src-port".
func (s Sense) String() string {
	if s.Valid() {
		return senseNames[s]
	}
	return fmt.Sprintf("sense(%d)", uint8(s))
}

// SenseNames lists the configuration names for messages:
// "src-port, dst-port, src-addr, dst-addr or src-addr+src-port".
func SenseNames() string {
	n := senseNames[:]
	return strings.Join(n[:len(n)-1], ", ") + " or " + n[len(n)-1]
}

// ParseSense parses a configuration name; "" is the default, src-port.
func ParseSense(name string) (Sense, error) {
	if name == "" {
		return SrcPort, nil
	}
	for s, n := range senseNames {
		if n == name {
			return Sense(s), nil
		}
	}
	return 0, fmt.Errorf("unknown sense %q (want %s)", name, SenseNames())
}
