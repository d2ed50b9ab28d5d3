package filter

import (
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"slices"

	"github.com/saru-lb/saru/filter/bucket"
)

// Service is one virtual service on a VIP.
type Service struct {
	VIP       netip.Addr        // IPv4 or IPv6 virtual address (no zone)
	Protocols []bucket.Protocol // bucket.TCP, bucket.UDP or both
	Port      uint16            // destination port; 0 means every port
	Sense     bucket.Sense      // what the bucket is computed from
}

// NATConfig turns on the LVS-NAT rules: the real servers sit in RealServers
// and use the directors as their gateway.
type NATConfig struct {
	RealServers []netip.Prefix
}

// Config describes the ruleset of one director. Every director of a cluster
// must use the same Buckets, Seed and Services, or they disagree about who
// owns a packet.
type Config struct {
	// Table is the name of the inet table saru owns; empty means DefaultTable.
	Table string
	// Buckets is the number of buckets B: a power of two from bucket.Min
	// to bucket.Max.
	Buckets int
	// Seed is the cluster-wide jhash seed. It must not be zero: the kernel
	// picks a random seed per rule when none is given, and google/nftables
	// does not send a zero seed.
	Seed uint32
	// Services are the virtual services to filter; at least one.
	Services []Service
	// NAT, when set, adds the LVS-NAT forward and masquerade rules.
	NAT *NATConfig
}

// DefaultTable is the table saru owns unless Config.Table says otherwise.
const DefaultTable = "saru"

var tableNameRE = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_-]{0,63}$`)

// FieldError is a configuration error naming the offending field.
type FieldError struct {
	Field string // e.g. "services[2].vip"
	Value string // the offending value as text
	Msg   string
}

func (e *FieldError) Error() string {
	return fmt.Sprintf("%s: invalid value %s: %s", e.Field, e.Value, e.Msg)
}

func fieldErr(field string, value any, format string, a ...any) error {
	return &FieldError{Field: field, Value: fmt.Sprintf("%q", fmt.Sprint(value)), Msg: fmt.Sprintf(format, a...)}
}

// TableName returns the table name in effect (DefaultTable when unset).
func (c Config) TableName() string {
	if c.Table == "" {
		return DefaultTable
	}
	return c.Table
}

// Validate checks c and returns every problem found, each a *FieldError.
func (c Config) Validate() error {
	var errs []error
	if c.Table != "" && !tableNameRE.MatchString(c.Table) {
		errs = append(errs, fieldErr("table", c.Table, "want a letter then up to 63 letters, digits, '_' or '-'"))
	}
	if bucket.CheckCount(c.Buckets) != nil {
		errs = append(errs, fieldErr("buckets", c.Buckets, "want a power of two from %d to %d", bucket.Min, bucket.Max))
	}
	if c.Seed == 0 {
		errs = append(errs, fieldErr("seed", c.Seed, "must be non-zero (a zero seed lets the kernel pick a random one per rule)"))
	}
	if len(c.Services) == 0 {
		errs = append(errs, fieldErr("services", "[]", "at least one service is required"))
	}
	type key struct {
		vip   netip.Addr
		proto bucket.Protocol
		port  uint16
	}
	seen := map[key]int{}
	for i, s := range c.Services {
		f := fmt.Sprintf("services[%d]", i)
		switch {
		case !s.VIP.IsValid():
			errs = append(errs, fieldErr(f+".vip", s.VIP, "want an IPv4 or IPv6 address"))
		case s.VIP.Zone() != "":
			errs = append(errs, fieldErr(f+".vip", s.VIP, "a VIP has no zone"))
		case s.VIP.Is4In6():
			errs = append(errs, fieldErr(f+".vip", s.VIP, "write an IPv4 VIP in dotted form"))
		case s.VIP.IsUnspecified() || s.VIP.IsMulticast() || s.VIP.IsLoopback() || s.VIP.IsLinkLocalUnicast() || s.VIP == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
			errs = append(errs, fieldErr(f+".vip", s.VIP, "want a unicast, non-loopback, non-link-local address"))
		}
		if !validProtocols(s.Protocols) {
			errs = append(errs, fieldErr(f+".protocol", s.Protocols, "want tcp, udp or both"))
		}
		if !s.Sense.Valid() {
			errs = append(errs, fieldErr(f+".sense", s.Sense, "want %s", bucket.SenseNames()))
		}
		if s.Port != 0 && s.Sense == bucket.DstPort {
			errs = append(errs, fieldErr(f+".port", s.Port, "sense dst-port on a single-port service puts every packet in one bucket; use port 0 (all ports) or another sense"))
		}
		for _, p := range s.Protocols {
			k := key{s.VIP, p, s.Port}
			if j, dup := seen[k]; dup && s.VIP.IsValid() {
				errs = append(errs, fieldErr(f, fmt.Sprintf("%s %s/%d", s.VIP, p, s.Port), "duplicates services[%d]", j))
				continue
			}
			seen[k] = i
		}
	}
	if c.NAT != nil {
		if len(c.NAT.RealServers) == 0 {
			errs = append(errs, fieldErr("nat.real_servers", "[]", "at least one real-server prefix is required in NAT mode"))
		}
		for i, p := range c.NAT.RealServers {
			f := fmt.Sprintf("nat.real_servers[%d]", i)
			switch {
			case !p.IsValid():
				errs = append(errs, fieldErr(f, p, "want a prefix such as 192.168.6.0/24"))
			case p != p.Masked():
				errs = append(errs, fieldErr(f, p, "host bits set (want %s)", p.Masked()))
			case p.Addr().Is4In6() || p.Addr().Zone() != "":
				errs = append(errs, fieldErr(f, p, "write IPv4 prefixes in dotted form, without zone"))
			case p.Bits() == 0:
				errs = append(errs, fieldErr(f, p, "a default route is not a real-server network"))
			}
			for _, s := range c.Services {
				if p.IsValid() && s.VIP.IsValid() && p.Contains(s.VIP) {
					errs = append(errs, fieldErr(f, p, "contains VIP %s", s.VIP))
				}
			}
		}
	}
	return errors.Join(errs...)
}

// vips returns the distinct VIPs in configuration order.
func (c Config) vips() []netip.Addr {
	var out []netip.Addr
	for _, s := range c.Services {
		if !slices.Contains(out, s.VIP) {
			out = append(out, s.VIP)
		}
	}
	return out
}

// validProtocols reports whether ps is tcp, udp or both, each once.
func validProtocols(ps []bucket.Protocol) bool {
	switch len(ps) {
	case 1:
		return ps[0] == bucket.TCP || ps[0] == bucket.UDP
	case 2:
		return ps[0] != ps[1] && validProtocols(ps[:1]) && validProtocols(ps[1:])
	}
	return false
}
