package node_test

import (
	"bytes"
	"context"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/saru-lb/saru/deploy/nstest"
	sarupb "github.com/saru-lb/saru/proto/saru/v1"
)

// logBuffer collects log output while the node writes to it.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// counterValue sums the samples of counter name whose labels include want.
func counterValue(t *testing.T, reg *prometheus.Registry, name string, want map[string]string) float64 {
	t.Helper()
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
	metric:
		for _, m := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			for k, v := range want {
				if labels[k] != v {
					continue metric
				}
			}
			sum += m.GetCounter().GetValue()
		}
	}
	return sum
}

// TestDuplicateIDRefused: a second director started with a live
// director's id (on another address) refuses to start, naming the id and
// the live director's address, and never installs an owned set; the
// cluster does not notice it.
func TestDuplicateIDRefused(t *testing.T) {
	ds := startCluster(t, 2, defaults())
	nstest.WaitFor(t, 10*time.Second, "converge", func() error { return settled(ds, testBuckets) })
	epoch := ds[0].n.Status().Epoch
	twin, err := tryStartDirector(t, "d1", []string{ds[1].n.GossipAddr()}, defaults())
	if err == nil {
		time.Sleep(time.Second)
		owned, _ := twin.filter.get()
		t.Fatalf("a second d1 started while d1 lives at %s; a second later it had installed %d buckets", ds[0].n.GossipAddr(), len(owned))
	}
	t.Logf("refused: %v", err)
	if msg := err.Error(); !strings.Contains(msg, `"d1"`) || !strings.Contains(msg, ds[0].n.GossipAddr()) {
		t.Errorf("error %q does not name the id and the live director's address %s", msg, ds[0].n.GossipAddr())
	}
	if owned, at := twin.filter.get(); !at.IsZero() {
		t.Errorf("the refused twin installed %d buckets", len(owned))
	}
	time.Sleep(500 * time.Millisecond)
	if err := settled(ds, testBuckets); err != nil {
		t.Fatal(err)
	}
	if e := ds[1].n.Status().Epoch; e != epoch {
		t.Errorf("the refused twin changed the epoch: %d -> %d", epoch, e)
	}
}

// TestRestartOnSameAddress: a director that crashed and restarts at once
// on its own gossip address, while its peers still list the dead
// instance, is not taken for a twin: it starts and gets its share back.
func TestRestartOnSameAddress(t *testing.T) {
	ds := startCluster(t, 3, defaults())
	nstest.WaitFor(t, 10*time.Second, "converge", func() error { return settled(ds, testBuckets) })
	o := defaults()
	o.gossip = netip.MustParseAddrPort(ds[1].n.GossipAddr())
	ds[1].n.Stop() // a crash: no leave
	t.Logf("peers list %d live at the restart", ds[0].n.Status().Live)
	d2, err := tryStartDirector(t, "d2", []string{ds[0].n.GossipAddr()}, o)
	if err != nil {
		t.Fatalf("d2 restarted on its own address %s: %v", o.gossip, err)
	}
	ds[1] = d2
	nstest.WaitFor(t, 10*time.Second, "d2 back in service", func() error { return settled(ds, testBuckets) })
}

// TestRefusedRequestsLogRarely: a flood of unauthenticated drains writes a
// handful of log lines; the counter carries the number.
func TestRefusedRequestsLogRarely(t *testing.T) {
	var logs logBuffer
	o := defaults()
	o.log = slog.New(slog.NewTextHandler(&logs, nil))
	o.registry = prometheus.NewRegistry()
	d := startDirector(t, "d1", nil, o)
	nstest.WaitFor(t, 10*time.Second, "active", func() error { return settled([]*director{d}, testBuckets) })
	c := client(t, d.n.Addr())
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	before := strings.Count(logs.String(), "\n")
	start := time.Now()
	const calls = 1000
	for range calls {
		if _, err := c.Drain(ctx, &sarupb.DrainRequest{NodeId: "d1"}); status.Code(err) != codes.Unauthenticated {
			t.Fatalf("drain without credentials: %v, want Unauthenticated", err)
		}
	}
	took := time.Since(start)
	lines := strings.Count(logs.String(), "\n") - before
	// A line a second, after a short burst.
	if limit := 5 + int(took/time.Second); lines > limit {
		t.Errorf("%d refused drains in %v wrote %d log lines, want at most %d", calls, took.Round(time.Millisecond), lines, limit)
	}
	t.Logf("%d refused drains in %v: %d log lines", calls, took.Round(time.Millisecond), lines)
	if got := counterValue(t, o.registry, "saru_refused_requests_total", map[string]string{"method": "drain", "reason": "unauthenticated"}); got != calls {
		t.Errorf("saru_refused_requests_total{method=drain,reason=unauthenticated} = %v, want %d", got, calls)
	}
}

// TestLongNodeIDRefused: a node id longer than any director's is refused
// with InvalidArgument, with or without credentials, and neither the
// answer nor the log repeats it.
func TestLongNodeIDRefused(t *testing.T) {
	var logs logBuffer
	o := defaults()
	o.log = slog.New(slog.NewTextHandler(&logs, nil))
	o.registry = prometheus.NewRegistry()
	d := startDirector(t, "d1", nil, o)
	nstest.WaitFor(t, 10*time.Second, "active", func() error { return settled([]*director{d}, testBuckets) })
	c := client(t, d.n.Addr())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	huge := strings.Repeat("x", 3<<20)
	before := len(logs.String())
	for _, call := range []struct {
		name string
		do   func() error
	}{
		{"drain", func() error { _, err := c.Drain(ctx, &sarupb.DrainRequest{NodeId: huge}); return err }},
		{"drain with token", func() error {
			_, err := c.Drain(withToken(ctx, testToken), &sarupb.DrainRequest{NodeId: huge})
			return err
		}},
		{"undrain with token", func() error {
			_, err := c.Undrain(withToken(ctx, testToken), &sarupb.UndrainRequest{NodeId: huge})
			return err
		}},
	} {
		err := call.do()
		if status.Code(err) != codes.InvalidArgument {
			t.Errorf("%s of a 3 MiB node id: %.200v, want InvalidArgument", call.name, err)
		}
		if msg := status.Convert(err).Message(); len(msg) > 200 {
			t.Errorf("%s: the answer is %d bytes long", call.name, len(msg))
		}
	}
	logged := logs.String()[before:]
	if len(logged) > 2048 {
		t.Errorf("three calls with a 3 MiB node id logged %d bytes", len(logged))
	}
	for _, l := range strings.Split(strings.TrimSpace(logged), "\n") {
		if len(l) > 512 {
			t.Errorf("log line of %d bytes: %.200s...", len(l), l)
		}
	}
	if got := counterValue(t, o.registry, "saru_refused_requests_total", map[string]string{"reason": "invalid-argument"}); got != 3 {
		t.Errorf("saru_refused_requests_total{reason=invalid-argument} = %v, want 3", got)
	}
}
