package ipvs_test

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/netip"
	"regexp"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/saru-lb/saru/deploy/kernellab"
	"github.com/saru-lb/saru/deploy/nstest"
	"github.com/saru-lb/saru/filter/bucket"
	"github.com/saru-lb/saru/saru/ipvs"
	"github.com/saru-lb/saru/saru/services"
)

// TestIntegrationReconcile reconciles the kernel's table with configured
// services through create, update and removal, and reads the result back
// through netlink and, independently, with Debian's ipvsadm.
func TestIntegrationReconcile(t *testing.T) {
	kernellab.Run(t, func(t *testing.T) {
		c := labClient(t)
		rec := &services.Reconciler{Kernel: c}
		ctx := context.Background()

		v1 := mustDesired(t, `
- name: web
  address: 10.0.0.1:80
  scheduler: wrr
  persistence_timeout: 300
  persistence_netmask: 255.255.255.0
  forwarding: masq
  real_servers:
    - {address: 10.0.1.1:8080, weight: 3, upper_threshold: 100, lower_threshold: 10}
    - {address: 10.0.1.2:8080, weight: 1}
- address: "[2001:db8::1]:53"
  protocol: udp
  scheduler: mh
  scheduler_flags: [mh-fallback, mh-port]
  real_servers:
    - {address: "[2001:db8::10]:53"}
- address: 10.0.0.2:443
  scheduler: sh
  forwarding: route
  real_servers:
    - {address: 10.0.1.1}
    - {address: 10.0.1.2}
`)
		res, err := rec.Reconcile(ctx, v1)
		if err != nil {
			t.Fatal(err)
		}
		ops := res.Ops
		if len(ops) != 8 {
			t.Errorf("first reconciliation ran %d operations, want 8 (3 services, 5 destinations): %v", len(ops), ops)
		}
		assertKernelMatches(t, c, v1)
		out := ipvsadm(t, "-L", "-n")
		for _, want := range []string{
			"TCP 10.0.0.1:80 wrr persistent 300 mask 255.255.255.0",
			"-> 10.0.1.1:8080 Masq 3 0 0",
			"-> 10.0.1.2:8080 Masq 1 0 0",
			"UDP [2001:db8::1]:53 mh (mh-fallback,mh-port)",
			"-> [2001:db8::10]:53 Route 1 0 0",
			"TCP 10.0.0.2:443 sh",
			"-> 10.0.1.1:443 Route 1 0 0",
		} {
			if !strings.Contains(out, want+"\n") {
				t.Errorf("ipvsadm -L -n lacks %q:\n%s", want, out)
			}
		}
		if res, err := rec.Reconcile(ctx, v1); err != nil || len(res.Ops) != 0 {
			t.Errorf("second reconciliation ran %v, %v; want nothing", res.Ops, err)
		}

		// Update: scheduler and persistence change, a weight goes to 0, a
		// real server is replaced, a service goes away and a fwmark one comes.
		v2 := mustDesired(t, `
- name: web
  address: 10.0.0.1:80
  scheduler: rr
  forwarding: masq
  real_servers:
    - {address: 10.0.1.1:8080, weight: 0}
    - {address: 10.0.1.3:8080, weight: 2}
- address: "[2001:db8::1]:53"
  protocol: udp
  scheduler: mh
  scheduler_flags: [mh-fallback, mh-port]
  real_servers:
    - {address: "[2001:db8::10]:53"}
- fwmark: 9
  family: inet
  scheduler: lc
  persistence_timeout: 60
  real_servers:
    - {address: 10.0.1.5, forwarding: tunnel}
`)
		res, err = rec.Reconcile(ctx, v2)
		if err != nil {
			t.Fatal(err)
		}
		ops = res.Ops
		var kinds []string
		for _, o := range ops {
			kinds = append(kinds, o.String())
		}
		want := []string{
			"update service tcp 10.0.0.1:80",
			"create destination 10.0.1.3:8080 of service tcp 10.0.0.1:80",
			"update destination 10.0.1.1:8080 of service tcp 10.0.0.1:80",
			"delete destination 10.0.1.2:8080 of service tcp 10.0.0.1:80",
			"create service fwmark 9 inet",
			"create destination 10.0.1.5:0 of service fwmark 9 inet",
			"delete service tcp 10.0.0.2:443",
		}
		if strings.Join(kinds, "\n") != strings.Join(want, "\n") {
			t.Errorf("update ran:\n%s\nwant:\n%s", strings.Join(kinds, "\n"), strings.Join(want, "\n"))
		}
		assertKernelMatches(t, c, v2)
		out = ipvsadm(t, "-L", "-n")
		for _, want := range []string{"TCP 10.0.0.1:80 rr\n", "-> 10.0.1.1:8080 Masq 0 0 0", "-> 10.0.1.3:8080 Masq 2 0 0", "FWM 9 lc persistent 60\n", "-> 10.0.1.5:0 Tunnel 1 0 0"} {
			if !strings.Contains(out, want) {
				t.Errorf("after update, ipvsadm -L -n lacks %q:\n%s", want, out)
			}
		}
		for _, gone := range []string{"10.0.1.2:8080", "10.0.0.2:443"} {
			if strings.Contains(out, gone) {
				t.Errorf("after update, ipvsadm -L -n still shows %s:\n%s", gone, out)
			}
		}

		// Bad input leaves IPVS as it was.
		before := ipvsadm(t, "-S", "-n")
		if _, err := services.Desired("services", []services.Spec{{ID: ipvs.ServiceID{Protocol: bucket.TCP, Address: netip.MustParseAddrPort("10.0.0.1:80")}, Options: services.Options{Scheduler: "fastest"}}}); err == nil || !strings.Contains(err.Error(), "services[0].scheduler") {
			t.Errorf("unknown scheduler: %v", err)
		}
		web := v2[0].Service
		bad := []services.Op{
			{Kind: services.UpdateService, Service: web},
			{Kind: services.CreateDestination, Service: ipvs.Service{ServiceID: ipvs.ServiceID{Protocol: bucket.TCP, Address: netip.MustParseAddrPort("10.0.0.77:80")}, Scheduler: "wlc"},
				Destination: ipvs.Destination{Address: netip.MustParseAddrPort("10.0.1.9:80"), Weight: 1}},
		}
		cur, err := c.List(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := services.Apply(ctx, c, cur, bad); err == nil || !strings.Contains(err.Error(), "10.0.1.9:80 of service tcp 10.0.0.77:80") {
			t.Errorf("destination for a missing service: %v", err)
		}
		wrongFamily := []services.Op{{Kind: services.CreateDestination, Service: web, Destination: ipvs.Destination{Address: netip.MustParseAddrPort("[2001:db8::5]:80"), Forward: ipvs.ForwardMasq, Weight: 1}}}
		if err := services.Apply(ctx, c, cur, wrongFamily); err == nil || !strings.Contains(err.Error(), "[2001:db8::5]:80") {
			t.Errorf("family mismatch: %v", err)
		}
		if after := ipvsadm(t, "-S", "-n"); after != before {
			t.Errorf("refused input changed IPVS:\nbefore:\n%s\nafter:\n%s", before, after)
		}

		// A kernel refusal names the object: the plan says a destination
		// exists that someone else removed.
		gone := v2[0].Destinations[1]
		if err := c.DeleteDestination(ctx, web.ServiceID, gone); err != nil {
			t.Fatal(err)
		}
		stale := []services.Op{{Kind: services.UpdateDestination, Service: web, Destination: gone}}
		err = services.Apply(ctx, c, cur, stale)
		if err == nil || !strings.Contains(err.Error(), "update destination 10.0.1.3:8080 of service tcp 10.0.0.1:80") {
			t.Errorf("kernel refusal: %v", err)
		}
		if res, err := rec.Reconcile(ctx, v2); err != nil || len(res.Ops) != 1 {
			t.Errorf("reconciliation after the outside change ran %v, %v; want the one missing destination", res.Ops, err)
		}
		assertKernelMatches(t, c, v2)
	})
}

// labService is a virtual service as these tests write it: an address
// or a firewall mark, and the IPVS options saru's configuration takes.
type labService struct {
	Address          string `yaml:"address"`
	Protocol         string `yaml:"protocol"`
	FWMark           uint32 `yaml:"fwmark"`
	Family           string `yaml:"family"`
	services.Options `yaml:",inline"`
}

func mustDesired(t *testing.T, y string) []ipvs.Entry {
	t.Helper()
	dec := yaml.NewDecoder(strings.NewReader(y))
	dec.KnownFields(true)
	var ls []labService
	if err := dec.Decode(&ls); err != nil {
		t.Fatal(err)
	}
	specs := make([]services.Spec, len(ls))
	for i, l := range ls {
		specs[i].Options = l.Options
		if l.FWMark != 0 {
			specs[i].ID = ipvs.ServiceID{FWMark: l.FWMark, Family: ipvs.FamilyIPv4}
			if l.Family == "inet6" {
				specs[i].ID.Family = ipvs.FamilyIPv6
			}
			continue
		}
		proto := bucket.TCP
		if l.Protocol != "" {
			p, err := ipvs.ParseProtocol(l.Protocol)
			if err != nil {
				t.Fatal(err)
			}
			proto = p
		}
		specs[i].ID = ipvs.ServiceID{Protocol: proto, Address: netip.MustParseAddrPort(l.Address)}
	}
	es, err := services.Desired("services", specs)
	if err != nil {
		t.Fatal(err)
	}
	return es
}

func assertKernelMatches(t *testing.T, c *ipvs.Client, desired []ipvs.Entry) {
	t.Helper()
	list, err := c.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if ops := services.Diff(desired, list); len(ops) != 0 {
		t.Errorf("kernel differs from the desired table: %v", ops)
	}
}

// ---- traffic through IPVS between namespaces ----

// netns is a namespace of the traffic tests (nstest.New: fresh, lo up,
// deleted on cleanup) with the commands they run in it.
type netns struct {
	*nstest.NetNS
	t    *testing.T
	name string
}

func newNetns(t *testing.T, role string) *netns {
	t.Helper()
	ns := nstest.New(t, "ipvs-"+role)
	return &netns{NetNS: ns, t: t, name: ns.Name}
}

func (n *netns) ip(args ...string) {
	n.t.Helper()
	nstest.Run(n.t, append([]string{"ip", "-n", n.name}, args...)...)
}

func (n *netns) exec(args ...string) string {
	n.t.Helper()
	return nstest.Run(n.t, append([]string{"ip", "netns", "exec", n.name}, args...)...)
}

func (n *netns) sysctl(kv string) { n.t.Helper(); n.exec("sysctl", "-qw", kv) }

// veth links a to b with the given addresses (CIDR), interface names ifa/ifb.
func veth(t *testing.T, a *netns, ifa, addrA string, b *netns, ifb, addrB string) {
	t.Helper()
	nstest.Run(t, "ip", "link", "add", ifa, "netns", a.name, "type", "veth", "peer", "name", ifb, "netns", b.name)
	if addrA != "" {
		a.ip("addr", "add", addrA, "dev", ifa)
	}
	if addrB != "" {
		b.ip("addr", "add", addrB, "dev", ifb)
	}
	a.ip("link", "set", ifa, "up")
	b.ip("link", "set", ifb, "up")
}

// serve answers every TCP connection on addr in n with name, then holds the
// connection open until the client closes it.
func serve(t *testing.T, n *netns, addr, name string) {
	t.Helper()
	serveNet(t, n, "tcp4", addr, name)
}

func serveNet(t *testing.T, n *netns, network, addr, name string) {
	t.Helper()
	var ln net.Listener
	if err := n.Do(func() (err error) { ln, err = net.Listen(network, addr); return err }); err != nil {
		t.Fatalf("listen %s in %s: %v", addr, n.name, err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				fmt.Fprintf(c, "%s\n", name)
				buf := make([]byte, 1)
				c.Read(buf)
			}()
		}
	}()
}

// dial connects from n to addr and returns the connection and the name the
// real server sent.
func dial(t *testing.T, n *netns, addr string) (net.Conn, string) {
	t.Helper()
	return dialNet(t, n, "tcp4", addr)
}

func dialNet(t *testing.T, n *netns, network, addr string) (net.Conn, string) {
	t.Helper()
	var c net.Conn
	if err := n.Do(func() (err error) { c, err = net.DialTimeout(network, addr, 10*time.Second); return err }); err != nil {
		t.Fatalf("dial %s from %s: %v", addr, n.name, err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		t.Fatalf("read from %s via %s: %v", addr, n.name, err)
	}
	return c, strings.TrimSpace(line)
}

// connTable parses ipvsadm -L -c -n: client address -> real server address.
func connTable(t *testing.T, director *netns) map[string]string {
	t.Helper()
	out := director.exec("ipvsadm", "-L", "-c", "-n")
	m := map[string]string{}
	for _, l := range strings.Split(out, "\n") {
		f := strings.Fields(l)
		if len(f) == 6 && f[0] == "TCP" {
			m[f[3]] = f[5]
		}
	}
	if len(m) == 0 {
		t.Fatalf("ipvsadm -L -c -n shows no connections:\n%s", out)
	}
	return m
}

// TestIntegrationTraffic sends client connections through an IPVS-NAT and an
// IPVS-DR service on a director namespace to real-server namespaces, and
// checks that ipvsadm -L -c -n shows the scheduler's choice for each.
func TestIntegrationTraffic(t *testing.T) {
	kernellab.Run(t, func(t *testing.T) {
		nstest.RequireRoot(t)
		t.Run("NAT", testTrafficNAT)
		t.Run("NAT6", testTrafficNAT6)
		t.Run("DR", testTrafficDR)
		t.Run("TUN", testTrafficTUN)
	})
}

func testTrafficNAT(t *testing.T) {
	ctx := context.Background()
	cli, dir := newNetns(t, "natcli"), newNetns(t, "natdir")
	rs := []*netns{newNetns(t, "natrs1"), newNetns(t, "natrs2")}
	veth(t, cli, "c0", "10.10.0.2/24", dir, "d0", "10.10.0.1/24")
	dir.ip("addr", "add", "10.10.0.100/32", "dev", "d0") // the VIP
	dir.sysctl("net.ipv4.ip_forward=1")
	for i, r := range rs {
		veth(t, r, "r0", fmt.Sprintf("10.20.%d.2/24", i+1), dir, fmt.Sprintf("d%d", i+1), fmt.Sprintf("10.20.%d.1/24", i+1))
		r.ip("route", "add", "default", "via", fmt.Sprintf("10.20.%d.1", i+1))
		serve(t, r, ":8080", fmt.Sprintf("rs%d", i+1))
	}

	c, err := ipvs.Dial(ipvs.Config{NetNS: dir.FD})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	rec := &services.Reconciler{Kernel: c}
	cfg := `
- address: 10.10.0.100:80
  scheduler: rr
  forwarding: masq
  real_servers:
    - {address: 10.20.1.2:8080}
    - {address: 10.20.2.2:8080}
`
	if _, err := rec.Reconcile(ctx, mustDesired(t, cfg)); err != nil {
		t.Fatal(err)
	}
	answered := map[string]string{} // client addr -> server name
	counts := map[string]int{}
	for range 4 {
		conn, name := dial(t, cli, "10.10.0.100:80")
		answered[conn.LocalAddr().String()] = name
		counts[name]++
	}
	if counts["rs1"] != 2 || counts["rs2"] != 2 {
		t.Errorf("rr over two real servers answered %v, want 2 each", counts)
	}
	checkConnTable(t, dir, answered, map[string]string{"rs1": "10.20.1.2:8080", "rs2": "10.20.2.2:8080"})

	// Weight 0 is quiescent: new connections go to the other server only.
	quiet := strings.Replace(cfg, "{address: 10.20.2.2:8080}", "{address: 10.20.2.2:8080, weight: 0}", 1)
	if _, err := rec.Reconcile(ctx, mustDesired(t, quiet)); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if _, name := dial(t, cli, "10.10.0.100:80"); name != "rs1" {
			t.Errorf("quiescent rs2 got a new connection (answered by %s)", name)
		}
	}
	list, err := c.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range list[0].Destinations {
		if d.Address.String() == "10.20.2.2:8080" && d.ActiveConns != 2 {
			t.Errorf("quiescent rs2 has %d active connections, want its 2 established ones kept", d.ActiveConns)
		}
	}
	// Counters read over netlink are the ones ipvsadm --stats prints (the
	// CLI's rendering of them is checked against ipvsadm in cmd/saructl). The kernel folds its per-CPU counters into what it reports every
	// 2 s; the held connections are idle, so once folded they stand still.
	deadline := time.Now().Add(15 * time.Second)
	for {
		if list, err = c.List(ctx); err != nil {
			t.Fatal(err)
		}
		st := list[0].Service.Stats
		if st.Connections == 7 && st.PacketsIn > 0 && st.PacketsOut > 0 && st.BytesOut > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("service counters %+v after 7 connections", st)
		}
		time.Sleep(500 * time.Millisecond)
	}
	raw := dir.exec("ipvsadm", "-L", "-n", "--stats", "--exact")
	st := list[0].Service.Stats
	want := fmt.Sprintf("TCP 10.10.0.100:80 %d %d %d %d %d\n", st.Connections, st.PacketsIn, st.PacketsOut, st.BytesIn, st.BytesOut)
	if got := regexp.MustCompile(` +`).ReplaceAllString(raw, " "); !strings.Contains(got, want) {
		t.Errorf("netlink counters %q differ from ipvsadm --stats --exact:\n%s", want, raw)
	}
	for _, d := range list[0].Destinations {
		want := fmt.Sprintf("-> %s %d %d %d %d %d\n", d.Address, d.Stats.Connections, d.Stats.PacketsIn, d.Stats.PacketsOut, d.Stats.BytesIn, d.Stats.BytesOut)
		if got := regexp.MustCompile(` +`).ReplaceAllString(raw, " "); !strings.Contains(got, want) {
			t.Errorf("netlink counters %q of %s differ from ipvsadm --stats --exact:\n%s", want, d.Address, raw)
		}
	}
	t.Logf("director's table:\n%s", raw)

	// Persistence: one client sticks to one real server, through a
	// persistence template the connection table shows.
	persistent := strings.Replace(cfg, "scheduler: rr", "scheduler: rr\n  persistence_timeout: 60", 1)
	if _, err := rec.Reconcile(ctx, mustDesired(t, persistent)); err != nil {
		t.Fatal(err)
	}
	first := ""
	for i := range 4 {
		_, name := dial(t, cli, "10.10.0.100:80")
		if i == 0 {
			first = name
		} else if name != first {
			t.Errorf("persistent service sent the client to %s after %s", name, first)
		}
	}
	if out := dir.exec("ipvsadm", "-L", "-c", "-n"); !regexp.MustCompile(`(?m)^TCP +\S+ +\S+ +10\.10\.0\.2:0 +10\.10\.0\.100:80 +10\.20\.[12]\.2:8080`).MatchString(out) {
		t.Errorf("no persistence template in the connection table:\n%s", out)
	}
}

func testTrafficDR(t *testing.T)  { testTrafficDirect(t, false) }
func testTrafficTUN(t *testing.T) { testTrafficDirect(t, true) }

// testTrafficDirect puts client, director and real servers on one bridged
// LAN. With direct routing the director hands the client's packet to a real
// server by MAC; with tunnelling it encapsulates it in IP-in-IP. Either way
// the real server holds the VIP without announcing it and replies straight
// to the client.
func testTrafficDirect(t *testing.T, tunnel bool) {
	ctx := context.Background()
	p, fwd := "dr", "route"
	if tunnel {
		p, fwd = "tun", "tunnel"
	}
	lan, cli, dir := newNetns(t, p+"lan"), newNetns(t, p+"cli"), newNetns(t, p+"dir")
	rs := []*netns{newNetns(t, p+"rs1"), newNetns(t, p+"rs2")}
	lan.ip("link", "add", "br0", "type", "bridge", "stp_state", "0", "forward_delay", "0")
	lan.ip("link", "set", "br0", "up")
	plug := func(n *netns, port, addr string) {
		veth(t, n, "e0", addr, lan, port, "")
		lan.ip("link", "set", port, "master", "br0")
	}
	plug(cli, "pcli", "10.30.0.2/24")
	plug(dir, "pdir", "10.30.0.1/24")
	dir.ip("addr", "add", "10.30.0.100/32", "dev", "e0") // the VIP, answered for by the director
	for i, r := range rs {
		plug(r, fmt.Sprintf("prs%d", i+1), fmt.Sprintf("10.30.0.%d/24", 11+i))
		if tunnel {
			// The VIP on the IP-in-IP device: decapsulated packets are
			// for it; the outer source is not the client, so no rp_filter.
			r.ip("link", "set", "tunl0", "up")
			r.ip("addr", "add", "10.30.0.100/32", "dev", "tunl0")
			r.sysctl("net.ipv4.conf.all.rp_filter=0")
			r.sysctl("net.ipv4.conf.tunl0.rp_filter=0")
		} else {
			// The VIP on loopback: the real server accepts packets for it.
			r.ip("addr", "add", "10.30.0.100/32", "dev", "lo")
		}
		// Never announce or answer for the VIP on the LAN.
		r.sysctl("net.ipv4.conf.all.arp_ignore=1")
		r.sysctl("net.ipv4.conf.all.arp_announce=2")
		r.sysctl("net.ipv4.conf.e0.arp_ignore=1")
		r.sysctl("net.ipv4.conf.e0.arp_announce=2")
		serve(t, r, ":80", fmt.Sprintf("rs%d", i+1))
	}
	c, err := ipvs.Dial(ipvs.Config{NetNS: dir.FD})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := (&services.Reconciler{Kernel: c}).Reconcile(ctx, mustDesired(t, `
- address: 10.30.0.100:80
  scheduler: wrr
  forwarding: `+fwd+`
  real_servers:
    - {address: 10.30.0.11, weight: 2}
    - {address: 10.30.0.12, weight: 1}
`)); err != nil {
		t.Fatal(err)
	}
	answered := map[string]string{}
	counts := map[string]int{}
	for range 6 {
		conn, name := dial(t, cli, "10.30.0.100:80")
		answered[conn.LocalAddr().String()] = name
		counts[name]++
	}
	if counts["rs1"] != 4 || counts["rs2"] != 2 {
		t.Errorf("wrr 2:1 answered %v, want rs1 4 and rs2 2", counts)
	}
	checkConnTable(t, dir, answered, map[string]string{"rs1": "10.30.0.11:80", "rs2": "10.30.0.12:80"})
	want := map[bool]string{false: "Route", true: "Tunnel"}[tunnel]
	if out := dir.exec("ipvsadm", "-L", "-n"); !strings.Contains(out, want) {
		t.Errorf("ipvsadm -L -n does not show %s forwarding:\n%s", want, out)
	}
	t.Logf("director's connections:\n%s", dir.exec("ipvsadm", "-L", "-c", "-n"))
}

// checkConnTable asserts that the director's connection table sends each
// client connection to the real server that answered it.
func checkConnTable(t *testing.T, director *netns, answered map[string]string, addrOf map[string]string) {
	t.Helper()
	table := connTable(t, director)
	for client, name := range answered {
		if got := table[client]; got != addrOf[name] {
			t.Errorf("ipvsadm -L -c -n sends client %s to %q, but %s (%s) answered", client, got, name, addrOf[name])
		}
	}
}

// testTrafficNAT6 is the NAT case over IPv6, with the sh scheduler: one
// client address always maps to the same real server.
func testTrafficNAT6(t *testing.T) {
	ctx := context.Background()
	cli, dir := newNetns(t, "nat6cli"), newNetns(t, "nat6dir")
	rs := []*netns{newNetns(t, "nat6rs1"), newNetns(t, "nat6rs2")}
	veth(t, cli, "c0", "", dir, "d0", "")
	cli.ip("-6", "addr", "add", "fd00:10::2/64", "dev", "c0", "nodad")
	dir.ip("-6", "addr", "add", "fd00:10::1/64", "dev", "d0", "nodad")
	dir.ip("-6", "addr", "add", "fd00:10::100/128", "dev", "d0", "nodad") // the VIP
	dir.sysctl("net.ipv6.conf.all.forwarding=1")
	for i, r := range rs {
		veth(t, r, "r0", "", dir, fmt.Sprintf("d%d", i+1), "")
		r.ip("-6", "addr", "add", fmt.Sprintf("fd00:2%d::2/64", i+1), "dev", "r0", "nodad")
		dir.ip("-6", "addr", "add", fmt.Sprintf("fd00:2%d::1/64", i+1), "dev", fmt.Sprintf("d%d", i+1), "nodad")
		r.ip("-6", "route", "add", "default", "via", fmt.Sprintf("fd00:2%d::1", i+1))
		serveNet(t, r, "tcp6", "[::]:8080", fmt.Sprintf("rs%d", i+1))
	}
	c, err := ipvs.Dial(ipvs.Config{NetNS: dir.FD})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := (&services.Reconciler{Kernel: c}).Reconcile(ctx, mustDesired(t, `
- address: "[fd00:10::100]:80"
  scheduler: sh
  forwarding: masq
  real_servers:
    - {address: "[fd00:21::2]:8080"}
    - {address: "[fd00:22::2]:8080"}
`)); err != nil {
		t.Fatal(err)
	}
	answered := map[string]string{}
	first := ""
	for i := range 3 {
		conn, name := dialNet(t, cli, "tcp6", "[fd00:10::100]:80")
		answered[conn.LocalAddr().String()] = name
		if i == 0 {
			first = name
		} else if name != first {
			t.Errorf("sh sent one client to %s and %s", first, name)
		}
	}
	checkConnTable(t, dir, answered, map[string]string{"rs1": "[fd00:21::2]:8080", "rs2": "[fd00:22::2]:8080"})
}
