package bucket

import (
	"fmt"
	"strconv"
	"strings"
)

// Protocol is an IP protocol number, as the IP header and the kernel carry
// it.
type Protocol uint8

// Protocols saru meets: virtual services speak TCP, UDP or SCTP, and the
// filter splits ICMP echo requests.
const (
	ICMP   Protocol = 1
	TCP    Protocol = 6
	UDP    Protocol = 17
	ICMPv6 Protocol = 58
	SCTP   Protocol = 132
)

// String returns the protocol's name ("tcp", "udp", "sctp", "icmp",
// "icmpv6"), or its number.
func (p Protocol) String() string {
	switch p {
	case ICMP:
		return "icmp"
	case TCP:
		return "tcp"
	case UDP:
		return "udp"
	case ICMPv6:
		return "icmpv6"
	case SCTP:
		return "sctp"
	}
	return strconv.Itoa(int(p))
}

// ParseProtocol parses a protocol name as String writes it, in any case.
func ParseProtocol(s string) (Protocol, error) {
	for _, p := range []Protocol{TCP, UDP, SCTP, ICMP, ICMPv6} {
		if strings.EqualFold(s, p.String()) {
			return p, nil
		}
	}
	return 0, fmt.Errorf("unknown protocol %q (want tcp, udp, sctp, icmp or icmpv6)", s)
}
