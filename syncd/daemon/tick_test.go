package daemon

import (
	"context"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/saru-lb/saru/syncd/conn"
)

// sink is a transport that counts what is sent and receives nothing.
type sink struct {
	mu   sync.Mutex
	sent int
}

func (s *sink) Send([]byte) error { s.mu.Lock(); s.sent++; s.mu.Unlock(); return nil }
func (s *sink) Recv([]byte) (int, netip.AddrPort, error) {
	select {}
}
func (s *sink) Close() error { return nil }

func (s *sink) count() int { s.mu.Lock(); defer s.mu.Unlock(); return s.sent }

// tick says when it next has work: the next heartbeat when idle, the
// flush of a partly filled packet, a peer's NACK; and what makes work
// kicks the loop.
func TestTickSchedulesNextWork(t *testing.T) {
	cfg := newCluster(t, clusterOpts{}).config("n1")
	cfg.Heartbeat, cfg.Flush, cfg.Tick = 50*time.Millisecond, time.Millisecond, 2*time.Millisecond
	tr := &sink{}
	n, err := New(cfg, Deps{Backend: conn.NewMemoryBackend(), Transport: tr})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	at := func(d time.Duration) time.Time { return n.start.Add(time.Second + d) }
	kicked := func() bool {
		select {
		case <-n.wake:
			return true
		default:
			return false
		}
	}

	if next := n.tick(ctx, at(0)); !next.Equal(at(50*time.Millisecond)) || tr.count() != 1 {
		t.Fatalf("idle: next %v after the first heartbeat (sent %d), want the next heartbeat at +50ms", next.Sub(at(0)), tr.count())
	}
	if kicked() {
		t.Fatal("kicked with nothing to do")
	}

	e := testEntry(1, 1)
	n.mu.Lock()
	n.queueLocked(&e, at(10*time.Millisecond))
	n.mu.Unlock()
	if !kicked() {
		t.Fatal("a queued entry did not kick the loop")
	}
	if next := n.tick(ctx, at(10*time.Millisecond+100*time.Microsecond)); !next.Equal(at(11 * time.Millisecond)) {
		t.Fatalf("queued entry: next at +%v, want its flush at +11ms", next.Sub(at(0)))
	}
	if next := n.tick(ctx, at(11*time.Millisecond)); !next.Equal(at(50*time.Millisecond)) || tr.count() != 2 {
		t.Fatalf("after the flush: next at +%v (sent %d), want the heartbeat at +50ms", next.Sub(at(0)), tr.count())
	}

	from := netip.MustParseAddrPort("192.0.2.2:8848")
	n.applyData(ctx, "n2", 7, 1, false, nil, nil, from, at(20*time.Millisecond))
	if kicked() {
		t.Fatal("an in-order packet kicked the loop")
	}
	n.applyData(ctx, "n2", 7, 3, false, nil, nil, from, at(20*time.Millisecond)) // 2 missing
	if !kicked() {
		t.Fatal("a gap did not kick the loop")
	}
	// The default NACK delay is 2ms, then 30ms between NACKs.
	if next := n.tick(ctx, at(21*time.Millisecond)); !next.Equal(at(22 * time.Millisecond)) {
		t.Fatalf("gap: next at +%v, want the first NACK at +22ms", next.Sub(at(0)))
	}
	if next := n.tick(ctx, at(22*time.Millisecond)); !next.Equal(at(50*time.Millisecond)) || tr.count() != 3 {
		t.Fatalf("after the first NACK: next at +%v (sent %d), want the heartbeat at +50ms before the second NACK at +52ms", next.Sub(at(0)), tr.count())
	}
}
