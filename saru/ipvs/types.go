package ipvs

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/saru-lb/saru/filter/bucket"
)

// Family is an address family, as the kernel numbers it.
type Family uint16

// Address families.
const (
	FamilyUnspec Family = 0
	FamilyIPv4   Family = 2  // AF_INET
	FamilyIPv6   Family = 10 // AF_INET6
)

// FamilyOf returns the family of an address.
func FamilyOf(a netip.Addr) Family {
	switch {
	case a.Is4():
		return FamilyIPv4
	case a.Is6() && !a.Is4In6():
		return FamilyIPv6
	}
	return FamilyUnspec
}

func (f Family) String() string {
	switch f {
	case FamilyIPv4:
		return "inet"
	case FamilyIPv6:
		return "inet6"
	}
	return fmt.Sprintf("family(%d)", uint16(f))
}

// Protocol is the IP protocol a virtual service balances: package bucket's
// (netlink carries it in 16 bits; the codec converts).
type Protocol = bucket.Protocol

// ParseProtocol parses "tcp", "udp" or "sctp", in any case.
func ParseProtocol(s string) (Protocol, error) {
	p, err := bucket.ParseProtocol(s)
	if err != nil || (p != bucket.TCP && p != bucket.UDP && p != bucket.SCTP) {
		return 0, fmt.Errorf("unknown protocol %q (want tcp, udp or sctp)", s)
	}
	return p, nil
}

// Schedulers are the IPVS schedulers the kernel ships, by module suffix.
func Schedulers() []string {
	return []string{"rr", "wrr", "lc", "wlc", "lblc", "lblcr", "dh", "sh", "sed", "nq", "mh", "fo", "ovf"}
}

// DefaultScheduler is ipvsadm's default.
const DefaultScheduler = "wlc"

// KnownScheduler reports whether name is one of [Schedulers].
func KnownScheduler(name string) bool { return slices.Contains(Schedulers(), name) }

// ServiceFlags are IPVS virtual service flags.
type ServiceFlags uint32

// Service flags (IP_VS_SVC_F_*).
const (
	FlagPersistent ServiceFlags = 0x0001
	FlagHashed     ServiceFlags = 0x0002 // set by the kernel
	FlagOnePacket  ServiceFlags = 0x0004
	FlagSched1     ServiceFlags = 0x0008 // sh-fallback, mh-fallback
	FlagSched2     ServiceFlags = 0x0010 // sh-port, mh-port
	FlagSched3     ServiceFlags = 0x0020
)

// Names lists the flags by name: persistent, hashed, one-packet, and the
// scheduler flags named for sched ("sh-fallback", "mh-port", ...; "sched1"..
// "sched3" for other schedulers).
func (f ServiceFlags) Names(sched string) []string {
	var n []string
	add := func(bit ServiceFlags, name string) {
		if f&bit != 0 {
			n = append(n, name)
		}
	}
	add(FlagPersistent, "persistent")
	add(FlagHashed, "hashed")
	add(FlagOnePacket, "one-packet")
	switch sched {
	case "sh", "mh":
		add(FlagSched1, sched+"-fallback")
		add(FlagSched2, sched+"-port")
		add(FlagSched3, "sched3")
	default:
		add(FlagSched1, "sched1")
		add(FlagSched2, "sched2")
		add(FlagSched3, "sched3")
	}
	return n
}

// ForwardMethod is how the director passes packets to a real server.
type ForwardMethod uint32

// Forwarding methods (IP_VS_CONN_F_*).
const (
	ForwardMasq   ForwardMethod = 0 // NAT
	ForwardLocal  ForwardMethod = 1 // the director itself
	ForwardTunnel ForwardMethod = 2 // IP-in-IP
	ForwardRoute  ForwardMethod = 3 // direct routing
	ForwardBypass ForwardMethod = 4
)

func (m ForwardMethod) String() string {
	switch m {
	case ForwardMasq:
		return "masq"
	case ForwardLocal:
		return "local"
	case ForwardTunnel:
		return "tunnel"
	case ForwardRoute:
		return "route"
	case ForwardBypass:
		return "bypass"
	}
	return fmt.Sprintf("forward(%d)", uint32(m))
}

// ParseForwardMethod accepts ipvsadm's and ldirectord's names: masq, nat,
// masquerading; route, dr, gate, gatewaying, direct; tunnel, tun, ipip.
func ParseForwardMethod(s string) (ForwardMethod, error) {
	switch strings.ToLower(s) {
	case "masq", "nat", "masquerading", "m":
		return ForwardMasq, nil
	case "route", "dr", "gate", "gatewaying", "direct", "g":
		return ForwardRoute, nil
	case "tunnel", "tun", "ipip", "i":
		return ForwardTunnel, nil
	}
	return 0, fmt.Errorf("unknown forwarding method %q (want masq, route or tunnel)", s)
}

// ServiceID identifies a virtual service: protocol, address and port, or a
// firewall mark (with the family of the addresses it balances).
type ServiceID struct {
	Family   Family         // must match Address when set; required with FWMark
	Protocol Protocol       // zero for a fwmark service
	Address  netip.AddrPort // zero for a fwmark service
	FWMark   uint32         // zero for an address service
}

// IsFWMark reports whether the service is selected by firewall mark.
func (id ServiceID) IsFWMark() bool { return id.FWMark != 0 }

// family returns the explicit family or the address's.
func (id ServiceID) family() Family {
	if id.Family != FamilyUnspec {
		return id.Family
	}
	return FamilyOf(id.Address.Addr())
}

// String names the service as ipvsadm's options would: "tcp 10.0.0.1:80",
// "udp [2001:db8::1]:53", "fwmark 7 inet".
func (id ServiceID) String() string {
	if id.IsFWMark() {
		return fmt.Sprintf("fwmark %d %s", id.FWMark, id.family())
	}
	return id.Protocol.String() + " " + id.Address.String()
}

// Compare orders services: address services by family, protocol, address and
// port, then fwmark services by family and mark.
func (id ServiceID) Compare(o ServiceID) int {
	if a, b := id.IsFWMark(), o.IsFWMark(); a != b {
		if a {
			return 1
		}
		return -1
	}
	if c := cmpInt(id.family(), o.family()); c != 0 {
		return c
	}
	if c := cmpInt(id.FWMark, o.FWMark); c != 0 {
		return c
	}
	if c := cmpInt(id.Protocol, o.Protocol); c != 0 {
		return c
	}
	return id.Address.Compare(o.Address)
}

// Key is a canonical, comparable form of the ID (family filled in).
func (id ServiceID) Key() ServiceID {
	id.Family = id.family()
	return id
}

func cmpInt[T ~uint8 | ~uint16 | ~uint32 | ~int](a, b T) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// Service is a virtual service.
type Service struct {
	ServiceID
	// Scheduler is the scheduler's name ("wlc", "rr", ...).
	Scheduler string
	// Flags are the service flags; FlagPersistent is set automatically
	// when Timeout is not zero, and FlagHashed is the kernel's own.
	Flags ServiceFlags
	// Timeout is the persistence timeout in seconds; 0 is not persistent.
	Timeout uint32
	// NetmaskBits groups clients for persistence: 0..32 for IPv4 (sent as a
	// mask, 32 by default), 1..128 for IPv6 (128 by default). Zero means the
	// default.
	NetmaskBits int
	// PEName is the persistence engine, e.g. "sip"; empty for none.
	PEName string
	// Stats are the service's counters (read only).
	Stats Stats
}

// Destination is a real server of a service.
type Destination struct {
	// Address is the real server's address and port (port 0 for a fwmark
	// service's real server means "the packet's port").
	Address netip.AddrPort
	// Family is the address family; zero means Address's family.
	Family Family
	// Forward is the forwarding method.
	Forward ForwardMethod
	// Weight is the scheduling weight; 0 is quiescent (no new connections).
	Weight int32
	// UpperThreshold caps connections (0 is no cap); LowerThreshold
	// re-enables a capped server (0 is none).
	UpperThreshold, LowerThreshold uint32
	// TunnelType, TunnelPort and TunnelFlags configure ForwardTunnel
	// encapsulation (0 = IPIP).
	TunnelType  uint8
	TunnelPort  uint16
	TunnelFlags uint16
	// Connection counts the kernel keeps (read only).
	ActiveConns, InactiveConns, PersistConns uint32
	// Stats are the destination's counters (read only).
	Stats Stats
}

// Stats are IPVS counters and the kernel's rate estimates.
type Stats struct {
	Connections, PacketsIn, PacketsOut, BytesIn, BytesOut uint64
	CPS, PPSIn, PPSOut, BPSIn, BPSOut                     uint64
}

// Entry is a service with its destinations.
type Entry struct {
	Service      Service
	Destinations []Destination
}

// MaxWeight is the largest weight IPVS accepts (INT_MAX).
const MaxWeight = 1<<31 - 1

// MaxPersistence is the longest persistence timeout, in seconds: 31 days,
// ipvsadm's limit.
const MaxPersistence = 31 * 24 * 3600

// Validate checks a service before it is sent to the kernel.
func (s Service) Validate() error {
	if err := s.ServiceID.Validate(); err != nil {
		return err
	}
	if s.Scheduler != "" && !KnownScheduler(s.Scheduler) {
		return fmt.Errorf("service %s: unknown scheduler %q (want one of %s)", s.ServiceID, s.Scheduler, strings.Join(Schedulers(), ", "))
	}
	if s.Timeout > MaxPersistence {
		return fmt.Errorf("service %s: persistence timeout %d s out of range (0..%d)", s.ServiceID, s.Timeout, MaxPersistence)
	}
	switch s.family() {
	case FamilyIPv4:
		if s.NetmaskBits < 0 || s.NetmaskBits > 32 {
			return fmt.Errorf("service %s: persistence netmask /%d out of range for IPv4 (0..32)", s.ServiceID, s.NetmaskBits)
		}
	case FamilyIPv6:
		if s.NetmaskBits < 0 || s.NetmaskBits > 128 {
			return fmt.Errorf("service %s: persistence prefix /%d out of range for IPv6 (1..128)", s.ServiceID, s.NetmaskBits)
		}
	}
	if len(s.PEName) >= 16 {
		return fmt.Errorf("service %s: persistence engine name %q too long", s.ServiceID, s.PEName)
	}
	return nil
}

// Validate checks a service identity.
func (id ServiceID) Validate() error {
	if id.IsFWMark() {
		if id.Address.IsValid() || id.Protocol != 0 {
			return fmt.Errorf("service %s: a fwmark service has no protocol or address", id)
		}
		if id.Family != FamilyIPv4 && id.Family != FamilyIPv6 {
			return fmt.Errorf("service %s: a fwmark service needs family inet or inet6", id)
		}
		return nil
	}
	if !id.Address.Addr().IsValid() {
		return fmt.Errorf("service %s: no virtual address", id)
	}
	if id.Address.Addr().Is4In6() {
		return fmt.Errorf("service %s: IPv4-mapped IPv6 address; use the IPv4 form", id)
	}
	if id.Address.Addr().Zone() != "" {
		return fmt.Errorf("service %s: address has a zone", id)
	}
	if f := FamilyOf(id.Address.Addr()); id.Family != FamilyUnspec && id.Family != f {
		return fmt.Errorf("service %s: family %s does not match the address (%s)", id, id.Family, f)
	}
	switch id.Protocol {
	case bucket.TCP, bucket.UDP, bucket.SCTP:
	default:
		return fmt.Errorf("service %s: protocol %d is not tcp, udp or sctp", id, id.Protocol)
	}
	return nil
}

// Validate checks a destination of svc before it is sent to the kernel.
func (d Destination) Validate(svc ServiceID) error {
	a := d.Address.Addr()
	if !a.IsValid() {
		return fmt.Errorf("destination of service %s: no address", svc)
	}
	if a.Is4In6() || a.Zone() != "" {
		return fmt.Errorf("destination %s of service %s: use a plain IPv4 or IPv6 address", d.Address, svc)
	}
	if d.Family != FamilyUnspec && d.Family != FamilyOf(a) {
		return fmt.Errorf("destination %s of service %s: family %s does not match the address", d.Address, svc, d.Family)
	}
	// IPVS forwards across families only by tunnelling.
	if f := FamilyOf(a); f != svc.family() && d.Forward != ForwardTunnel {
		return fmt.Errorf("destination %s of service %s: address family %s differs from the service's %s (only tunnel forwarding may mix families)", d.Address, svc, f, svc.family())
	}
	if d.Weight < 0 {
		return fmt.Errorf("destination %s of service %s: weight %d out of range (0..%d)", d.Address, svc, d.Weight, MaxWeight)
	}
	switch d.Forward {
	case ForwardMasq, ForwardTunnel, ForwardRoute, ForwardLocal:
	default:
		return fmt.Errorf("destination %s of service %s: unknown forwarding method %d", d.Address, svc, d.Forward)
	}
	if d.LowerThreshold > d.UpperThreshold && d.UpperThreshold != 0 {
		return fmt.Errorf("destination %s of service %s: lower threshold %d above upper threshold %d", d.Address, svc, d.LowerThreshold, d.UpperThreshold)
	}
	if !svc.IsFWMark() && d.Address.Port() == 0 && d.Forward == ForwardMasq && svc.Address.Port() != 0 {
		return fmt.Errorf("destination %s of service %s: NAT forwarding needs a real server port", d.Address, svc)
	}
	return nil
}

// DaemonState is the role of a kernel sync daemon.
type DaemonState uint32

// Sync daemon roles.
const (
	DaemonMaster DaemonState = 1
	DaemonBackup DaemonState = 2
)

func (s DaemonState) String() string {
	switch s {
	case DaemonMaster:
		return "master"
	case DaemonBackup:
		return "backup"
	}
	return fmt.Sprintf("state(%d)", uint32(s))
}

// SyncDaemon is a kernel connection-sync thread (ipvsadm --start-daemon).
type SyncDaemon struct {
	State     DaemonState
	Interface string     // multicast interface, required
	SyncID    uint8      // sync messages carry it; a backup ignores other ids
	MaxLen    uint16     // UDP payload size; 0 = the kernel's default
	Group     netip.Addr // multicast group; invalid = 224.0.0.81
	Port      uint16     // multicast port; 0 = 8848
	TTL       uint8      // multicast TTL; 0 = 1
}

// Validate checks a sync daemon before it is started.
func (d SyncDaemon) Validate() error {
	if d.State != DaemonMaster && d.State != DaemonBackup {
		return fmt.Errorf("sync daemon: state %s is not master or backup", d.State)
	}
	if d.Interface == "" || len(d.Interface) >= 16 {
		return fmt.Errorf("sync daemon %s: interface name %q invalid", d.State, d.Interface)
	}
	if d.Group.IsValid() && !d.Group.IsMulticast() {
		return fmt.Errorf("sync daemon %s: group %s is not a multicast address", d.State, d.Group)
	}
	return nil
}

// Timeouts are IPVS connection timeouts (ipvsadm --set); zero leaves a value
// unchanged when setting.
type Timeouts struct {
	TCP, TCPFin, UDP time.Duration
}

// Info is IPVS's version and connection hash table size.
type Info struct {
	Version     uint32 // e.g. 0x010201
	ConnTabSize uint32
}

// VersionString renders Version as ipvsadm does ("1.2.1").
func (i Info) VersionString() string {
	return fmt.Sprintf("%d.%d.%d", i.Version>>16&0xff, i.Version>>8&0xff, i.Version&0xff)
}
