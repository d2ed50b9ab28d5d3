package daemon

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"

	syncdpb "github.com/saru-lb/saru/proto/syncd/v1"
	"github.com/saru-lb/saru/syncd/conn"
	"github.com/saru-lb/saru/syncd/server"
)

// countingBackend exports what it is fed and counts imports.
type countingBackend struct {
	*conn.MemoryBackend
	imported atomic.Uint64
}

func (c *countingBackend) Import(_ context.Context, es []conn.Entry) error {
	c.imported.Add(uint64(len(es)))
	return nil
}

func benchEntry(origin, i int) conn.Entry {
	return conn.Entry{
		Protocol:    conn.ProtoTCP,
		ClientAddr:  netip.AddrFrom4([4]byte{byte(10 + origin), byte(i >> 16), byte(i >> 8), byte(i)}),
		ClientPort:  uint16(32768 + i%28000),
		VirtualAddr: netip.MustParseAddr("198.51.100.10"), VirtualPort: 443,
		DestAddr: netip.AddrFrom4([4]byte{10, 0, 1, byte(1 + i%20)}), DestPort: 8443,
		Flags: conn.FlagMasq, State: 1, Timeout: 900,
	}
}

// BenchmarkEndToEnd reports entries/s: entries exported by the backends
// of 4 peers on loopback multicast (a quarter each), encoded,
// authenticated, sent, received, verified, decoded and applied, until
// every peer's table holds every entry.
func BenchmarkEndToEnd(b *testing.B) {
	const perNode = 250_000
	const peers = 4
	for range b.N {
		c := newCluster(b, clusterOpts{})
		bes := make([]*countingBackend, peers)
		nodes := make([]*Daemon, peers)
		cancels := make([]context.CancelFunc, peers)
		var wg sync.WaitGroup
		for i := range peers {
			cfg := c.config(fmt.Sprintf("d%d", i))
			cfg.Tick = 5 * time.Millisecond
			bes[i] = &countingBackend{MemoryBackend: conn.NewMemoryBackend()}
			n, err := New(cfg, Deps{Backend: bes[i]})
			if err != nil {
				b.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			cancels[i] = cancel
			nodes[i] = n
			wg.Add(1)
			go func() { defer wg.Done(); _ = n.Run(ctx) }()
			<-n.Ready()
		}
		// Heartbeats: everyone knows and follows everyone (a starting
		// node takes a peer's data only once it follows the peer).
		waitFor(b, 5*time.Second, "peers following each other", func() (bool, string) {
			for _, n := range nodes {
				ps := n.Stats("").Peers
				if len(ps) != peers-1 {
					return false, n.ID()
				}
				for _, p := range ps {
					if !p.CaughtUp {
						return false, n.ID() + " " + p.PeerId
					}
				}
			}
			return true, ""
		})
		batches := make([][][]conn.Entry, peers)
		for i := range peers {
			for j := 0; j < perNode; j += 256 {
				bt := make([]conn.Entry, 0, 256)
				for k := j; k < min(j+256, perNode); k++ {
					bt = append(bt, benchEntry(i, k))
				}
				batches[i] = append(batches[i], bt)
			}
		}
		start := time.Now()
		cpu0 := cpuTime()
		for i := range peers {
			go func() {
				for _, bt := range batches[i] {
					_ = bes[i].Export(context.Background(), bt)
				}
			}()
		}
		total := peers * perNode
		deadline := time.Now().Add(120 * time.Second)
		for {
			done := true
			for _, n := range nodes {
				if n.TableLen() < total {
					done = false
				}
			}
			if done {
				break
			}
			if time.Now().After(deadline) {
				for _, n := range nodes {
					b.Logf("%s holds %d of %d; stats %v", n.ID(), n.TableLen(), total, n.Stats(""))
				}
				b.Fatal("did not converge")
			}
			time.Sleep(time.Millisecond)
		}
		el := time.Since(start)
		cpu := cpuTime() - cpu0
		var retrans, lost uint64
		for _, n := range nodes {
			for _, p := range n.Stats("").Peers {
				retrans += p.RetransmittedPackets
				lost += p.LostPackets
			}
		}
		for _, cancel := range cancels {
			cancel()
		}
		wg.Wait()
		b.ReportMetric(float64(total)/el.Seconds(), "entries/s")
		b.ReportMetric(float64(total*(peers-1))/el.Seconds(), "applies/s")
		// The machine may be shared: entries per CPU-second of this
		// process (all four peers) says what the code costs.
		b.ReportMetric(float64(total)/cpu.Seconds(), "entries/cpu-s")
		b.ReportMetric(float64(retrans), "retransmits")
		b.ReportMetric(float64(lost), "lost-packets")
	}
}

// cpuTime is this process's user and system CPU time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkSnapshot1M reports snapshot-1M-s: a table of 1M entries pulled
// over gRPC (loopback) and applied to an empty table.
func BenchmarkSnapshot1M(b *testing.B) {
	const n = 1 << 20
	c := newCluster(b, clusterOpts{})
	src, err := New(c.config("src"), Deps{})
	if err != nil {
		b.Fatal(err)
	}
	// Filled a chunk at a time, as a pull would: a million entries in
	// one slice would leave the timed part a heap to scan.
	fill := make([]conn.Entry, 0, 16384)
	for i := 0; i < n; i++ {
		e := benchEntry(i%4, i)
		e.Origin = fmt.Sprintf("d%d", i%4)
		e.Version = uint64(i + 1)
		fill = append(fill, e)
		if len(fill) == cap(fill) || i == n-1 {
			src.core.PullChunk(fill, 0, src.now())
			fill = fill[:0]
			src.core.Recycle(src.core.Ready().Import)
		}
	}
	if src.TableLen() != n {
		b.Fatal("fill")
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	gs := grpc.NewServer()
	syncdpb.RegisterSyncServer(gs, server.New(src))
	go func() { _ = gs.Serve(lis) }()
	defer gs.Stop()
	b.ResetTimer()
	for range b.N {
		dst, err := New(c.config("dst"), Deps{Backend: &countingBackend{MemoryBackend: conn.NewMemoryBackend()}})
		if err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		cpu0 := cpuTime()
		got, err := server.Pull(context.Background(), lis.Addr().String(), "", dst.applySnapshot)
		if err != nil {
			b.Fatal(err)
		}
		el := time.Since(start)
		cpu := cpuTime() - cpu0
		if got != n || dst.TableLen() != n {
			b.Fatalf("pulled %d, table %d, want %d", got, dst.TableLen(), n)
		}
		b.ReportMetric(el.Seconds(), "snapshot-1M-s")
		b.ReportMetric(float64(n)/el.Seconds(), "snapshot-entries/s")
		// CPU seconds of both ends together: what the snapshot costs when
		// the machine is shared.
		b.ReportMetric(cpu.Seconds(), "snapshot-1M-cpu-s")
	}
}
