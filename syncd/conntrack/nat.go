package conntrack

import (
	"encoding/binary"
	"net/netip"

	"github.com/ti-mo/netfilter"

	"github.com/saru-lb/saru/syncd/conn"
)

// ctnetlink attribute types (include/uapi/linux/netfilter/nfnetlink_conntrack.h).
const (
	ctaTupleOrig  = 1
	ctaTupleReply = 2
	ctaStatus     = 3
	ctaProtoinfo  = 4
	ctaNATSrc     = 6
	ctaTimeout    = 7
	ctaMark       = 8
	ctaNATDst     = 13
	ctaZone       = 18

	ctaTupleIP    = 1
	ctaTupleProto = 2

	ctaIPv4Src = 1
	ctaIPv4Dst = 2
	ctaIPv6Src = 3
	ctaIPv6Dst = 4

	ctaProtoNum     = 1
	ctaProtoSrcPort = 2
	ctaProtoDstPort = 3

	ctaProtoinfoTCP      = 1
	ctaProtoinfoTCPState = 1

	ctaNATv4MinIP = 1
	ctaNATv4MaxIP = 2
	ctaNATProto   = 3
	ctaNATv6MinIP = 4
	ctaNATv6MaxIP = 5

	ctaProtoNATPortMin = 1
	ctaProtoNATPortMax = 2

	ctNew = 0 // IPCTNL_MSG_CT_NEW
)

func be16(v uint16) []byte { return binary.BigEndian.AppendUint16(nil, v) }
func be32(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }

func tupleAttr(typ uint16, src, dst netip.Addr, proto uint8, sport, dport uint16) netfilter.Attribute {
	s, d := uint16(ctaIPv4Src), uint16(ctaIPv4Dst)
	if src.Is6() {
		s, d = ctaIPv6Src, ctaIPv6Dst
	}
	return netfilter.Attribute{Type: typ, Nested: true, Children: []netfilter.Attribute{
		{Type: ctaTupleIP, Nested: true, Children: []netfilter.Attribute{
			{Type: s, Data: src.AsSlice()}, {Type: d, Data: dst.AsSlice()},
		}},
		{Type: ctaTupleProto, Nested: true, Children: []netfilter.Attribute{
			{Type: ctaProtoNum, Data: []byte{proto}},
			{Type: ctaProtoSrcPort, Data: be16(sport)},
			{Type: ctaProtoDstPort, Data: be16(dport)},
		}},
	}}
}

func natAttr(typ uint16, a netip.Addr, port uint16) netfilter.Attribute {
	lo, hi := uint16(ctaNATv4MinIP), uint16(ctaNATv4MaxIP)
	if a.Is6() {
		lo, hi = ctaNATv6MinIP, ctaNATv6MaxIP
	}
	return netfilter.Attribute{Type: typ, Nested: true, Children: []netfilter.Attribute{
		{Type: lo, Data: a.AsSlice()}, {Type: hi, Data: a.AsSlice()},
		{Type: ctaNATProto, Nested: true, Children: []netfilter.Attribute{
			{Type: ctaProtoNATPortMin, Data: be16(port)}, {Type: ctaProtoNATPortMax, Data: be16(port)},
		}},
	}}
}

// NATCreate returns the ctnetlink attributes that create e's flow with
// its NAT bindings, as conntrackd does: the reply tuple is given
// un-NATed and CTA_NAT_DST / CTA_NAT_SRC make the kernel compute the real
// reply tuple and set IPS_DST_NAT / IPS_SRC_NAT, so nf_nat rewrites the
// flow's packets on this host. nat is false when e's flow has no NAT (it
// is then created from its tuples alone).
func NATCreate(e *conn.Entry) (attrs []netfilter.Attribute, family netfilter.ProtoFamily, nat bool, err error) {
	f, err := EntryToFlow(e)
	if err != nil {
		return nil, 0, false, err
	}
	o, r := f.TupleOrig, f.TupleReply
	dnat := r.IP.SourceAddress != o.IP.DestinationAddress || r.Proto.SourcePort != o.Proto.DestinationPort
	snat := r.IP.DestinationAddress != o.IP.SourceAddress || r.Proto.DestinationPort != o.Proto.SourcePort
	if !dnat && !snat {
		return nil, 0, false, nil
	}
	family = netfilter.ProtoIPv4
	if e.IPv6() {
		family = netfilter.ProtoIPv6
	}
	p := o.Proto.Protocol
	attrs = []netfilter.Attribute{
		tupleAttr(ctaTupleOrig, o.IP.SourceAddress, o.IP.DestinationAddress, p, o.Proto.SourcePort, o.Proto.DestinationPort),
		// The reply as if there were no NAT; the NAT attributes bend it.
		tupleAttr(ctaTupleReply, o.IP.DestinationAddress, o.IP.SourceAddress, p, o.Proto.DestinationPort, o.Proto.SourcePort),
		{Type: ctaTimeout, Data: be32(f.Timeout)},
		{Type: ctaStatus, Data: be32(uint32(f.Status))},
	}
	if f.Mark != 0 {
		attrs = append(attrs, netfilter.Attribute{Type: ctaMark, Data: be32(f.Mark)})
	}
	if f.Zone != 0 {
		attrs = append(attrs, netfilter.Attribute{Type: ctaZone, Data: be16(f.Zone)})
	}
	if f.ProtoInfo.TCP != nil {
		attrs = append(attrs, netfilter.Attribute{Type: ctaProtoinfo, Nested: true, Children: []netfilter.Attribute{
			{Type: ctaProtoinfoTCP, Nested: true, Children: []netfilter.Attribute{
				{Type: ctaProtoinfoTCPState, Data: []byte{f.ProtoInfo.TCP.State}},
			}},
		}})
	}
	if dnat {
		attrs = append(attrs, natAttr(ctaNATDst, r.IP.SourceAddress, r.Proto.SourcePort))
	}
	if snat {
		attrs = append(attrs, natAttr(ctaNATSrc, r.IP.DestinationAddress, r.Proto.DestinationPort))
	}
	return attrs, family, true, nil
}
