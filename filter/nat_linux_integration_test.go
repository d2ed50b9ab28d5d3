package filter

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

var (
	rsNet    = netip.MustParsePrefix("192.168.96.0/24")
	rsAddr   = netip.MustParseAddr("192.168.96.10")
	client4  = netip.MustParseAddr("10.97.0.100")
	rsGWMAC  = "02:5a:00:00:00:02"
	rsGWAddr = "192.168.96.1/24"
)

// addRealServers attaches a real-server network behind the directors: a
// second hub where every director has the same gateway address and MAC, and
// one real server routing through it.
func (h *hub) addRealServers(t *testing.T) *netNS {
	sw := newNetNS(t, "rshub")
	sw.Sh(t, "ip link add br1 type bridge ageing_time 0 stp_state 0")
	rs := newNetNS(t, "rs")
	members := append([]*netNS{rs}, h.dirs...)
	for i, m := range members {
		port := fmt.Sprintf("q%d", i)
		dev := "eth1"
		if m == rs {
			dev = "eth0"
		}
		m.VethTo(t, dev, sw, port)
		sw.Sh(t, fmt.Sprintf("ip link set %s master br1", port))
		sw.Sh(t, fmt.Sprintf("bridge link set dev %s learning off flood on", port))
		sw.Sh(t, fmt.Sprintf("ip link set %s up", port))
	}
	sw.Sh(t, "ip link set br1 up")
	for _, d := range h.dirs {
		d.Sysctl(t, "net.ipv4.ip_forward=1", "net.ipv4.conf.all.accept_local=1", "net.ipv4.conf.all.send_redirects=0")
		d.IPBatch(t, []string{"link set eth1 address " + rsGWMAC, "addr add " + rsGWAddr + " dev eth1", "link set eth1 up"})
		d.Sysctl(t, "net.ipv4.conf.eth1.accept_local=1", "net.ipv4.conf.eth1.rp_filter=0")
	}
	rs.IPBatch(t, []string{"addr add " + rsAddr.String() + "/24 dev eth0", "link set eth0 up", "route add default via 192.168.96.1"})
	return rs
}

// duplicateWait is how long to keep listening after the first answer: a
// duplicate from a second director would follow within microseconds.
const duplicateWait = 300 * time.Millisecond

// countReplies reads c until no more datagrams come: up to 5 s for the first
// (slow under load), then duplicateWait for duplicates.
func countReplies(c *net.UDPConn) int {
	buf := make([]byte, 64)
	n := 0
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		if _, _, err := c.ReadFromUDPAddrPort(buf); err != nil {
			return n
		}
		if n == 0 {
			_ = c.SetReadDeadline(time.Now().Add(duplicateWait))
		}
		n++
	}
}

func (h *hub) counter(t *testing.T, d int, desc string) uint64 {
	cs, err := h.filters[d].Counters(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cs {
		if c.Description == desc {
			return c.Packets
		}
	}
	t.Fatalf("d%d: no rule %q", d+1, desc)
	return 0
}

// udpEcho listens on addr in ns, counts datagrams per source and answers
// each one.
type udpEcho struct {
	mu    sync.Mutex
	count map[netip.AddrPort]int
	conn  *net.UDPConn
}

func startUDPEcho(t *testing.T, ns *netNS, addr netip.AddrPort, reply bool) *udpEcho {
	e := &udpEcho{count: map[netip.AddrPort]int{}}
	if err := ns.Do(func() (err error) {
		e.conn, err = net.ListenUDP("udp", net.UDPAddrFromAddrPort(addr))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	t.Cleanup(func() { e.conn.Close(); <-done })
	go func() {
		defer close(done)
		buf := make([]byte, 64)
		for {
			_, src, err := e.conn.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			e.mu.Lock()
			e.count[src]++
			e.mu.Unlock()
			if reply {
				_, _ = e.conn.WriteToUDPAddrPort([]byte("re"), src)
			}
		}
	}()
	return e
}

func (e *udpEcho) get(src netip.AddrPort) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.count[src]
}

// TestIntegrationNAT proves the LVS-NAT rules that do not need IPVS:
// a new connection from a real server is forwarded and masqueraded (to the
// VIP) by exactly one director, the owner of its source port, and the
// replies return through that director only; and a reply leaving the real
// server from the VIP (as IPVS rewrites it) is forwarded only by the owner
// of the client's bucket.
func TestIntegrationNAT(t *testing.T) {
	requireRoot(t)
	cfg := hubConfig()
	cfg.NAT = &NATConfig{RealServers: []netip.Prefix{rsNet}}
	h := newHub(t, cfg)
	rs := h.addRealServers(t)
	rng := rand.New(rand.NewPCG(9, 10))
	assign := make([]int, hubBuckets)
	for b := range assign {
		assign[b] = rng.IntN(3)
	}
	h.apply(t, assign, []int{0, 1, 2})
	const n = 200

	t.Run("real-server-outbound", func(t *testing.T) {
		srv := startUDPEcho(t, h.client, netip.AddrPortFrom(client4, 9001), true)
		conns := make([]*net.UDPConn, n)
		err := rs.Do(func() error {
			for i := range n {
				c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(rsAddr, uint16(42000+i))))
				if err != nil {
					return err
				}
				conns[i] = c
				if _, err := c.WriteToUDPAddrPort([]byte("hi"), netip.AddrPortFrom(client4, 9001)); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		replies := make([]int, n)
		var wg sync.WaitGroup
		for i, c := range conns {
			wg.Go(func() {
				defer c.Close()
				replies[i] = countReplies(c)
			})
		}
		wg.Wait()
		want := map[int]uint64{}
		for i := range n {
			port := uint16(42000 + i)
			want[assign[int(port)&(hubBuckets-1)]]++
			// Masqueraded to the VIP, source port kept, exactly once.
			if got := srv.get(netip.AddrPortFrom(vip4, port)); got != 1 {
				t.Errorf("datagram from real-server port %d reached the client %d times as %s:%d", port, got, vip4, port)
			}
			if replies[i] != 1 {
				t.Errorf("real-server port %d got %d replies, want 1", port, replies[i])
			}
		}
		for d := range h.dirs {
			got := h.counter(t, d, rsNet.String()+" new udp sense src-port: owned, accept")
			if got != want[d] {
				t.Errorf("d%d forwarded %d new real-server flows, owns %d", d+1, got, want[d])
			}
		}
	})

	t.Run("real-server-outbound-tcp", func(t *testing.T) {
		var ln net.Listener
		if err := h.client.Do(func() (err error) {
			ln, err = net.Listen("tcp", netip.AddrPortFrom(client4, 9002).String())
			return err
		}); err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				_, _ = c.Write([]byte(c.RemoteAddr().String()))
				c.Close()
			}
		}()
		const conns = 100
		want := map[int]uint64{}
		err := rs.Do(func() error {
			for i := range conns {
				port := uint16(44000 + i)
				want[assign[int(port)&(hubBuckets-1)]]++
				d := net.Dialer{LocalAddr: net.TCPAddrFromAddrPort(netip.AddrPortFrom(rsAddr, port)), Timeout: 5 * time.Second}
				c, err := d.Dial("tcp", netip.AddrPortFrom(client4, 9002).String())
				if err != nil {
					return fmt.Errorf("real-server port %d: %w", port, err)
				}
				_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
				buf := make([]byte, 64)
				k, err := c.Read(buf)
				c.Close()
				if err != nil {
					return fmt.Errorf("real-server port %d: %w", port, err)
				}
				if got, want := string(buf[:k]), netip.AddrPortFrom(vip4, port).String(); got != want {
					return fmt.Errorf("client saw the connection from %s, want %s", got, want)
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		for d := range h.dirs {
			got := h.counter(t, d, rsNet.String()+" new tcp syn sense src-port: owned, accept")
			if got != want[d] {
				t.Errorf("d%d forwarded %d real-server SYNs, owns %d", d+1, got, want[d])
			}
		}
	})

	t.Run("reply-from-vip", func(t *testing.T) {
		// Client sockets the replies are addressed to.
		var echoes []*udpEcho
		for i := range n {
			echoes = append(echoes, startUDPEcho(t, h.client, netip.AddrPortFrom(client4, uint16(43000+i)), false))
		}
		desc := fmt.Sprintf("reply from %s udp/7000 sense src-port: client's bucket owned, accept", vip4)
		before := map[int]uint64{}
		for d := range h.dirs {
			before[d] = h.counter(t, d, desc)
		}
		var c *net.UDPConn
		if err := rs.Do(func() error {
			// The real server speaks as the VIP, as IPVS makes a reply
			// look by the time it leaves the director; IP_TRANSPARENT
			// lets it send from an address it does not hold.
			lc := net.ListenConfig{Control: func(_, _ string, rc syscall.RawConn) error {
				var serr error
				if err := rc.Control(func(fd uintptr) {
					serr = unix.SetsockoptInt(int(fd), unix.SOL_IP, unix.IP_TRANSPARENT, 1)
				}); err != nil {
					return err
				}
				return serr
			}}
			pc, err := lc.ListenPacket(context.Background(), "udp4", netip.AddrPortFrom(vip4, 7000).String())
			if err != nil {
				return err
			}
			c = pc.(*net.UDPConn)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		for i := range n {
			if _, err := c.WriteToUDPAddrPort([]byte("reply"), netip.AddrPortFrom(client4, uint16(43000+i))); err != nil {
				t.Fatal(err)
			}
		}
		// Wait for every reply (slow under load), then for duplicates.
		deadline := time.Now().Add(5 * time.Second)
		for _, e := range echoes {
			for e.get(netip.AddrPortFrom(vip4, 7000)) == 0 && time.Now().Before(deadline) {
				time.Sleep(10 * time.Millisecond)
			}
		}
		time.Sleep(duplicateWait)
		want := map[int]uint64{}
		for i, e := range echoes {
			port := uint16(43000 + i)
			want[assign[int(port)&(hubBuckets-1)]]++
			if got := e.get(netip.AddrPortFrom(vip4, 7000)); got != 1 {
				t.Errorf("reply to client port %d arrived %d times, want 1", port, got)
			}
		}
		for d := range h.dirs {
			if got := h.counter(t, d, desc) - before[d]; got != want[d] {
				t.Errorf("d%d forwarded %d replies, owns the buckets of %d", d+1, got, want[d])
			}
		}
	})
}
