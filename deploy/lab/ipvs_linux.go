package lab

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"strconv"

	"github.com/saru-lb/saru/filter/bucket"

	"github.com/saru-lb/saru/saru/ipvs"
	"github.com/saru-lb/saru/saru/services"
)

// serviceSpecs are the lab's virtual services: HTTP and the stream
// service on the VIP, round robin over every real server.
func (l *Lab) serviceSpecs() []services.Spec {
	fwd := "route"
	if l.opts.Mode == ModeNAT {
		fwd = "masq"
	}
	var out []services.Spec
	for _, svc := range []struct {
		name string
		port uint16
	}{{"http", HTTPPort}, {"stream", StreamPort}} {
		sp := services.Spec{ID: ipvs.ServiceID{Protocol: bucket.TCP, Address: netip.AddrPortFrom(VIP, svc.port)},
			Options: services.Options{Name: svc.name, Scheduler: "rr", Forwarding: fwd}}
		for _, s := range l.Servers {
			// The address alone: the real server listens on the service's port.
			sp.RealServers = append(sp.RealServers, services.RealServerConfig{Address: s.Addr.String()})
		}
		out = append(out, sp)
	}
	return out
}

// ipvsClient dials IPVS inside the director's namespace.
func ipvsClient(d *Director) (*ipvs.Client, error) {
	f, err := os.Open(netnsDir + "/" + d.NS)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	c, err := ipvs.Dial(ipvs.Config{NetNS: int(f.Fd())})
	if err != nil {
		return nil, &ErrMissing{What: "IPVS in " + d.ID, Why: err.Error()}
	}
	return c, nil
}

// configureIPVS reconciles the director's IPVS table with the lab's
// services, the way saru's director does (services.Reconciler over
// saru/ipvs). It keeps no record, so the director's saru, configured with
// no IPVS services, takes these for another tool's and leaves them alone.
func (l *Lab) configureIPVS(ctx context.Context, d *Director) error {
	desired, err := services.Desired("services", l.serviceSpecs())
	if err != nil {
		return fmt.Errorf("lab services: %w", err)
	}
	c, err := ipvsClient(d)
	if err != nil {
		return err
	}
	defer c.Close()
	if _, err := (&services.Reconciler{Kernel: c}).Reconcile(ctx, desired); err != nil {
		return fmt.Errorf("%s: %w", d.ID, err)
	}
	return nil
}

// ipvsConns returns the IPVS service's connection counter on the director.
func ipvsConns(ctx context.Context, d *Director, port uint16) (uint64, error) {
	c, err := ipvsClient(d)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	es, err := c.List(ctx)
	if err != nil {
		return 0, fmt.Errorf("%s: list IPVS: %w", d.ID, err)
	}
	for _, e := range es {
		if e.Service.Address.Port() == port {
			return e.Service.Stats.Connections, nil
		}
	}
	return 0, fmt.Errorf("%s: no IPVS service on port %d", d.ID, port)
}

// applyLoss installs an nftables rule dropping LossPercent of the syncd
// peer packets the director receives.
func (l *Lab) applyLoss(ctx context.Context, d *Director) error {
	if l.opts.LossPercent == 0 {
		return nil
	}
	rules := "table inet sarulab_loss {\n chain in {\n  type filter hook input priority -300; policy accept;\n" +
		"  iifname \"mgmt0\" udp dport " + strconv.Itoa(syncPort) + " numgen random mod 100 < " + strconv.Itoa(l.opts.LossPercent) + " counter drop\n }\n}\n"
	p := l.work + "/" + d.ID + "-loss.nft"
	if err := os.WriteFile(p, []byte(rules), 0o644); err != nil {
		return err
	}
	if err := nsRun(ctx, d.NS, "nft", "-f", p); err != nil {
		return fmt.Errorf("%s: sync loss rule: %w", d.ID, err)
	}
	return nil
}
