package main

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	sarupb "github.com/saru-lb/saru/proto/saru/v1"
	"github.com/saru-lb/saru/saru/ipvs"
)

// Format chooses the columns of [Render].
type Format int

// Formats, as ipvsadm -L -n, ipvsadm -L -n --stats and ipvsadm -L -n --rate.
const (
	FormatPlain Format = iota
	FormatStats
	FormatRate
)

// RenderOptions adjust [Render].
type RenderOptions struct {
	Format Format
	// Exact prints counters in full instead of with K/M/G/T (--exact).
	Exact bool
	// Version and ConnTabSize, when Version is set, print ipvsadm's first
	// line, "IP Virtual Server version 1.2.1 (size=4096)".
	Version     string
	ConnTabSize uint32
}

// Render prints services in the layout of ipvsadm -L -n, sorted as ipvsadm
// sorts them (address services by family, protocol, address and port, then
// fwmark services; real servers by address and port).
func Render(services []*sarupb.VirtualService, opt RenderOptions) string {
	services = sortedLikeIpvsadm(services)
	var b strings.Builder
	if opt.Version != "" {
		fmt.Fprintf(&b, "IP Virtual Server version %s (size=%d)\n", opt.Version, opt.ConnTabSize)
	}
	switch opt.Format {
	case FormatStats:
		b.WriteString("Prot LocalAddress:Port               Conns   InPkts  OutPkts  InBytes OutBytes\n  -> RemoteAddress:Port\n")
	case FormatRate:
		b.WriteString("Prot LocalAddress:Port                 CPS    InPPS   OutPPS    InBPS   OutBPS\n  -> RemoteAddress:Port\n")
	default:
		b.WriteString("Prot LocalAddress:Port Scheduler Flags\n  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n")
	}
	for _, s := range services {
		name := serviceName(s)
		switch opt.Format {
		case FormatStats, FormatRate:
			fmt.Fprintf(&b, "%-33s", name)
			writeCounters(&b, s.GetStats(), opt)
			for _, d := range sortedServers(s) {
				fmt.Fprintf(&b, "  -> %-28s", hostPort(d.GetAddress(), d.GetPort()))
				writeCounters(&b, d.GetStats(), opt)
			}
		default:
			b.WriteString(name + " " + s.GetScheduler())
			b.WriteString(serviceFlags(s))
			b.WriteString("\n")
			for _, d := range sortedServers(s) {
				fmt.Fprintf(&b, "  -> %-28s %-7s %-6d %-10d %-10d\n", hostPort(d.GetAddress(), d.GetPort()),
					forwardName(d.GetForwarding()), d.GetWeight(), d.GetActiveConnections(), d.GetInactiveConnections())
			}
		}
	}
	return b.String()
}

// serviceName is "TCP  10.0.0.1:80", "FWM  7" or "FWM  8 IPv6".
func serviceName(s *sarupb.VirtualService) string {
	if s.GetFwmark() != 0 {
		n := fmt.Sprintf("FWM  %d", s.GetFwmark())
		if s.GetAddressFamily() == "inet6" {
			n += " IPv6"
		}
		return n
	}
	return strings.ToUpper(s.GetProtocol()) + "  " + hostPort(s.GetAddress(), s.GetPort())
}

func hostPort(addr string, port uint32) string {
	if strings.Contains(addr, ":") {
		return fmt.Sprintf("[%s]:%d", addr, port)
	}
	return fmt.Sprintf("%s:%d", addr, port)
}

// serviceFlags renders the flags after the scheduler as ipvsadm does:
// " (sh-fallback,sh-port)", " persistent 300 mask 255.255.255.0", " ops".
func serviceFlags(s *sarupb.VirtualService) string {
	var b strings.Builder
	var sched []string
	for _, f := range s.GetFlags() {
		switch {
		case strings.HasSuffix(f, "-fallback") || strings.HasSuffix(f, "-port"):
			sched = append(sched, f)
		case strings.HasPrefix(f, "sched"):
			sched = append(sched, "flag-"+strings.TrimPrefix(f, "sched"))
		}
	}
	if len(sched) > 0 {
		b.WriteString(" (" + strings.Join(sched, ",") + ")")
	}
	if slices.Contains(s.GetFlags(), "persistent") {
		fmt.Fprintf(&b, " persistent %d", s.GetPersistenceTimeoutSeconds())
		mask := s.GetPersistenceNetmask()
		if s.GetAddressFamily() == "inet6" {
			if mask != "" && mask != "128" {
				b.WriteString(" mask " + mask)
			}
		} else if mask != "" && mask != "255.255.255.255" {
			b.WriteString(" mask " + mask)
		}
	}
	if slices.Contains(s.GetFlags(), "one-packet") {
		b.WriteString(" ops")
	}
	return b.String()
}

func forwardName(f string) string {
	switch f {
	case "masq":
		return "Masq"
	case "route":
		return "Route"
	case "tunnel":
		return "Tunnel"
	case "local":
		return "Local"
	case "bypass":
		return "Bypass"
	}
	return f
}

func writeCounters(b *strings.Builder, st *sarupb.TrafficStats, opt RenderOptions) {
	var v []uint64
	if opt.Format == FormatRate {
		v = []uint64{st.GetConnectionsPerSecond(), st.GetPacketsInPerSecond(), st.GetPacketsOutPerSecond(), st.GetBytesInPerSecond(), st.GetBytesOutPerSecond()}
	} else {
		v = []uint64{st.GetConnections(), st.GetPacketsIn(), st.GetPacketsOut(), st.GetBytesIn(), st.GetBytesOut()}
	}
	for _, n := range v {
		b.WriteString(largeNum(n, opt.Exact))
	}
	b.WriteString("\n")
}

// largeNum formats a counter as ipvsadm's print_largenum: nine columns,
// abbreviated with K, M, G or T from 100 million up unless exact.
func largeNum(n uint64, exact bool) string {
	if exact {
		s := strconv.FormatUint(n, 10)
		w := 9
		if len(s) > 8 {
			w = len(s) + 1
		}
		return fmt.Sprintf("%*s", w, s)
	}
	switch {
	case n < 100_000_000:
		return fmt.Sprintf("%9d", n)
	case n < 1_000_000_000:
		return fmt.Sprintf("%8dK", n/1_000)
	case n < 100_000_000_000:
		return fmt.Sprintf("%8dM", n/1_000_000)
	case n < 100_000_000_000_000:
		return fmt.Sprintf("%8dG", n/1_000_000_000)
	}
	return fmt.Sprintf("%8dT", n/1_000_000_000_000)
}

func sortedLikeIpvsadm(in []*sarupb.VirtualService) []*sarupb.VirtualService {
	out := slices.Clone(in)
	key := func(s *sarupb.VirtualService) ipvs.ServiceID {
		fam := ipvs.FamilyIPv4
		if s.GetAddressFamily() == "inet6" {
			fam = ipvs.FamilyIPv6
		}
		if s.GetFwmark() != 0 {
			return ipvs.ServiceID{Family: fam, FWMark: s.GetFwmark()}
		}
		p, _ := ipvs.ParseProtocol(s.GetProtocol())
		a, _ := netip.ParseAddr(s.GetAddress())
		return ipvs.ServiceID{Family: fam, Protocol: p, Address: netip.AddrPortFrom(a, uint16(s.GetPort()))}
	}
	slices.SortStableFunc(out, func(a, b *sarupb.VirtualService) int { return key(a).Compare(key(b)) })
	return out
}

func sortedServers(s *sarupb.VirtualService) []*sarupb.RealServer {
	out := slices.Clone(s.GetRealServers())
	key := func(r *sarupb.RealServer) netip.AddrPort {
		a, _ := netip.ParseAddr(r.GetAddress())
		return netip.AddrPortFrom(a, uint16(r.GetPort()))
	}
	slices.SortStableFunc(out, func(a, b *sarupb.RealServer) int { return key(a).Compare(key(b)) })
	return out
}
