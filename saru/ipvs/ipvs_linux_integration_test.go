package ipvs_test

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/saru-lb/saru/filter/bucket"

	"golang.org/x/sys/unix"

	"github.com/saru-lb/saru/deploy/kernellab"
	"github.com/saru-lb/saru/deploy/nstest"
	"github.com/saru-lb/saru/saru/ipvs"
)

// labClient dials IPVS in the guest's root namespace after flushing it.
func labClient(t *testing.T) *ipvs.Client {
	t.Helper()
	nstest.RequireRoot(t)
	c, err := ipvs.Dial(ipvs.Config{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := c.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c.Flush(context.Background())
		c.Close()
	})
	return c
}

// ipvsadm runs Debian's ipvsadm and returns its output with runs of spaces
// collapsed, so tests match content rather than column widths.
func ipvsadm(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command("ipvsadm", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("ipvsadm %s: %v: %s", strings.Join(args, " "), err, out)
	}
	lines := strings.Split(string(out), "\n")
	for i, l := range lines {
		lines[i] = strings.Join(strings.Fields(l), " ")
	}
	return strings.Join(lines, "\n")
}

func TestIntegrationClient(t *testing.T) {
	kernellab.Run(t, func(t *testing.T) {
		t.Run("ServicesAndDestinations", testServicesAndDestinations)
		t.Run("SyncDaemons", testSyncDaemons)
		t.Run("Timeouts", testTimeouts)
		t.Run("KernelRefusalsNameTheObject", testRefusals)
		t.Run("EveryScheduler", testEveryScheduler)
	})
}

func testServicesAndDestinations(t *testing.T) {
	c := labClient(t)
	ctx := context.Background()
	web := ipvs.Service{
		ServiceID: ipvs.ServiceID{Protocol: bucket.TCP, Address: netip.MustParseAddrPort("10.0.0.1:80")},
		Scheduler: "rr", Timeout: 300, NetmaskBits: 24,
	}
	dns6 := ipvs.Service{
		ServiceID: ipvs.ServiceID{Protocol: bucket.UDP, Address: netip.MustParseAddrPort("[2001:db8::1]:53")},
		Scheduler: "mh", Flags: ipvs.FlagSched1 | ipvs.FlagSched2,
	}
	mark := ipvs.Service{ServiceID: ipvs.ServiceID{Family: ipvs.FamilyIPv4, FWMark: 7}, Scheduler: "sh"}
	for _, s := range []ipvs.Service{web, dns6, mark} {
		if err := c.NewService(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	dests := []ipvs.Destination{
		{Address: netip.MustParseAddrPort("10.0.1.1:8080"), Forward: ipvs.ForwardMasq, Weight: 3, UpperThreshold: 100, LowerThreshold: 10},
		{Address: netip.MustParseAddrPort("10.0.1.2:80"), Forward: ipvs.ForwardRoute, Weight: 0},
		{Address: netip.MustParseAddrPort("10.0.1.3:80"), Forward: ipvs.ForwardTunnel, Weight: 1},
	}
	for _, d := range dests {
		if err := c.NewDestination(ctx, web.ServiceID, d); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.NewDestination(ctx, dns6.ServiceID, ipvs.Destination{Address: netip.MustParseAddrPort("[2001:db8::10]:53"), Forward: ipvs.ForwardMasq, Weight: 1}); err != nil {
		t.Fatal(err)
	}

	got, err := c.Service(ctx, web.ServiceID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Scheduler != "rr" || got.Timeout != 300 || got.NetmaskBits != 24 || got.Flags&ipvs.FlagPersistent == 0 || got.Address != web.Address {
		t.Errorf("service read back as %+v", got)
	}
	list, err := c.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 3 {
		t.Fatalf("listed %d services, want 3: %+v", len(list), list)
	}
	byID := map[ipvs.ServiceID]ipvs.Entry{}
	for _, e := range list {
		byID[e.Service.Key()] = e
	}
	e6 := byID[dns6.Key()]
	if e6.Service.Scheduler != "mh" || e6.Service.Flags&(ipvs.FlagSched1|ipvs.FlagSched2) != ipvs.FlagSched1|ipvs.FlagSched2 || e6.Service.NetmaskBits != 128 {
		t.Errorf("IPv6 service read back as %+v", e6.Service)
	}
	if len(e6.Destinations) != 1 || e6.Destinations[0].Address != netip.MustParseAddrPort("[2001:db8::10]:53") {
		t.Errorf("IPv6 destinations %+v", e6.Destinations)
	}
	if m := byID[mark.Key()]; m.Service.FWMark != 7 || m.Service.Scheduler != "sh" {
		t.Errorf("fwmark service read back as %+v", m.Service)
	}
	ew := byID[web.Key()]
	if len(ew.Destinations) != 3 {
		t.Fatalf("web destinations %+v", ew.Destinations)
	}
	for _, want := range dests {
		found := false
		for _, d := range ew.Destinations {
			if d.Address == want.Address {
				found = true
				if d.Forward != want.Forward || d.Weight != want.Weight || d.UpperThreshold != want.UpperThreshold || d.LowerThreshold != want.LowerThreshold {
					t.Errorf("destination %s read back as %+v, want %+v", want.Address, d, want)
				}
			}
		}
		if !found {
			t.Errorf("destination %s missing", want.Address)
		}
	}

	// Debian's ipvsadm, an independent reader, sees the same table.
	out := ipvsadm(t, "-L", "-n")
	for _, want := range []string{
		"TCP 10.0.0.1:80 rr persistent 300 mask 255.255.255.0",
		"-> 10.0.1.1:8080 Masq 3 0 0",
		"-> 10.0.1.2:80 Route 0 0 0",
		"-> 10.0.1.3:80 Tunnel 1 0 0",
		"UDP [2001:db8::1]:53 mh (mh-fallback,mh-port)",
		"-> [2001:db8::10]:53 Masq 1 0 0",
		"FWM 7 sh",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("ipvsadm -L -n lacks %q:\n%s", want, out)
		}
	}
	out = ipvsadm(t, "-L", "-n", "--thresholds")
	if !strings.Contains(out, "10.0.1.1:8080") || !strings.Contains(out, "100") {
		t.Errorf("ipvsadm --thresholds:\n%s", out)
	}

	// Update: scheduler and persistence; weight and forwarding.
	web2 := web
	web2.Scheduler, web2.Timeout, web2.NetmaskBits = "wlc", 0, 0
	if err := c.UpdateService(ctx, web2); err != nil {
		t.Fatal(err)
	}
	d := dests[1]
	d.Weight, d.Forward = 5, ipvs.ForwardMasq
	if err := c.UpdateDestination(ctx, web.ServiceID, d); err != nil {
		t.Fatal(err)
	}
	if err := c.DeleteDestination(ctx, web.ServiceID, dests[2]); err != nil {
		t.Fatal(err)
	}
	if err := c.DeleteService(ctx, mark.ServiceID); err != nil {
		t.Fatal(err)
	}
	out = ipvsadm(t, "-L", "-n")
	if !strings.Contains(out, "TCP 10.0.0.1:80 wlc\n") || strings.Contains(out, "persistent") {
		t.Errorf("update of the service not visible:\n%s", out)
	}
	if !strings.Contains(out, "-> 10.0.1.2:80 Masq 5 0 0") || strings.Contains(out, "10.0.1.3") || strings.Contains(out, "FWM") {
		t.Errorf("destination update/delete not visible:\n%s", out)
	}
	info, err := c.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "version "+info.VersionString()) || info.ConnTabSize == 0 {
		t.Errorf("info %+v does not match %q", info, strings.SplitN(out, "\n", 2)[0])
	}
}

func testSyncDaemons(t *testing.T) {
	c := labClient(t)
	ctx := context.Background()
	if out, err := exec.Command("ip", "link", "add", "ipvssync0", "type", "dummy").CombinedOutput(); err != nil {
		t.Fatalf("add dummy: %v: %s", err, out)
	}
	defer exec.Command("ip", "link", "del", "ipvssync0").Run()
	if out, err := exec.Command("ip", "link", "set", "ipvssync0", "up", "multicast", "on").CombinedOutput(); err != nil {
		t.Fatalf("dummy up: %v: %s", err, out)
	}
	if out, err := exec.Command("ip", "addr", "add", "169.254.80.1/24", "dev", "ipvssync0").CombinedOutput(); err != nil {
		t.Fatalf("dummy addr: %v: %s", err, out)
	}
	master := ipvs.SyncDaemon{State: ipvs.DaemonMaster, Interface: "ipvssync0", SyncID: 9, MaxLen: 1200,
		Group: netip.MustParseAddr("239.1.2.3"), Port: 8850, TTL: 2}
	backup := ipvs.SyncDaemon{State: ipvs.DaemonBackup, Interface: "ipvssync0", SyncID: 9, MaxLen: 1200,
		Group: netip.MustParseAddr("239.1.2.3"), Port: 8850, TTL: 2}
	if err := c.StartDaemon(ctx, master); err != nil {
		t.Fatal(err)
	}
	if err := c.StartDaemon(ctx, backup); err != nil {
		t.Fatal(err)
	}
	ds, err := c.Daemons(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(ds) != 2 {
		t.Fatalf("daemons %+v, want master and backup", ds)
	}
	for _, d := range ds {
		want := master
		if d.State == ipvs.DaemonBackup {
			want = backup
		}
		if d != want {
			t.Errorf("daemon read back as %+v, want %+v", d, want)
		}
	}
	out := ipvsadm(t, "--list", "--daemon")
	for _, want := range []string{"master sync daemon (mcast=ipvssync0, syncid=9", "backup sync daemon (mcast=ipvssync0, syncid=9", "port=8850"} {
		if !strings.Contains(out, want) {
			t.Errorf("ipvsadm --list --daemon lacks %q:\n%s", want, out)
		}
	}
	if err := c.StartDaemon(ctx, master); !errors.Is(err, unix.EEXIST) || !strings.Contains(err.Error(), "master") {
		t.Errorf("second master start: %v, want EEXIST naming master", err)
	}
	if err := c.StopDaemon(ctx, ipvs.DaemonMaster); err != nil {
		t.Fatal(err)
	}
	ds, err = c.Daemons(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(ds) != 1 || ds[0].State != ipvs.DaemonBackup {
		t.Errorf("after stopping master: %+v", ds)
	}
	if err := c.StopDaemon(ctx, ipvs.DaemonBackup); err != nil {
		t.Fatal(err)
	}
	if out := ipvsadm(t, "--list", "--daemon"); strings.TrimSpace(out) != "" {
		t.Errorf("daemons still listed after stop:\n%s", out)
	}
	if err := c.StartDaemon(ctx, ipvs.SyncDaemon{State: ipvs.DaemonMaster, Interface: "nosuchif0"}); err == nil || !strings.Contains(err.Error(), "nosuchif0") {
		t.Errorf("daemon on a missing interface: %v", err)
	}
}

func testTimeouts(t *testing.T) {
	c := labClient(t)
	ctx := context.Background()
	old, err := c.Timeouts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer c.SetTimeouts(ctx, old)
	if err := c.SetTimeouts(ctx, ipvs.Timeouts{TCP: 600 * time.Second, UDP: 42 * time.Second}); err != nil {
		t.Fatal(err)
	}
	got, err := c.Timeouts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got.TCP != 600*time.Second || got.UDP != 42*time.Second || got.TCPFin != old.TCPFin {
		t.Errorf("timeouts %+v after setting tcp 600 udp 42 (were %+v)", got, old)
	}
	if out := ipvsadm(t, "-L", "--timeout"); !strings.Contains(out, fmt.Sprintf("Timeout (tcp tcpfin udp): 600 %d 42", old.TCPFin/time.Second)) {
		t.Errorf("ipvsadm -L --timeout: %s", out)
	}
}

func testRefusals(t *testing.T) {
	c := labClient(t)
	ctx := context.Background()
	svc := ipvs.Service{ServiceID: ipvs.ServiceID{Protocol: bucket.TCP, Address: netip.MustParseAddrPort("10.9.0.1:443")}}
	if err := c.NewService(ctx, svc); err != nil {
		t.Fatal(err)
	}
	err := c.NewService(ctx, svc)
	if !errors.Is(err, unix.EEXIST) || !strings.Contains(err.Error(), "tcp 10.9.0.1:443") {
		t.Errorf("duplicate service: %v", err)
	}
	missing := ipvs.ServiceID{Protocol: bucket.TCP, Address: netip.MustParseAddrPort("10.9.0.2:443")}
	err = c.NewDestination(ctx, missing, ipvs.Destination{Address: netip.MustParseAddrPort("10.9.1.1:443"), Weight: 1})
	if err == nil || !strings.Contains(err.Error(), "10.9.1.1:443") || !strings.Contains(err.Error(), "tcp 10.9.0.2:443") {
		t.Errorf("destination of a missing service: %v", err)
	}
	err = c.DeleteDestination(ctx, svc.ServiceID, ipvs.Destination{Address: netip.MustParseAddrPort("10.9.1.9:443")})
	if err == nil || !strings.Contains(err.Error(), "10.9.1.9:443") {
		t.Errorf("deleting a missing destination: %v", err)
	}
	bad := svc
	bad.Scheduler = "nosuch"
	if err := c.UpdateService(ctx, bad); err == nil || !strings.Contains(err.Error(), `"nosuch"`) {
		t.Errorf("unknown scheduler: %v", err)
	}
	s, err := c.Service(ctx, svc.ServiceID)
	if err != nil || s.Scheduler != ipvs.DefaultScheduler {
		t.Errorf("service after refused update: %+v, %v", s, err)
	}
}

// testEveryScheduler creates a service with each scheduler the package
// knows, so every name is one the kernel accepts.
func testEveryScheduler(t *testing.T) {
	c := labClient(t)
	ctx := context.Background()
	for i, sched := range ipvs.Schedulers() {
		s := ipvs.Service{ServiceID: ipvs.ServiceID{Protocol: bucket.TCP, Address: netip.AddrPortFrom(netip.MustParseAddr("10.8.0.1"), uint16(1000+i))}, Scheduler: sched}
		if err := c.NewService(ctx, s); err != nil {
			t.Errorf("scheduler %s: %v", sched, err)
			continue
		}
		got, err := c.Service(ctx, s.ServiceID)
		if err != nil || got.Scheduler != sched {
			t.Errorf("scheduler %s read back as %q, %v", sched, got.Scheduler, err)
		}
	}
	out := ipvsadm(t, "-L", "-n")
	for i, sched := range ipvs.Schedulers() {
		if want := fmt.Sprintf("TCP 10.8.0.1:%d %s\n", 1000+i, sched); !strings.Contains(out, want) {
			t.Errorf("ipvsadm -L -n lacks %q", want)
		}
	}
}
