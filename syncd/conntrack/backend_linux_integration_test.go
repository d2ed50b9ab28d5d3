package conntrack

import (
	"context"
	"net"
	"net/netip"
	"testing"
	"time"

	ct "github.com/ti-mo/conntrack"

	"github.com/saru-lb/saru/deploy/nstest"
	"github.com/saru-lb/saru/syncd/conn"
)

// in runs fn on a thread inside namespace ns.
func in(t *testing.T, ns string, fn func()) {
	t.Helper()
	if err := nstest.In(ns, func() error { fn(); return nil }); err != nil {
		t.Error(err)
	}
}

// TestIntegrationConntrackExportImport: a real DNAT flow and a flow
// created over netlink in namespace A are exported by A's backend, and
// importing them in namespace B makes them exist in B's conntrack table,
// with the NAT reply tuple and binding (IPS_DST_NAT) intact; B's own
// import is not echoed back.
func TestIntegrationConntrackExportImport(t *testing.T) {
	nstest.RequireRoot(t)
	a, b := nstest.New(t, "ct-a").Name, nstest.New(t, "ct-b").Name
	nstest.Run(t, "ip", "netns", "exec", a, "ip", "addr", "add", "10.66.0.1/24", "dev", "lo")
	nstest.Run(t, "ip", "netns", "exec", a, "ip", "route", "add", "10.9.9.0/24", "dev", "lo")
	nstest.RunWithInput(t, `table ip natlab {
	chain out {
		type nat hook output priority -100; policy accept;
		ip daddr 10.9.9.9 tcp dport 80 dnat to 10.66.0.1:8080
	}
}
`, "ip", "netns", "exec", a, "nft", "-f", "-")

	var ba, bb *Backend
	var err error
	in(t, a, func() { ba, err = Open(Config{DumpInterval: time.Hour}) })
	if err != nil {
		t.Fatal(err)
	}
	defer ba.Close()
	in(t, b, func() { bb, err = Open(Config{DumpInterval: time.Hour}) })
	if err != nil {
		t.Fatal(err)
	}
	defer bb.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	exported := make(chan conn.Entry, 1024)
	go func() {
		_ = ba.Run(ctx, func(es []conn.Entry) {
			for _, e := range es {
				exported <- e
			}
		})
	}()
	echoes := make(chan conn.Entry, 1024)
	go func() {
		_ = bb.Run(ctx, func(es []conn.Entry) {
			for _, e := range es {
				echoes <- e
			}
		})
	}()
	time.Sleep(200 * time.Millisecond) // subscriptions in place

	// A real flow through DNAT, and one created over netlink.
	var lis net.Listener
	var c net.Conn
	in(t, a, func() {
		lis, err = net.Listen("tcp4", "10.66.0.1:8080")
		if err != nil {
			return
		}
		c, err = net.Dial("tcp4", "10.9.9.9:80")
	})
	if err != nil {
		t.Fatalf("NAT connection in %s: %v", a, err)
	}
	defer lis.Close()
	defer c.Close()
	var cc *ct.Conn
	in(t, a, func() { cc, err = ct.Dial(nil) })
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	made := ct.NewFlow(conn.ProtoUDP, 0, netip.MustParseAddr("192.0.2.7"), netip.MustParseAddr("198.51.100.7"), 5353, 53, 120, 0x42)
	if err := cc.Create(made); err != nil {
		t.Fatalf("create flow in %s: %v", a, err)
	}

	client := netip.MustParseAddrPort(c.LocalAddr().String())
	want := map[string]func(e conn.Entry) bool{
		"dnat tcp": func(e conn.Entry) bool {
			return e.Protocol == conn.ProtoTCP && e.ClientAddr == client.Addr() && e.ClientPort == client.Port() &&
				e.VirtualAddr.String() == "10.9.9.9" && e.VirtualPort == 80 && e.DestAddr.String() == "10.66.0.1" && e.DestPort == 8080
		},
		"netlink udp": func(e conn.Entry) bool {
			return e.Protocol == conn.ProtoUDP && e.ClientAddr.String() == "192.0.2.7" && e.ClientPort == 5353 && e.FWMark == 0x42
		},
	}
	got := map[string]conn.Entry{}
	deadline := time.After(10 * time.Second)
	for len(got) < len(want) {
		select {
		case e := <-exported:
			for name, match := range want {
				if match(e) {
					got[name] = e
				}
			}
		case <-deadline:
			t.Fatalf("exported only %v", got)
		}
	}

	// Import into B, as syncd does with a peer's entries.
	var es []conn.Entry
	for _, e := range got {
		e.Origin, e.Version = "a", 1
		es = append(es, e)
	}
	if err := bb.Import(ctx, es); err != nil {
		t.Fatalf("import in %s: %v", b, err)
	}
	// Importing again updates in place.
	if err := bb.Import(ctx, es); err != nil {
		t.Fatalf("re-import in %s: %v", b, err)
	}
	var flows []ct.Flow
	in(t, b, func() {
		var bc *ct.Conn
		if bc, err = ct.Dial(nil); err != nil {
			return
		}
		defer bc.Close()
		flows, err = bc.Dump(nil)
	})
	if err != nil {
		t.Fatal(err)
	}
	for name, match := range want {
		found := false
		for i := range flows {
			e, skip := FlowToEntry(&flows[i])
			if skip == NotSkipped && match(e) {
				found = true
				if name == "dnat tcp" && (flows[i].TupleReply.IP.DestinationAddress != client.Addr() || flows[i].Status&ct.StatusAssured == 0 ||
					flows[i].Status&ct.StatusDstNAT == 0) {
					t.Errorf("%s in %s: reply tuple, status or NAT binding lost: %+v", name, b, flows[i])
				}
			}
		}
		if !found {
			t.Errorf("%s flow not in %s's conntrack table (%d flows)", name, b, len(flows))
		}
	}
	// A flow with both DNAT and SNAT, as a peer's LVS-NAT director with
	// masquerading would export it.
	both := conn.Entry{
		Protocol: conn.ProtoTCP, ClientAddr: netip.MustParseAddr("203.0.113.5"), ClientPort: 50000,
		VirtualAddr: netip.MustParseAddr("198.51.100.80"), VirtualPort: 80,
		DestAddr: netip.MustParseAddr("10.20.0.8"), DestPort: 8080,
		Flags: conn.Flags(ct.StatusSeenReply | ct.StatusAssured), State: 3, Timeout: 300, PEName: PEName,
		PEData: []byte{10, 20, 0, 1, 0xea, 0x60, 0, 0}, // SNAT to 10.20.0.1:60000, zone 0
		Origin: "a", Version: 2,
	}
	if err := bb.Import(ctx, []conn.Entry{both}); err != nil {
		t.Fatalf("import DNAT+SNAT flow: %v", err)
	}
	in(t, b, func() {
		var bc *ct.Conn
		if bc, err = ct.Dial(nil); err != nil {
			return
		}
		defer bc.Close()
		flows, err = bc.Dump(nil)
	})
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for i := range flows {
		fl := &flows[i]
		if fl.TupleOrig.IP.SourceAddress == both.ClientAddr {
			found = true
			if fl.Status&ct.StatusNATMask != ct.StatusNATMask || fl.TupleReply.IP.SourceAddress != both.DestAddr ||
				fl.TupleReply.Proto.SourcePort != 8080 || fl.TupleReply.IP.DestinationAddress.String() != "10.20.0.1" ||
				fl.TupleReply.Proto.DestinationPort != 60000 {
				t.Errorf("DNAT+SNAT flow in %s: %+v", b, fl)
			}
		}
	}
	if !found {
		t.Errorf("DNAT+SNAT flow not in %s", b)
	}
	created, updated, failed, _ := bb.Counts()
	if created != 3 || updated != 2 || failed != 0 {
		t.Errorf("import counts: created %d updated %d failed %d", created, updated, failed)
	}
	time.Sleep(300 * time.Millisecond)
	select {
	case e := <-echoes:
		t.Fatalf("%s exported its own import back: %+v", b, e)
	default:
	}
}
