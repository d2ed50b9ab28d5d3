package services

import (
	"context"
	"fmt"
	"net/netip"
	"strconv"

	"github.com/saru-lb/saru/saru/ipvs"

	sarupb "github.com/saru-lb/saru/proto/saru/v1"
)

// ToProto converts a kernel listing to the messages ListServices returns,
// in the listing's order.
func ToProto(entries []ipvs.Entry) []*sarupb.VirtualService {
	out := make([]*sarupb.VirtualService, 0, len(entries))
	for _, e := range entries {
		s := e.Service
		fam := s.Key().Family
		vs := &sarupb.VirtualService{
			Fwmark:                    s.FWMark,
			Scheduler:                 s.Scheduler,
			PersistenceTimeoutSeconds: s.Timeout,
			PersistenceNetmask:        netmaskString(fam, netmaskBits(s)),
			Flags:                     s.Flags.Names(s.Scheduler),
			Stats:                     statsProto(s.Stats),
			AddressFamily:             fam.String(),
		}
		if !s.IsFWMark() {
			vs.Protocol = s.Protocol.String()
			vs.Address = s.Address.Addr().String()
			vs.Port = uint32(s.Address.Port())
		}
		for _, d := range e.Destinations {
			vs.RealServers = append(vs.RealServers, &sarupb.RealServer{
				Address:             d.Address.Addr().String(),
				Port:                uint32(d.Address.Port()),
				Forwarding:          d.Forward.String(),
				Weight:              d.Weight,
				UpperThreshold:      d.UpperThreshold,
				LowerThreshold:      d.LowerThreshold,
				ActiveConnections:   d.ActiveConns,
				InactiveConnections: d.InactiveConns,
				Stats:               statsProto(d.Stats),
			})
		}
		out = append(out, vs)
	}
	return out
}

// netmaskString renders a persistence netmask as the proto carries it: a
// dotted mask for IPv4, a prefix length for IPv6.
func netmaskString(fam ipvs.Family, bits int) string {
	if fam == ipvs.FamilyIPv6 {
		return strconv.Itoa(bits)
	}
	m := ^uint32(0) << (32 - bits)
	if bits == 0 {
		m = 0
	}
	return netip.AddrFrom4([4]byte{byte(m >> 24), byte(m >> 16), byte(m >> 8), byte(m)}).String()
}

func statsProto(s ipvs.Stats) *sarupb.TrafficStats {
	return &sarupb.TrafficStats{
		Connections: s.Connections, PacketsIn: s.PacketsIn, PacketsOut: s.PacketsOut,
		BytesIn: s.BytesIn, BytesOut: s.BytesOut,
		ConnectionsPerSecond: s.CPS, PacketsInPerSecond: s.PPSIn, PacketsOutPerSecond: s.PPSOut,
		BytesInPerSecond: s.BPSIn, BytesOutPerSecond: s.BPSOut,
	}
}

// Lister serves ListServices from an IPVS listing (*ipvs.Client has List).
type Lister struct {
	Kernel interface {
		List(ctx context.Context) ([]ipvs.Entry, error)
	}
}

// ListServices returns the kernel's virtual services as saru.v1 messages,
// in the kernel's order.
func (l Lister) ListServices(ctx context.Context) ([]*sarupb.VirtualService, error) {
	es, err := l.Kernel.List(ctx)
	if err != nil {
		return nil, fmt.Errorf("list services: %w", err)
	}
	return ToProto(es), nil
}
