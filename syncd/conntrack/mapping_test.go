package conntrack

import (
	"net/netip"
	"testing"

	ct "github.com/ti-mo/conntrack"

	"github.com/saru-lb/saru/syncd/conn"
)

func natFlow() ct.Flow {
	f := ct.NewFlow(conn.ProtoTCP, ct.StatusConfirmed|ct.StatusSeenReply|ct.StatusAssured|ct.StatusDstNAT|ct.StatusSrcNAT,
		netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("198.51.100.1"), 40000, 443, 300, 7)
	f.TupleReply.IP.SourceAddress = netip.MustParseAddr("10.0.0.5")
	f.TupleReply.Proto.SourcePort = 8443
	f.TupleReply.IP.DestinationAddress = netip.MustParseAddr("10.0.0.254") // SNAT
	f.TupleReply.Proto.DestinationPort = 61000
	f.Zone = 3
	f.ProtoInfo.TCP = &ct.ProtoInfoTCP{State: 3}
	return f
}

func TestFlowEntryRoundTrip(t *testing.T) {
	f := natFlow()
	e, skip := FlowToEntry(&f)
	if skip != NotSkipped {
		t.Fatal(skip)
	}
	if err := e.Validate(); err != nil {
		t.Fatal(err)
	}
	if e.ClientAddr.String() != "192.0.2.1" || e.VirtualPort != 443 || e.DestAddr.String() != "10.0.0.5" || e.DestPort != 8443 ||
		e.State != 3 || e.FWMark != 7 || e.Timeout != 300 {
		t.Fatalf("entry %+v", e)
	}
	back, err := EntryToFlow(&e)
	if err != nil {
		t.Fatal(err)
	}
	if back.TupleOrig != f.TupleOrig || back.TupleReply != f.TupleReply || back.Zone != 3 || back.Mark != 7 || back.ProtoInfo.TCP.State != 3 {
		t.Fatalf("flow %+v", back)
	}
	if back.Status != ct.StatusConfirmed|ct.StatusSeenReply|ct.StatusAssured {
		t.Fatalf("status %v: only settable bits, and confirmed", back.Status)
	}
}

func TestSkips(t *testing.T) {
	icmp := ct.NewFlow(1, 0, netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("198.51.100.1"), 0, 0, 30, 0)
	exp := natFlow()
	exp.Status |= ct.StatusExpected
	mixed := natFlow() // an IPv4-mapped client of an IPv6 service
	mixed.TupleOrig.IP.SourceAddress = netip.MustParseAddr("::ffff:192.0.2.1")
	mixed.TupleOrig.IP.DestinationAddress = netip.MustParseAddr("2001:db8::1")
	for _, tc := range []struct {
		f    ct.Flow
		want Skip
	}{{icmp, SkipProtocol}, {exp, SkipExpected}, {ct.Flow{}, SkipIncomplete}, {mixed, SkipInvalid}} {
		if _, got := FlowToEntry(&tc.f); got != tc.want {
			t.Errorf("skip %v, want %v", got, tc.want)
		}
	}
	e := conn.Entry{PEName: "sip"}
	if _, err := EntryToFlow(&e); err == nil {
		t.Error("an IPVS entry mapped to a flow")
	}
	e = conn.Entry{PEName: PEName, ClientAddr: netip.MustParseAddr("192.0.2.1"), PEData: []byte{1}}
	if _, err := EntryToFlow(&e); err == nil {
		t.Error("short pe_data accepted")
	}
}

func TestNATCreate(t *testing.T) {
	f := natFlow()
	e, _ := FlowToEntry(&f)
	attrs, fam, nat, err := NATCreate(&e)
	if err != nil || !nat || fam != 2 {
		t.Fatalf("nat %v family %v err %v", nat, fam, err)
	}
	types := map[uint16]bool{}
	for _, a := range attrs {
		types[a.Type] = true
	}
	for _, want := range []uint16{ctaTupleOrig, ctaTupleReply, ctaTimeout, ctaStatus, ctaMark, ctaZone, ctaProtoinfo, ctaNATDst, ctaNATSrc} {
		if !types[want] {
			t.Errorf("attribute %d missing", want)
		}
	}
	plain := ct.NewFlow(conn.ProtoUDP, 0, netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("198.51.100.1"), 1, 2, 30, 0)
	pe, _ := FlowToEntry(&plain)
	if _, _, nat, err := NATCreate(&pe); nat || err != nil {
		t.Fatalf("a flow without NAT: nat %v, %v", nat, err)
	}
}
