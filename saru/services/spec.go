package services

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/saru-lb/saru/filter/bucket"

	"github.com/saru-lb/saru/saru/ipvs"
)

// Spec is one virtual service to hold in IPVS: its identity, typed (a VIP,
// port and protocol, or a firewall mark and family), and its IPVS options.
// saru/config builds one from each configured service (two for protocol
// "both").
type Spec struct {
	ID ipvs.ServiceID
	Options
}

// Options are a virtual service's IPVS options as an operator writes them
// in saru's configuration:
//
//	services:
//	  - vip: 192.0.2.10
//	    port: 80
//	    name: web
//	    scheduler: wrr
//	    persistence_timeout: 300
//	    persistence_netmask: 255.255.255.0
//	    forwarding: masq
//	    real_servers:
//	      - {address: 10.0.1.1:8080, weight: 3}
//	      - {address: 10.0.1.2:8080, weight: 0}   # quiescent
type Options struct {
	// Name labels the service in errors and listings; optional.
	Name string `yaml:"name,omitempty"`
	// Scheduler is rr, wrr, lc, wlc (default), lblc, lblcr, dh, sh, sed, nq,
	// mh, fo or ovf.
	Scheduler string `yaml:"scheduler,omitempty"`
	// SchedulerFlags: sh-fallback, sh-port (with sh), mh-fallback, mh-port
	// (with mh).
	SchedulerFlags []string `yaml:"scheduler_flags,omitempty"`
	// OnePacket schedules every UDP datagram on its own (ipvsadm -o).
	OnePacket bool `yaml:"one_packet,omitempty"`
	// PersistenceTimeout in seconds makes the service persistent
	// (1..2678400); 0 is not persistent.
	PersistenceTimeout int64 `yaml:"persistence_timeout,omitempty"`
	// PersistenceNetmask groups clients: an IPv4 mask ("255.255.255.0") or a
	// prefix length ("/24", "24"; for IPv6 1..128).
	PersistenceNetmask string `yaml:"persistence_netmask,omitempty"`
	// Forwarding is the default for the real servers: route (default; also
	// dr, gate), masq (nat) or tunnel (tun, ipip).
	Forwarding string `yaml:"forwarding,omitempty"`
	// RealServers behind the service.
	RealServers []RealServerConfig `yaml:"real_servers,omitempty"`
}

// RealServerConfig is one real server of a virtual service.
type RealServerConfig struct {
	// Address is "10.0.1.1:8080", or "10.0.1.1" for the service's port.
	Address string `yaml:"address" json:"address"`
	// Weight is 0..2147483647, default 1; 0 is quiescent.
	Weight *int64 `yaml:"weight,omitempty" json:"weight,omitempty"`
	// Forwarding overrides the service's.
	Forwarding string `yaml:"forwarding,omitempty" json:"forwarding,omitempty"`
	// UpperThreshold caps active connections (0 = none); LowerThreshold
	// re-enables a capped server (0 = none).
	UpperThreshold int64 `yaml:"upper_threshold,omitempty" json:"upper_threshold,omitempty"`
	LowerThreshold int64 `yaml:"lower_threshold,omitempty" json:"lower_threshold,omitempty"`
}

// FieldError is a configuration error at a field.
type FieldError struct {
	Field string // e.g. "services[1].real_servers[0].weight"
	Err   error
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Err.Error() }
func (e *FieldError) Unwrap() error { return e.Err }

// Desired validates the specs and returns the IPVS table they describe,
// sorted by service and destination address. prefix names the list in
// errors (e.g. "services"). Every error is collected; nothing is
// half-valid.
func Desired(prefix string, specs []Spec) ([]ipvs.Entry, error) {
	var errs []error
	out := make([]ipvs.Entry, 0, len(specs))
	seen := map[ipvs.ServiceID]string{}
	for i, c := range specs {
		field := fmt.Sprintf("%s[%d]", prefix, i)
		e, err := c.entry(field)
		if err != nil {
			errs = append(errs, err...)
			continue
		}
		key := e.Service.Key()
		if prev, dup := seen[key]; dup {
			errs = append(errs, &FieldError{Field: field, Err: fmt.Errorf("service %s is already defined by %s", key, prev)})
			continue
		}
		seen[key] = field
		out = append(out, e)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	sortEntries(out)
	return out, nil
}

func sortEntries(es []ipvs.Entry) {
	slices.SortFunc(es, func(a, b ipvs.Entry) int { return a.Service.Compare(b.Service.ServiceID) })
	for _, e := range es {
		slices.SortFunc(e.Destinations, func(a, b ipvs.Destination) int { return a.Address.Compare(b.Address) })
	}
}

// Entry validates one service and returns its IPVS entry, destinations
// sorted by address. field names the service in errors (e.g. "services[2]");
// the error joins a [*FieldError] for every bad field.
func (c Spec) Entry(field string) (ipvs.Entry, error) {
	e, errs := c.entry(field)
	if len(errs) > 0 {
		return ipvs.Entry{}, errors.Join(errs...)
	}
	slices.SortFunc(e.Destinations, func(a, b ipvs.Destination) int { return a.Address.Compare(b.Address) })
	return e, nil
}

// entry validates one service; it returns every error found.
func (c Spec) entry(field string) (ipvs.Entry, []error) {
	var errs []error
	fail := func(f string, format string, args ...any) {
		errs = append(errs, &FieldError{Field: field + "." + f, Err: fmt.Errorf(format, args...)})
	}
	svc := ipvs.Service{ServiceID: c.ID}
	if err := c.ID.Validate(); err != nil {
		errs = append(errs, &FieldError{Field: field, Err: err})
	} else if !c.ID.IsFWMark() && c.ID.Address.Port() == 0 && c.PersistenceTimeout == 0 {
		fail("address", "port 0 (all ports) needs persistence_timeout, as in ipvsadm")
	}
	if len(errs) > 0 {
		return ipvs.Entry{}, errs
	}
	name := svc.ServiceID.String()
	if c.Name != "" {
		name = c.Name + " (" + name + ")"
	}
	// From here on, errors say which service they are about.
	failS := func(f string, format string, args ...any) {
		errs = append(errs, &FieldError{Field: field + "." + f, Err: fmt.Errorf("service %s: %s", name, fmt.Sprintf(format, args...))})
	}

	svc.Scheduler = ipvs.DefaultScheduler
	if c.Scheduler != "" {
		if !ipvs.KnownScheduler(c.Scheduler) {
			failS("scheduler", "unknown scheduler %q (want one of %s)", c.Scheduler, strings.Join(ipvs.Schedulers(), ", "))
		}
		svc.Scheduler = c.Scheduler
	}
	for _, f := range c.SchedulerFlags {
		sched, which, ok := strings.Cut(f, "-")
		if !ok || (sched != "sh" && sched != "mh") || (which != "fallback" && which != "port") {
			failS("scheduler_flags", "unknown scheduler flag %q (want sh-fallback, sh-port, mh-fallback or mh-port)", f)
			continue
		}
		if sched != svc.Scheduler {
			failS("scheduler_flags", "flag %q needs scheduler %s, not %s", f, sched, svc.Scheduler)
			continue
		}
		if which == "fallback" {
			svc.Flags |= ipvs.FlagSched1
		} else {
			svc.Flags |= ipvs.FlagSched2
		}
	}
	if c.OnePacket {
		if svc.Protocol != bucket.UDP && !svc.IsFWMark() {
			failS("one_packet", "one-packet scheduling applies to udp services only")
		}
		svc.Flags |= ipvs.FlagOnePacket
	}
	if c.PersistenceTimeout < 0 || c.PersistenceTimeout > ipvs.MaxPersistence {
		failS("persistence_timeout", "%d out of range (0..%d seconds)", c.PersistenceTimeout, ipvs.MaxPersistence)
	} else {
		svc.Timeout = uint32(c.PersistenceTimeout)
	}
	fam := svc.Key().Family
	switch {
	case c.PersistenceNetmask != "" && c.PersistenceTimeout == 0:
		failS("persistence_netmask", "%q set without persistence_timeout", c.PersistenceNetmask)
	case c.PersistenceNetmask != "":
		bits, err := parseNetmask(c.PersistenceNetmask, fam)
		if err != nil {
			failS("persistence_netmask", "%v", err)
		}
		svc.NetmaskBits = bits
	}
	if svc.NetmaskBits == 0 {
		svc.NetmaskBits = 32
		if fam == ipvs.FamilyIPv6 {
			svc.NetmaskBits = 128
		}
	}
	if svc.Timeout != 0 {
		svc.Flags |= ipvs.FlagPersistent
	}
	defFwd := ipvs.ForwardRoute
	if c.Forwarding != "" {
		f, err := ipvs.ParseForwardMethod(c.Forwarding)
		if err != nil {
			failS("forwarding", "%v", err)
		}
		defFwd = f
	}

	dests := make([]ipvs.Destination, 0, len(c.RealServers))
	seen := map[netip.AddrPort]int{}
	for j, rs := range c.RealServers {
		rf := fmt.Sprintf("real_servers[%d]", j)
		d, derrs := rs.destination(svc.ServiceID, defFwd)
		for _, e := range derrs {
			failS(rf+"."+e.Field, "%v", e.Err)
		}
		if len(derrs) > 0 {
			continue
		}
		if prev, dup := seen[d.Address]; dup {
			failS(rf+".address", "real server %s is already listed as real_servers[%d]", d.Address, prev)
			continue
		}
		seen[d.Address] = j
		dests = append(dests, d)
	}
	if len(errs) > 0 {
		return ipvs.Entry{}, errs
	}
	// The kernel-facing checks, as a last guard.
	if err := svc.Validate(); err != nil {
		return ipvs.Entry{}, []error{&FieldError{Field: field, Err: err}}
	}
	for j, d := range dests {
		if err := d.Validate(svc.ServiceID); err != nil {
			return ipvs.Entry{}, []error{&FieldError{Field: fmt.Sprintf("%s.real_servers[%d]", field, j), Err: err}}
		}
	}
	return ipvs.Entry{Service: svc, Destinations: dests}, nil
}

// parseNetmask accepts an IPv4 mask or a prefix length.
func parseNetmask(s string, fam ipvs.Family) (int, error) {
	max := 32
	if fam == ipvs.FamilyIPv6 {
		max = 128
	}
	if n, err := strconv.Atoi(strings.TrimPrefix(s, "/")); err == nil {
		if n < 1 || n > max {
			return 0, fmt.Errorf("prefix length %q out of range (1..%d for %s)", s, max, fam)
		}
		return n, nil
	}
	if fam == ipvs.FamilyIPv6 {
		return 0, fmt.Errorf("%q: an IPv6 service takes a prefix length (1..128)", s)
	}
	a, err := netip.ParseAddr(s)
	if err != nil || !a.Is4() {
		return 0, fmt.Errorf("%q is neither an IPv4 netmask nor a prefix length", s)
	}
	b := a.As4()
	m := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	ones := 0
	for ones < 32 && m&(1<<(31-ones)) != 0 {
		ones++
	}
	if ones == 0 || (ones < 32 && m<<ones != 0) {
		return 0, fmt.Errorf("netmask %s is not a contiguous mask of at least one bit", s)
	}
	return ones, nil
}

// destination validates one real server. Errors carry the field below the
// real server ("weight", "address", ...).
func (rs RealServerConfig) destination(svc ipvs.ServiceID, defFwd ipvs.ForwardMethod) (ipvs.Destination, []*FieldError) {
	var errs []*FieldError
	fail := func(f, format string, args ...any) {
		errs = append(errs, &FieldError{Field: f, Err: fmt.Errorf(format, args...)})
	}
	var d ipvs.Destination
	switch {
	case rs.Address == "":
		fail("address", "required")
	default:
		if ap, err := netip.ParseAddrPort(rs.Address); err == nil {
			d.Address = ap
		} else if a, err := netip.ParseAddr(rs.Address); err == nil {
			d.Address = netip.AddrPortFrom(a, svc.Address.Port())
		} else {
			fail("address", "%q is neither address:port nor an address", rs.Address)
		}
	}
	d.Forward = defFwd
	if rs.Forwarding != "" {
		f, err := ipvs.ParseForwardMethod(rs.Forwarding)
		if err != nil {
			fail("forwarding", "%v", err)
		}
		d.Forward = f
	}
	d.Weight = 1
	if rs.Weight != nil {
		if *rs.Weight < 0 || *rs.Weight > ipvs.MaxWeight {
			fail("weight", "%d out of range (0..%d)", *rs.Weight, ipvs.MaxWeight)
		} else {
			d.Weight = int32(*rs.Weight)
		}
	}
	if rs.UpperThreshold < 0 || rs.UpperThreshold > 1<<32-1 {
		fail("upper_threshold", "%d out of range (0..%d)", rs.UpperThreshold, uint32(1<<32-1))
	} else {
		d.UpperThreshold = uint32(rs.UpperThreshold)
	}
	if rs.LowerThreshold < 0 || rs.LowerThreshold > 1<<32-1 {
		fail("lower_threshold", "%d out of range (0..%d)", rs.LowerThreshold, uint32(1<<32-1))
	} else {
		d.LowerThreshold = uint32(rs.LowerThreshold)
	}
	if len(errs) > 0 {
		return d, errs
	}
	a := d.Address.Addr()
	if a.Is4In6() || a.Zone() != "" {
		fail("address", "%s: use a plain IPv4 or IPv6 address", rs.Address)
	}
	if a.IsUnspecified() || a.IsMulticast() || a == netip.AddrFrom4([4]byte{255, 255, 255, 255}) {
		fail("address", "%s: a real server needs a unicast address", rs.Address)
	}
	if f := ipvs.FamilyOf(a); f != svc.Key().Family && d.Forward != ipvs.ForwardTunnel {
		fail("address", "%s is %s but the service is %s (only tunnel forwarding may mix families)", a, f, svc.Key().Family)
	}
	if d.LowerThreshold > d.UpperThreshold && d.UpperThreshold != 0 {
		fail("lower_threshold", "%d above upper_threshold %d", d.LowerThreshold, d.UpperThreshold)
	}
	if d.Forward == ipvs.ForwardMasq && d.Address.Port() == 0 && !svc.IsFWMark() && svc.Address.Port() != 0 {
		fail("address", "%s: masq forwarding needs a real server port", rs.Address)
	}
	return d, errs
}
