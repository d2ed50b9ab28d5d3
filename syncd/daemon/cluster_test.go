package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/saru-lb/saru/deploy/nstest"
	"github.com/saru-lb/saru/syncd/conn"
	"github.com/saru-lb/saru/syncd/reliable"
	"github.com/saru-lb/saru/syncd/transport"
)

const testKey = "1 000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\n"

var portSeq atomic.Uint32

// testGroup returns a multicast group and port unique to this process and call.
func testGroup() (netip.Addr, uint16) {
	pid := os.Getpid()
	n := portSeq.Add(1)
	return netip.AddrFrom4([4]byte{239, 255, byte(pid >> 8), byte(pid)}), uint16(30000 + (pid*7+int(n)*13)%30000)
}

type testNode struct {
	*Daemon
	be     *conn.MemoryBackend
	lossy  *transport.Lossy
	cancel context.CancelFunc
	done   chan error
}

type clusterOpts struct {
	loss     float64
	reliable reliable.Config
	refresh  time.Duration
	wait     time.Duration
	keyText  string
}

type cluster struct {
	t      testing.TB
	group  netip.Addr
	port   uint16
	keyDir string
	opts   clusterOpts
	nodes  []*testNode
}

func newCluster(t testing.TB, opts clusterOpts) *cluster {
	g, p := testGroup()
	c := &cluster{t: t, group: g, port: p, keyDir: t.TempDir(), opts: opts}
	if c.opts.keyText == "" {
		c.opts.keyText = testKey
	}
	if c.opts.refresh == 0 {
		c.opts.refresh = time.Hour
	}
	if c.opts.wait == 0 {
		c.opts.wait = 300 * time.Millisecond
	}
	t.Cleanup(c.stop)
	return c
}

func (c *cluster) config(id string) Config {
	keyFile := filepath.Join(c.keyDir, id+".key")
	if err := os.WriteFile(keyFile, []byte(c.opts.keyText), 0o600); err != nil {
		c.t.Fatal(err)
	}
	return Config{
		NodeID: id, APIListen: "127.0.0.1:0", KeyFile: keyFile, KeyGrace: time.Minute, MTU: 1500,
		StateDir:     filepath.Join(c.keyDir, id+".state"),
		Transport:    transport.Config{Group: c.group, Port: c.port, Interface: "lo", Loopback: true, ReadBuffer: 64 << 20},
		SnapshotWait: c.opts.wait, Heartbeat: 50 * time.Millisecond, Tick: 2 * time.Millisecond, Flush: time.Millisecond,
		Refresh: c.opts.refresh, Expire: 200 * time.Millisecond, Reliable: c.opts.reliable,
	}
}

func (c *cluster) start(id string) *testNode {
	c.t.Helper()
	return c.startWith(id, func(*Config) {})
}

// startWith starts a node after mod adjusts its configuration.
func (c *cluster) startWith(id string, mod func(*Config)) *testNode {
	c.t.Helper()
	cfg := c.config(id)
	mod(&cfg)
	tr, err := transport.Open(context.Background(), cfg.Transport)
	if err != nil {
		c.t.Fatalf("open transport: %v", err)
	}
	lossy := transport.NewLossy(tr, c.opts.loss, uint64(len(c.nodes)+1))
	be := conn.NewMemoryBackend()
	var logger *slog.Logger
	if os.Getenv("SYNCD_TEST_LOG") != "" {
		logger = slog.New(slog.NewTextHandler(os.Stderr, nil)).With("node", id)
	}
	n, err := New(cfg, Deps{Backend: be, Transport: lossy, Logger: logger})
	if err != nil {
		c.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	tn := &testNode{Daemon: n, be: be, lossy: lossy, cancel: cancel, done: make(chan error, 1)}
	go func() { tn.done <- n.Run(ctx) }()
	select {
	case <-n.Ready():
	case err := <-tn.done:
		c.t.Fatalf("node %s: %v", id, err)
	}
	c.nodes = append(c.nodes, tn)
	return tn
}

func (c *cluster) stop() {
	for _, n := range c.nodes {
		n.cancel()
	}
	for _, n := range c.nodes {
		select {
		case <-n.done:
		case <-time.After(5 * time.Second):
			c.t.Errorf("node %s did not stop", n.ID())
		}
	}
	c.nodes = nil
}

func testEntry(origin, i int) conn.Entry {
	return conn.Entry{
		Protocol:    conn.ProtoTCP,
		ClientAddr:  netip.AddrFrom4([4]byte{10, byte(origin), byte(i >> 8), byte(i)}),
		ClientPort:  uint16(1024 + i),
		VirtualAddr: netip.MustParseAddr("198.51.100.10"), VirtualPort: 443,
		DestAddr: netip.AddrFrom4([4]byte{192, 168, 1, byte(i % 8)}), DestPort: 8443,
		Flags: conn.FlagMasq, State: 1, Timeout: 600,
	}
}

// export makes node n's backend export count entries in batches.
func export(t *testing.T, n *testNode, origin, from, count int) []conn.Entry {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var all []conn.Entry
	batch := make([]conn.Entry, 0, 64)
	for i := from; i < from+count; i++ {
		batch = append(batch, testEntry(origin, i))
		if len(batch) == cap(batch) || i == from+count-1 {
			if err := n.be.Export(ctx, batch); err != nil {
				t.Fatal(err)
			}
			all = append(all, batch...)
			batch = batch[:0]
		}
	}
	return all
}

// waitFor polls cond until it holds or the timeout passes; cond's string
// says what it still waits for.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	nstest.WaitFor(t, timeout, what, func() error {
		if ok, msg := cond(); !ok {
			return errors.New(msg)
		}
		return nil
	})
}

// following waits until every node follows every other's stream: a
// starting node takes a peer's data only once the peer's heartbeats have
// named its current sequence (what came before arrives by snapshot).
func (c *cluster) following() {
	c.t.Helper()
	waitFor(c.t, 5*time.Second, "nodes following each other", func() (bool, string) {
		for _, n := range c.nodes {
			ps := n.Stats("").Peers
			if len(ps) != len(c.nodes)-1 {
				return false, fmt.Sprintf("%s hears %d peers", n.ID(), len(ps))
			}
			for _, p := range ps {
				if !p.CaughtUp {
					return false, fmt.Sprintf("%s does not follow %s yet", n.ID(), p.PeerId)
				}
			}
		}
		return true, ""
	})
}

// allHold waits until every node holds every entry of want with the
// origin's destination, and every node's backend imported the peers' ones.
func (c *cluster) allHold(want map[string][]conn.Entry, timeout time.Duration) {
	c.t.Helper()
	total := 0
	for _, es := range want {
		total += len(es)
	}
	waitFor(c.t, timeout, "every entry on every peer", func() (bool, string) {
		for _, n := range c.nodes {
			if l := n.TableLen(); l != total {
				return false, fmt.Sprintf("%s holds %d of %d", n.ID(), l, total)
			}
			imported := n.be.Imported()
			for origin, es := range want {
				for _, e := range es {
					got, ok := n.Entry(e.Key())
					if !ok || got.Origin != origin || got.DestAddr != e.DestAddr {
						return false, fmt.Sprintf("%s: entry %v from %s missing or wrong (%+v)", n.ID(), e.ClientAddr, origin, got)
					}
					if origin != n.ID() {
						if _, ok := imported[e.Key()]; !ok {
							return false, fmt.Sprintf("%s: entry %v from %s not imported by the backend", n.ID(), e.ClientAddr, origin)
						}
					}
				}
			}
		}
		return true, ""
	})
}

func TestFourPeersConverge(t *testing.T) {
	c := newCluster(t, clusterOpts{})
	for i := 0; i < 4; i++ {
		c.start(fmt.Sprintf("d%d", i))
	}
	c.following()
	want := map[string][]conn.Entry{}
	var wg sync.WaitGroup
	var mu sync.Mutex
	for i, n := range c.nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			es := export(t, n, i, 0, 3000)
			mu.Lock()
			want[n.ID()] = es
			mu.Unlock()
		}()
	}
	wg.Wait()
	c.allHold(want, 20*time.Second)
	for _, n := range c.nodes {
		st := n.Stats("")
		if len(st.Peers) != 3 {
			t.Fatalf("%s sees %d peers", n.ID(), len(st.Peers))
		}
		for _, p := range st.Peers {
			if p.Entries != 3000 || p.RejectedAuth != 0 {
				t.Errorf("%s: peer %s stats %+v", n.ID(), p.PeerId, p)
			}
		}
	}
	waitFor(t, 5*time.Second, "ready", func() (bool, string) {
		for _, n := range c.nodes {
			if !n.Status().Ready {
				return false, n.ID() + " not ready"
			}
		}
		return true, ""
	})
	// Caught up with every sender's sequence, as drain confirmation needs.
	waitFor(t, 5*time.Second, "caught up", func() (bool, string) {
		for _, n := range c.nodes {
			for _, p := range n.Stats("").Peers {
				var seq uint64
				for _, m := range c.nodes {
					if m.ID() == p.PeerId {
						seq = m.Status().Sequence
					}
				}
				if !p.CaughtUp || p.ContiguousSequence < seq {
					return false, fmt.Sprintf("%s: peer %s contiguous %d < %d (caught up %v)", n.ID(), p.PeerId, p.ContiguousSequence, seq, p.CaughtUp)
				}
			}
		}
		return true, ""
	})
}

func testLoss(t *testing.T, loss float64) {
	if testing.Short() {
		t.Skip("lossy convergence is slow")
	}
	c := newCluster(t, clusterOpts{loss: loss})
	for i := 0; i < 4; i++ {
		c.start(fmt.Sprintf("d%d", i))
	}
	c.following()
	want := map[string][]conn.Entry{}
	for i, n := range c.nodes {
		want[n.ID()] = export(t, n, i, 0, 2000)
	}
	c.allHold(want, 30*time.Second)
	var dropped, retrans, lost, snaps uint64
	for _, n := range c.nodes {
		dropped += n.lossy.Dropped.Load()
		for _, p := range n.Stats("").Peers {
			retrans += p.RetransmittedPackets
			lost += p.LostPackets
			snaps += p.Snapshots
		}
	}
	t.Logf("loss %.0f%%: %d datagrams dropped, %d retransmissions received, %d packets given up, %d catch-up snapshots", loss*100, dropped, retrans, lost, snaps)
	if dropped == 0 || retrans == 0 {
		t.Fatalf("loss injection did not bite: dropped %d, retransmitted %d", dropped, retrans)
	}
}

func TestLoss10Percent(t *testing.T) { testLoss(t, 0.10) }
func TestLoss30Percent(t *testing.T) { testLoss(t, 0.30) }

// TestRefreshResendsIdleEntries: local entries go out again once per
// refresh interval, with their remaining timeout, and peers take them as
// refreshes (same version) that keep the entries alive.
func TestRefreshResendsIdleEntries(t *testing.T) {
	c := newCluster(t, clusterOpts{refresh: 300 * time.Millisecond})
	d0, d1 := c.start("d0"), c.start("d1")
	es := export(t, d0, 0, 0, 500)
	c.allHold(map[string][]conn.Entry{"d0": es}, 5*time.Second)
	before, _ := d1.Entry(es[0].Key())
	waitFor(t, 5*time.Second, "two refresh rounds", func() (bool, string) {
		r := d1.counters().Results["refreshed"]
		return r >= 1000, fmt.Sprintf("%d refreshes", r)
	})
	after, _ := d1.Entry(es[0].Key())
	if after.Version != before.Version || after.Origin != "d0" {
		t.Fatalf("a refresh changed the entry: %+v -> %+v", before, after)
	}
}

// TestRestartedPeer: a syncd restarted under the same id counts its
// sequences from 1 again under a newer incarnation; peers follow it
// instead of rejecting its packets as replays, and the restarted one
// pulls its snapshot back.
func TestRestartedPeer(t *testing.T) {
	c := newCluster(t, clusterOpts{})
	d0, d1 := c.start("d0"), c.start("d1")
	first := export(t, d0, 0, 0, 300)
	c.allHold(map[string][]conn.Entry{"d0": first}, 5*time.Second)
	waitFor(t, 5*time.Second, "d1 ready", func() (bool, string) { return d1.Status().Ready, "" })
	oldInc := d1.Stats("d0").Peers[0].Incarnation
	d0.cancel()
	<-d0.done
	c.nodes = c.nodes[1:]
	d0b := c.start("d0")
	second := export(t, d0b, 0, 300, 300)
	c.allHold(map[string][]conn.Entry{"d0": append(first, second...)}, 10*time.Second)
	// Holding every entry can precede the end of the restarted node's
	// snapshot pull by a moment.
	waitFor(t, 5*time.Second, "restarted d0 ready", func() (bool, string) { return d0b.Status().Ready, "" })
	p := d1.Stats("d0").Peers[0]
	if p.Incarnation == oldInc || p.RejectedReplay != 0 {
		t.Fatalf("after restart: %+v (old incarnation %d)", p, oldInc)
	}
}

// TestUnicastPeers: where multicast is not available, the same protocol
// runs over a unicast peer list (here 3 peers on loopback, 10% loss).
func TestUnicastPeers(t *testing.T) {
	c := newCluster(t, clusterOpts{loss: 0.1})
	base := 20000 + (os.Getpid()*11)%30000
	var peers []netip.AddrPort
	for i := 0; i < 3; i++ {
		peers = append(peers, netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(base+i)))
	}
	want := map[string][]conn.Entry{}
	var nodes []*testNode
	for i := 0; i < 3; i++ {
		nodes = append(nodes, c.startWith(fmt.Sprintf("u%d", i), func(cfg *Config) {
			cfg.Transport = transport.Config{Listen: peers[i], Peers: peers}
		}))
	}
	for i, n := range nodes {
		want[n.ID()] = export(t, n, i, 0, 1000)
	}
	c.allHold(want, 20*time.Second)
}

// TestSnapshotMissesNothingWhileEntriesExpire: entries expiring while a
// snapshot streams must not make it skip live ones (removal moves
// records under the stream's cursor).
func TestSnapshotMissesNothingWhileEntriesExpire(t *testing.T) {
	c := newCluster(t, clusterOpts{})
	d0 := c.start("d0")
	var es []conn.Entry
	for i := 0; i < 40000; i++ {
		e := testEntry(i>>16, i&0xffff)
		e.ClientAddr = netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
		e.Timeout = 1 // every other one expires during the stream
		if i%2 == 0 {
			e.Timeout = 600
		}
		es = append(es, e)
	}
	if err := d0.be.Export(context.Background(), es); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "entries held", func() (bool, string) { return d0.TableLen() == 40000, "" })
	got := map[conn.Key]bool{}
	first := true
	err := d0.Snapshot(context.Background(), "", func(chunk []conn.Entry, _ uint64) error {
		for _, e := range chunk {
			got[e.Key()] = true
		}
		if first {
			first = false
			time.Sleep(2500 * time.Millisecond) // the short entries expire meanwhile
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for i, e := range es {
		if e.Timeout == 600 && !got[e.Key()] {
			t.Fatalf("live entry %d (%v) missing from the snapshot", i, e.ClientAddr)
		}
	}
	waitFor(t, 5*time.Second, "expiry resumes after the snapshot", func() (bool, string) {
		return d0.TableLen() == 20000, fmt.Sprint(d0.TableLen())
	})
}
