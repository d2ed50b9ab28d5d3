package conntrack

import (
	"encoding/binary"
	"fmt"
	"net/netip"

	ct "github.com/ti-mo/conntrack"

	"github.com/saru-lb/saru/syncd/conn"
)

// PEName marks conntrack entries; their PEData holds the reply tuple's
// destination address (4 or 16 bytes), port and zone (2 bytes each).
const PEName = "nf_conntrack"

// Skip says why a flow is not synced.
type Skip uint8

// Reasons a flow is not synced.
const (
	NotSkipped     Skip = iota
	SkipProtocol        // no ports (ICMP and the like)
	SkipExpected        // related flow set up by a helper
	SkipIncomplete      // tuples missing
	SkipInvalid         // fails conn.Entry.Validate (mixed families)
)

var skipNames = [...]string{"", "protocol", "expected", "incomplete", "invalid"}

func (s Skip) String() string { return skipNames[s] }

func portProto(p uint8) bool {
	switch p {
	case conn.ProtoTCP, conn.ProtoUDP, conn.ProtoSCTP, 136 /* UDP-Lite */, 33 /* DCCP */ :
		return true
	}
	return false
}

// FlowToEntry maps a flow to an entry (Origin and Version left zero).
// This is where a flow enters syncd, so the entry is checked here, once.
func FlowToEntry(f *ct.Flow) (conn.Entry, Skip) {
	o, r := f.TupleOrig, f.TupleReply
	if !o.IP.SourceAddress.IsValid() || !o.IP.DestinationAddress.IsValid() || !r.IP.SourceAddress.IsValid() || !r.IP.DestinationAddress.IsValid() {
		return conn.Entry{}, SkipIncomplete
	}
	if !portProto(o.Proto.Protocol) {
		return conn.Entry{}, SkipProtocol
	}
	if f.Status&ct.StatusExpected != 0 {
		return conn.Entry{}, SkipExpected
	}
	e := conn.Entry{
		Protocol:   o.Proto.Protocol,
		ClientAddr: o.IP.SourceAddress.Unmap(), ClientPort: o.Proto.SourcePort,
		VirtualAddr: o.IP.DestinationAddress.Unmap(), VirtualPort: o.Proto.DestinationPort,
		DestAddr: r.IP.SourceAddress.Unmap(), DestPort: r.Proto.SourcePort,
		FWMark:  f.Mark,
		Flags:   conn.Flags(f.Status),
		Timeout: f.Timeout,
		PEName:  PEName,
	}
	if f.ProtoInfo.TCP != nil {
		e.State = uint16(f.ProtoInfo.TCP.State)
	}
	d := r.IP.DestinationAddress.Unmap().AsSlice()
	d = binary.BigEndian.AppendUint16(d, r.Proto.DestinationPort)
	e.PEData = binary.BigEndian.AppendUint16(d, f.Zone)
	if e.Validate() != nil {
		return conn.Entry{}, SkipInvalid
	}
	return e, NotSkipped
}

// importStatus are the status bits a created flow may carry; the kernel
// derives the NAT bits from the tuples. ctnetlink marks a created flow
// confirmed before applying the status, so the status must say confirmed
// too (or the kernel answers EBUSY).
const importStatus = ct.StatusSeenReply | ct.StatusAssured

// EntryToFlow maps an entry back to a flow to create.
func EntryToFlow(e *conn.Entry) (ct.Flow, error) {
	if e.PEName != PEName {
		return ct.Flow{}, fmt.Errorf("entry %s:%d: not a conntrack entry (pe_name %q)", e.ClientAddr, e.ClientPort, e.PEName)
	}
	alen := 4
	if e.IPv6() {
		alen = 16
	}
	if len(e.PEData) != alen+4 {
		return ct.Flow{}, fmt.Errorf("entry %s:%d: pe_data: %d bytes, want %d", e.ClientAddr, e.ClientPort, len(e.PEData), alen+4)
	}
	replyDst, _ := netip.AddrFromSlice(e.PEData[:alen])
	replyPort := binary.BigEndian.Uint16(e.PEData[alen:])
	zone := binary.BigEndian.Uint16(e.PEData[alen+2:])
	timeout := e.Timeout
	if timeout == 0 {
		timeout = 1
	}
	f := ct.Flow{Timeout: timeout, Mark: e.FWMark, Status: ct.Status(e.Flags)&importStatus | ct.StatusConfirmed, Zone: zone}
	f.TupleOrig.IP = ct.IPTuple{SourceAddress: e.ClientAddr, DestinationAddress: e.VirtualAddr}
	f.TupleOrig.Proto = ct.ProtoTuple{Protocol: e.Protocol, SourcePort: e.ClientPort, DestinationPort: e.VirtualPort}
	f.TupleReply.IP = ct.IPTuple{SourceAddress: e.DestAddr, DestinationAddress: replyDst}
	f.TupleReply.Proto = ct.ProtoTuple{Protocol: e.Protocol, SourcePort: e.DestPort, DestinationPort: replyPort}
	if e.Protocol == conn.ProtoTCP {
		f.ProtoInfo.TCP = &ct.ProtoInfoTCP{State: uint8(e.State)}
	}
	return f, nil
}
