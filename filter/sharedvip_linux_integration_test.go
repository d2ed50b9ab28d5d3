package filter

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/saru-lb/saru/filter/bucket"
)

// The shared-VIP proof: a hub (bridge with learning off and ageing 0, so it
// floods every frame), three directors with the same VIP and MAC, each
// running the filter and a TCP+UDP responder naming itself, and a client.
// Every exchange must be answered by exactly one director: the one the Go
// bucket function and the assignment predict.

const (
	sharedMAC  = "02:5a:00:00:00:01"
	hubBuckets = 64
	hubSeed    = 0xc0ffee
)

var (
	vip4 = netip.MustParseAddr("10.97.0.1")
	vip6 = netip.MustParseAddr("fd00:97::1")
)

// hubServices covers every sense on both families.
func hubServices() []Service {
	var out []Service
	for _, v := range []netip.Addr{vip4, vip6} {
		out = append(out,
			Service{VIP: v, Protocols: []bucket.Protocol{bucket.TCP, bucket.UDP}, Port: 7000, Sense: bucket.SrcPort},
			Service{VIP: v, Protocols: []bucket.Protocol{bucket.TCP, bucket.UDP}, Port: 7001, Sense: bucket.SrcAddrPort},
			Service{VIP: v, Protocols: []bucket.Protocol{bucket.TCP}, Port: 7002, Sense: bucket.SrcAddr},
			Service{VIP: v, Protocols: []bucket.Protocol{bucket.TCP}, Port: 7003, Sense: bucket.DstAddr},
			Service{VIP: v, Protocols: []bucket.Protocol{bucket.UDP}, Port: 0, Sense: bucket.DstPort},
		)
	}
	return out
}

func hubConfig() Config {
	return Config{Buckets: hubBuckets, Seed: hubSeed, Services: hubServices()}
}

// serviceFor returns the service a packet to dst uses.
func serviceFor(proto string, dst netip.AddrPort) Service {
	var all *Service
	for _, s := range hubServices() {
		if s.VIP != dst.Addr() || !slices.ContainsFunc(s.Protocols, func(p bucket.Protocol) bool { return p.String() == proto }) {
			continue
		}
		if s.Port == dst.Port() {
			return s
		}
		if s.Port == 0 {
			all = &s
		}
	}
	if all == nil {
		panic(fmt.Sprintf("no service for %s %s", proto, dst))
	}
	return *all
}

// responder is one director's TCP and UDP echo of its own name.
type responder struct {
	name    string
	mu      sync.Mutex
	seen    map[string]int // "proto src>dst" -> times answered
	closers []io.Closer
	wg      sync.WaitGroup
}

var (
	hubTCPPorts = []uint16{7000, 7001, 7002, 7003}
	hubUDPPorts = func() []uint16 {
		p := []uint16{7000, 7001}
		for i := range 16 {
			p = append(p, uint16(7100+i))
		}
		return p
	}()
)

func startResponder(t *testing.T, ns *netNS, name string) *responder {
	r := &responder{name: name, seen: map[string]int{}}
	err := ns.Do(func() error {
		for _, v := range []netip.Addr{vip4, vip6} {
			for _, p := range hubTCPPorts {
				ln, err := net.ListenTCP("tcp", net.TCPAddrFromAddrPort(netip.AddrPortFrom(v, p)))
				if err != nil {
					return err
				}
				r.closers = append(r.closers, ln)
				r.wg.Go(func() { r.serveTCP(ln) })
			}
			for _, p := range hubUDPPorts {
				pc, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(v, p)))
				if err != nil {
					return err
				}
				r.closers = append(r.closers, pc)
				r.wg.Go(func() { r.serveUDP(pc) })
			}
		}
		return nil
	})
	t.Cleanup(func() {
		for _, c := range r.closers {
			c.Close()
		}
		r.wg.Wait()
	})
	if err != nil {
		t.Fatalf("responder %s: %v", name, err)
	}
	return r
}

func (r *responder) record(proto string, src, dst netip.AddrPort) {
	r.mu.Lock()
	r.seen[fmt.Sprintf("%s %s>%s", proto, src, dst)]++
	r.mu.Unlock()
}

func (r *responder) count(proto string, src, dst netip.AddrPort) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.seen[fmt.Sprintf("%s %s>%s", proto, src, dst)]
}

func (r *responder) serveTCP(ln *net.TCPListener) {
	for {
		c, err := ln.AcceptTCP()
		if err != nil {
			return
		}
		r.record("tcp", c.RemoteAddr().(*net.TCPAddr).AddrPort(), c.LocalAddr().(*net.TCPAddr).AddrPort())
		_, _ = c.Write([]byte(r.name))
		c.Close()
	}
}

func (r *responder) serveUDP(pc *net.UDPConn) {
	local := pc.LocalAddr().(*net.UDPAddr).AddrPort()
	buf := make([]byte, 64)
	for {
		_, src, err := pc.ReadFromUDPAddrPort(buf)
		if err != nil {
			return
		}
		r.record("udp", src, local)
		_, _ = pc.WriteToUDPAddrPort([]byte(r.name), src)
	}
}

// hub is the test network.
type hub struct {
	client    *netNS
	dirs      []*netNS
	resp      []*responder
	filters   []*Filter
	clientsV4 []netip.Addr
	clientsV6 []netip.Addr
}

const clientAddrs = 40

// newHub builds the network: a client and three directors sharing the VIPs
// and the MAC on a bridge that floods every frame.
func newHub(t *testing.T, cfg Config) *hub {
	h := &hub{}
	sw := newNetNS(t, "hub")
	sw.Sh(t, "ip link add br0 type bridge ageing_time 0 stp_state 0")
	h.client = newNetNS(t, "cl")
	members := []*netNS{h.client}
	for i := range 3 {
		d := newNetNS(t, fmt.Sprintf("d%d", i+1))
		h.dirs = append(h.dirs, d)
		members = append(members, d)
	}
	for i, m := range members {
		port := fmt.Sprintf("p%d", i)
		m.VethTo(t, "eth0", sw, port)
		sw.Sh(t, fmt.Sprintf("ip link set %s master br0", port))
		sw.Sh(t, fmt.Sprintf("bridge link set dev %s learning off flood on", port))
		sw.Sh(t, fmt.Sprintf("ip link set %s up", port))
	}
	sw.Sh(t, "ip link set br0 up")
	for _, d := range h.dirs {
		d.Sysctl(t, "net.ipv4.conf.all.rp_filter=0", "net.ipv4.conf.default.rp_filter=0",
			"net.ipv6.conf.all.accept_dad=0", "net.ipv6.conf.default.accept_dad=0")
		d.IPBatch(t, []string{
			"link set eth0 address " + sharedMAC,
			"addr add " + vip4.String() + "/24 dev eth0",
			"addr add " + vip6.String() + "/64 dev eth0 nodad",
			"link set eth0 up",
		})
	}
	h.client.Sysctl(t, "net.ipv6.conf.all.accept_dad=0", "net.ipv6.conf.default.accept_dad=0")
	lines := []string{"link set eth0 up"}
	for i := range clientAddrs {
		a4 := netip.AddrFrom4([4]byte{10, 97, 0, byte(100 + i)})
		a6 := netip.MustParseAddr(fmt.Sprintf("fd00:97::%x:%x", 0x100+i, (i*0x1357)&0xffff))
		h.clientsV4, h.clientsV6 = append(h.clientsV4, a4), append(h.clientsV6, a6)
		lines = append(lines, fmt.Sprintf("addr add %s/24 dev eth0", a4), fmt.Sprintf("addr add %s/64 dev eth0 nodad", a6))
	}
	h.client.IPBatch(t, lines)
	for i, d := range h.dirs {
		h.resp = append(h.resp, startResponder(t, d, fmt.Sprintf("d%d", i+1)))
		f, err := Open(context.Background(), cfg, WithNetNS(d.FD))
		if err != nil {
			t.Fatalf("open filter in d%d: %v", i+1, err)
		}
		t.Cleanup(func() { _ = f.Close(context.Background()) })
		h.filters = append(h.filters, f)
	}
	return h
}

// apply gives each active director its buckets of assign (bucket -> director).
func (h *hub) apply(t *testing.T, assign []int, active []int) {
	for _, d := range active {
		owned, _ := NewBucketSet(hubBuckets)
		for b, owner := range assign {
			if owner == d {
				_ = owned.Add(uint32(b))
			}
		}
		if err := h.filters[d].Apply(context.Background(), owned); err != nil {
			t.Fatalf("apply d%d: %v", d+1, err)
		}
	}
}

type exchange struct {
	proto    string
	src, dst netip.AddrPort
	want     int // director index
}

func (h *hub) exchanges(assign []int, proto string, v6 bool, n int, portBase uint16) []exchange {
	vip, clients := vip4, h.clientsV4
	if v6 {
		vip, clients = vip6, h.clientsV6
	}
	out := make([]exchange, 0, n)
	for i := range n {
		var dport uint16
		if proto == "tcp" {
			dport = hubTCPPorts[i%len(hubTCPPorts)]
		} else {
			dport = hubUDPPorts[i%len(hubUDPPorts)]
		}
		src := netip.AddrPortFrom(clients[i%len(clients)], portBase+uint16(i))
		dst := netip.AddrPortFrom(vip, dport)
		s := serviceFor(proto, dst)
		b := bucket.Of(s.Sense, hubBuckets, hubSeed, src, dst)
		out = append(out, exchange{proto: proto, src: src, dst: dst, want: assign[b]})
	}
	return out
}

// runTCP connects once per exchange; the answer must name the predicted
// director.
func (h *hub) runTCP(t *testing.T, xs []exchange) {
	const workers = 8
	var mu sync.Mutex
	var errs []error
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			err := h.client.Do(func() error {
				for i := w; i < len(xs); i += workers {
					x := xs[i]
					d := net.Dialer{LocalAddr: net.TCPAddrFromAddrPort(x.src), Timeout: 5 * time.Second}
					c, err := d.Dial("tcp", x.dst.String())
					if err != nil {
						return fmt.Errorf("tcp %s>%s (want d%d): %w", x.src, x.dst, x.want+1, err)
					}
					_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
					got, err := io.ReadAll(c)
					c.Close()
					if err != nil {
						return fmt.Errorf("tcp %s>%s read: %w", x.src, x.dst, err)
					}
					if want := fmt.Sprintf("d%d", x.want+1); string(got) != want {
						return fmt.Errorf("tcp %s>%s answered by %q, want %s", x.src, x.dst, got, want)
					}
				}
				return nil
			})
			if err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
}

// runUDP sends one datagram per exchange from its own socket and collects
// every reply until a quiet period: exactly one, from the predicted director.
func (h *hub) runUDP(t *testing.T, xs []exchange) {
	const batch = 250
	for start := 0; start < len(xs); start += batch {
		part := xs[start:min(start+batch, len(xs))]
		replies := make([][]string, len(part))
		conns := make([]*net.UDPConn, len(part))
		err := h.client.Do(func() error {
			for i, x := range part {
				c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(x.src))
				if err != nil {
					return err
				}
				conns[i] = c
				if _, err := c.WriteToUDPAddrPort([]byte("who"), x.dst); err != nil {
					return fmt.Errorf("udp %s>%s: %w", x.src, x.dst, err)
				}
			}
			return nil
		})
		// Collect every reply: the first may be slow under load, a
		// duplicate would follow it within microseconds.
		var wg sync.WaitGroup
		for i, c := range conns {
			if c == nil {
				continue
			}
			wg.Go(func() {
				defer c.Close()
				buf := make([]byte, 64)
				_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
				for {
					n, _, err := c.ReadFromUDPAddrPort(buf)
					if err != nil {
						return
					}
					if len(replies[i]) == 0 {
						_ = c.SetReadDeadline(time.Now().Add(duplicateWait))
					}
					replies[i] = append(replies[i], string(buf[:n]))
				}
			})
		}
		wg.Wait()
		if err != nil {
			t.Fatal(err)
		}
		bad := 0
		for i, x := range part {
			if want := fmt.Sprintf("d%d", x.want+1); len(replies[i]) != 1 || replies[i][0] != want {
				bad++
				if bad <= 10 {
					t.Errorf("udp %s>%s: replies %q, want exactly [%s]", x.src, x.dst, replies[i], want)
				}
			}
		}
		if bad > 0 {
			for _, d := range h.dirs {
				out, _ := d.Try("nft list chain inet saru prerouting")
				t.Log(out)
			}
			out, _ := h.client.Try("ip -s -s link show eth0")
			t.Log(out)
			t.Fatalf("%d of %d UDP exchanges wrong", bad, len(part))
		}
	}
}

// checkResponders: the predicted director saw each exchange exactly once,
// the others never.
func (h *hub) checkResponders(t *testing.T, xs []exchange) {
	bad := 0
	for _, x := range xs {
		for d, r := range h.resp {
			want := 0
			if d == x.want {
				want = 1
			}
			if got := r.count(x.proto, x.src, x.dst); got != want {
				bad++
				if bad <= 10 {
					t.Errorf("%s %s>%s: d%d answered %d times, want %d", x.proto, x.src, x.dst, d+1, got, want)
				}
			}
		}
	}
	if bad > 0 {
		t.Fatalf("%d responder counts wrong", bad)
	}
}

// ping sends echo-requests from src; exactly count replies, no duplicates,
// and only the owner of src's bucket counted them.
func (h *hub) ping(t *testing.T, assign []int, active []int, src, dst netip.Addr) {
	const count = 3
	icmp := "icmp"
	if dst.Is6() {
		icmp = "icmpv6"
	}
	desc := fmt.Sprintf("%s %s echo-request sense src-addr: owned, accept", dst, icmp)
	before := h.echoCounters(t, active, desc)
	cmd := exec.Command("ip", "netns", "exec", h.client.Name, "ping", "-n", "-c", fmt.Sprint(count), "-i", "0.2", "-W", "2",
		"-I", src.String(), dst.String())
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), fmt.Sprintf("%d received", count)) || strings.Contains(string(out), "DUP!") {
		t.Fatalf("ping %s from %s: %v\n%s", dst, src, err, out)
	}
	after := h.echoCounters(t, active, desc)
	owner := assign[bucket.Of(bucket.SrcAddr, hubBuckets, hubSeed, netip.AddrPortFrom(src, 0), netip.AddrPort{})]
	for _, d := range active {
		want := uint64(0)
		if d == owner {
			want = count
		}
		if got := after[d] - before[d]; got != want {
			t.Errorf("ping %s from %s: d%d accepted %d echo-requests, want %d (owner d%d)", dst, src, d+1, got, want, owner+1)
		}
	}
}

func (h *hub) echoCounters(t *testing.T, active []int, desc string) map[int]uint64 {
	out := map[int]uint64{}
	for _, d := range active {
		cs, err := h.filters[d].Counters(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, c := range cs {
			if c.Description == desc {
				out[d], found = c.Packets, true
			}
		}
		if !found {
			t.Fatalf("d%d: no rule %q", d+1, desc)
		}
	}
	return out
}

func (h *hub) phase(t *testing.T, assign, active []int, portBase uint16) {
	h.phaseFamilies(t, assign, active, portBase, []bool{false, true}, 1000)
}

func (h *hub) phaseFamilies(t *testing.T, assign, active []int, portBase uint16, families []bool, n int) {
	for _, v6 := range families {
		fam := "ipv4"
		if v6 {
			fam = "ipv6"
		}
		t.Run(fam, func(t *testing.T) {
			tcp := h.exchanges(assign, "tcp", v6, n, portBase)
			udp := h.exchanges(assign, "udp", v6, n, portBase)
			h.runTCP(t, tcp)
			h.runUDP(t, udp)
			h.checkResponders(t, tcp)
			h.checkResponders(t, udp)
			per := map[int]int{}
			for _, x := range append(tcp, udp...) {
				per[x.want]++
			}
			for _, d := range active {
				if per[d] == 0 {
					t.Errorf("d%d answered nothing: the test does not exercise it", d+1)
				}
			}
			clients := h.clientsV4
			vip := vip4
			if v6 {
				clients, vip = h.clientsV6, vip6
			}
			for _, src := range clients[:4] {
				h.ping(t, assign, active, src, vip)
			}
			t.Logf("%d TCP connections and %d UDP exchanges, each answered once by the predicted director %v", len(tcp), len(udp), per)
		})
	}
}

func TestIntegrationSharedVIP(t *testing.T) {
	requireRoot(t)
	if testing.Short() {
		t.Skip("skipping the 8000-exchange proof in -short mode")
	}
	h := newHub(t, hubConfig())
	rng := rand.New(rand.NewPCG(1, 2))
	assign := make([]int, hubBuckets)
	for b := range assign {
		assign[b] = rng.IntN(3)
	}
	h.apply(t, assign, []int{0, 1, 2})
	t.Run("three-directors", func(t *testing.T) { h.phase(t, assign, []int{0, 1, 2}, 20000) })
	if t.Failed() {
		return
	}

	// d3 leaves: its link goes down and its buckets move to d1 and d2;
	// nobody else's buckets move.
	h.dirs[2].Sh(t, "ip link set eth0 down")
	if err := h.filters[2].Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	next := append([]int(nil), assign...)
	for b, owner := range next {
		if owner == 2 {
			next[b] = b % 2
		}
	}
	h.apply(t, next, []int{0, 1})
	t.Run("d3-left", func(t *testing.T) { h.phase(t, next, []int{0, 1}, 30000) })
}
