package main

import (
	"context"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/saru-lb/saru/filter/bucket"

	"github.com/saru-lb/saru/deploy/kernellab"
	"github.com/saru-lb/saru/saru/ipvs"
	"github.com/saru-lb/saru/saru/services"
)

// TestIntegrationLabRenderMatchesIpvsadm: what saructl services prints for
// a kernel's listing is what Debian's ipvsadm prints, byte for byte.
func TestIntegrationLabRenderMatchesIpvsadm(t *testing.T) {
	kernellab.Run(t, func(t *testing.T) {
		if os.Geteuid() != 0 {
			t.Skip("skipping, requires root")
		}
		ctx := context.Background()
		c, err := ipvs.Dial(ipvs.Config{})
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			c.Flush(context.Background())
			c.Close()
		})
		weight := func(w int64) *int64 { return &w }
		desired, err := services.Desired("services", []services.Spec{
			{ID: ipvs.ServiceID{Protocol: bucket.TCP, Address: netip.MustParseAddrPort("10.0.0.1:80")}, Options: services.Options{
				Scheduler: "rr", Forwarding: "masq", RealServers: []services.RealServerConfig{
					{Address: "10.0.1.1:8080", Weight: weight(0)}, {Address: "10.0.1.3:8080", Weight: weight(2)}}}},
			{ID: ipvs.ServiceID{Protocol: bucket.TCP, Address: netip.MustParseAddrPort("10.0.0.2:443")}, Options: services.Options{
				Scheduler: "wrr", PersistenceTimeout: 300, PersistenceNetmask: "255.255.255.0", RealServers: []services.RealServerConfig{
					{Address: "10.0.1.1", Weight: weight(3), UpperThreshold: 100, LowerThreshold: 10}, {Address: "10.0.1.2"}}}},
			{ID: ipvs.ServiceID{Protocol: bucket.UDP, Address: netip.MustParseAddrPort("[2001:db8::1]:53")}, Options: services.Options{
				Scheduler: "mh", SchedulerFlags: []string{"mh-fallback", "mh-port"}, RealServers: []services.RealServerConfig{
					{Address: "[2001:db8::10]:53"}}}},
			{ID: ipvs.ServiceID{FWMark: 9, Family: ipvs.FamilyIPv4}, Options: services.Options{
				Scheduler: "lc", PersistenceTimeout: 60, RealServers: []services.RealServerConfig{
					{Address: "10.0.1.5", Forwarding: "tunnel"}}}},
		})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := (&services.Reconciler{Kernel: c}).Reconcile(ctx, desired); err != nil {
			t.Fatal(err)
		}
		list, err := c.List(ctx)
		if err != nil {
			t.Fatal(err)
		}
		info, err := c.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range []struct {
			opts RenderOptions
			args []string
		}{
			{RenderOptions{Format: FormatPlain}, []string{"-L", "-n"}},
			{RenderOptions{Format: FormatStats}, []string{"-L", "-n", "--stats"}},
			{RenderOptions{Format: FormatStats, Exact: true}, []string{"-L", "-n", "--stats", "--exact"}},
		} {
			raw, err := exec.Command("ipvsadm", f.args...).Output()
			if err != nil {
				t.Fatal(err)
			}
			f.opts.Version, f.opts.ConnTabSize = info.VersionString(), info.ConnTabSize
			if got := Render(services.ToProto(list), f.opts); got != string(raw) {
				t.Errorf("Render differs from ipvsadm %s:\n%s\nipvsadm:\n%s", strings.Join(f.args, " "), got, raw)
			}
		}
	})
}
