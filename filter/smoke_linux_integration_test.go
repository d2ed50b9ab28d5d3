package filter

import (
	"context"
	"net/netip"
	"testing"
)

func TestIntegrationSmoke(t *testing.T) {
	requireRoot(t)
	ns := newNetNS(t, "smoke")
	cfg := Config{Buckets: 64, Seed: 0x1234, Services: []Service{
		{VIP: netip.MustParseAddr("10.0.0.1"), Protocol: ProtocolBoth, Port: 80},
		{VIP: netip.MustParseAddr("10.0.0.1"), Protocol: ProtocolTCP, Sense: SenseSrcAddrSrcPort},
		{VIP: netip.MustParseAddr("fd00::1"), Protocol: ProtocolUDP, Sense: SenseSrcAddr},
	}, NAT: &NATConfig{RealServers: []netip.Prefix{netip.MustParsePrefix("192.168.6.0/24")}}}
	f, err := Open(context.Background(), cfg, WithNetNS(ns.fd))
	if err != nil {
		t.Fatal(err)
	}
	owned, _ := NewBucketSet(64, 1, 2, 3, 63)
	if err := f.Apply(context.Background(), owned); err != nil {
		t.Fatal(err)
	}
	t.Log(ns.sh(t, "nft list ruleset"))
	t.Log(ns.sh(t, "nft add element inet saru owned { 7, 9 }"))
	t.Log(ns.sh(t, "nft list set inet saru owned"))
	cs, err := f.Counters(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cs {
		t.Logf("%+v", c)
	}
	if err := f.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Log(ns.sh(t, "nft list ruleset"))
}
