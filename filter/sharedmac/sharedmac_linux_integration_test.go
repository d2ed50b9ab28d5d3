package sharedmac

import (
	"context"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/saru-lb/saru/deploy/nstest"
)

func TestIntegrationSetMACAndVIPs(t *testing.T) {
	nstest.RequireRoot(t)
	a := nstest.New(t, "mac-a")
	b := nstest.New(t, "mac-b")
	a.VethTo(t, "eth0", b, "eth0")
	ctx := context.Background()
	h, err := Dial(WithNetNS(a.FD))
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	a.Sh(t, "ip link set eth0 up")
	mac, _ := net.ParseMAC("02:5a:00:00:00:09")
	vips := []netip.Prefix{netip.MustParsePrefix("10.94.0.1/24"), netip.MustParsePrefix("fd00:94::1/64")}
	for range 2 { // the second round must be a no-op
		if err := h.SetMAC(ctx, "eth0", mac); err != nil {
			t.Fatal(err)
		}
		if err := h.AddVIPs(ctx, "eth0", vips); err != nil {
			t.Fatal(err)
		}
	}
	link := a.Sh(t, "ip -o link show eth0")
	if !strings.Contains(link, "02:5a:00:00:00:09") || !strings.Contains(link, ",UP") {
		t.Fatalf("link after SetMAC: %s", link)
	}
	addrs := a.Sh(t, "ip -o addr show dev eth0")
	if !strings.Contains(addrs, "10.94.0.1/24") || !strings.Contains(addrs, "fd00:94::1/64") || !strings.Contains(addrs, "nodad") {
		t.Fatalf("addresses after AddVIPs: %s", addrs)
	}
	if err := h.RemoveVIPs(ctx, "eth0", vips); err != nil {
		t.Fatal(err)
	}
	if err := h.RemoveVIPs(ctx, "eth0", vips); err != nil {
		t.Fatalf("removing absent VIPs: %v", err)
	}
	if addrs := a.Sh(t, "ip -o addr show dev eth0"); strings.Contains(addrs, "10.94.0.1") || strings.Contains(addrs, "fd00:94::1/64") {
		t.Fatalf("addresses after RemoveVIPs: %s", addrs)
	}
	mcast, _ := net.ParseMAC("01:00:5e:7f:00:01")
	if err := h.SetMAC(ctx, "eth0", mcast); err == nil || !strings.Contains(err.Error(), "mac") {
		t.Fatalf("SetMAC(multicast): %v", err)
	}
	if err := h.SetMAC(ctx, "nosuch0", mac); err == nil || !strings.Contains(err.Error(), "nosuch0") {
		t.Fatalf("SetMAC on a missing interface: %v", err)
	}
	if err := h.AddVIPs(ctx, "eth0", []netip.Prefix{{}}); err == nil || !strings.Contains(err.Error(), "vips[0]") {
		t.Fatalf("AddVIPs(invalid): %v", err)
	}
}

// Two directors share an IPv6 VIP; the second adds it without nodad and
// duplicate address detection kills it. Check reports that and the IPv4
// settings that break a shared-MAC director, and nothing on the good one.
func TestIntegrationCheck(t *testing.T) {
	nstest.RequireRoot(t)
	good := nstest.New(t, "chk-good")
	bad := nstest.New(t, "chk-bad")
	good.VethTo(t, "eth0", bad, "eth0")
	ctx := context.Background()
	vip6 := netip.MustParsePrefix("fd00:93::1/64")
	good.Sysctl(t, "net.ipv4.conf.all.rp_filter=0", "net.ipv4.conf.eth0.rp_filter=2",
		"net.ipv4.conf.all.arp_announce=2", "net.ipv4.conf.eth0.arp_ignore=1")
	bad.Sysctl(t, "net.ipv4.conf.all.rp_filter=1", "net.ipv4.conf.eth0.arp_ignore=8",
		"net.ipv4.conf.all.arp_announce=0", "net.ipv4.conf.eth0.arp_announce=0",
		"net.ipv6.conf.eth0.accept_dad=1", "net.ipv6.conf.eth0.dad_transmits=1",
		"net.ipv6.neigh.eth0.retrans_time_ms=100")
	hg, err := Dial(WithNetNS(good.FD))
	if err != nil {
		t.Fatal(err)
	}
	defer hg.Close()
	good.Sh(t, "ip link set eth0 up")
	bad.Sh(t, "ip link set eth0 up")
	if err := hg.AddVIPs(ctx, "eth0", []netip.Prefix{netip.MustParsePrefix("10.93.0.1/24"), vip6}); err != nil {
		t.Fatal(err)
	}
	// Wait for the link to be usable, then add the VIP with DAD on.
	time.Sleep(200 * time.Millisecond)
	bad.Sh(t, "ip addr add 10.93.0.1/24 dev eth0")
	bad.Sh(t, "ip addr add "+vip6.String()+" dev eth0")
	hb, err := Dial(WithNetNS(bad.FD))
	if err != nil {
		t.Fatal(err)
	}
	defer hb.Close()
	vips := []netip.Addr{netip.MustParseAddr("10.93.0.1"), vip6.Addr()}
	var problems []Problem
	deadline := time.Now().Add(5 * time.Second)
	for {
		problems, err = hb.Check(ctx, "eth0", vips)
		if err != nil {
			t.Fatal(err)
		}
		if hasSetting(problems, "address "+vip6.Addr().String(), "dadfailed") || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	for _, p := range problems {
		t.Log(p)
	}
	for _, want := range []struct{ setting, value string }{
		{"net.ipv4.conf.eth0.rp_filter", "1"},
		{"net.ipv4.conf.eth0.arp_ignore", "8"},
		{"net.ipv4.conf.eth0.arp_announce", "0"},
		{"address fd00:93::1", "dadfailed"},
	} {
		if !hasSetting(problems, want.setting, want.value) {
			t.Errorf("Check on the bad director misses %s = %s", want.setting, want.value)
		}
	}
	if len(problems) != 4 {
		t.Errorf("%d problems, want 4", len(problems))
	}
	gp, err := hg.Check(ctx, "eth0", vips)
	if err != nil {
		t.Fatal(err)
	}
	if len(gp) != 0 {
		t.Errorf("Check on the good director: %v", gp)
	}
}

func hasSetting(ps []Problem, setting, value string) bool {
	for _, p := range ps {
		if p.Setting == setting && p.Value == value {
			return true
		}
	}
	return false
}
