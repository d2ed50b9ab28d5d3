package node_test

import (
	"fmt"

	"github.com/saru-lb/saru/deploy/nstest"
	"github.com/saru-lb/saru/saru/config"
	"slices"
	"sort"
	"testing"
	"time"
)

// BenchmarkFailover measures failover-ms on loopback (real memberlist and
// gRPC, fake filter): from stopping a director without leaving (as kill -9
// does) until every one of its buckets is installed on a survivor. The
// victim rotates over the three directors (so a third of the kills hit the
// leader) and is restarted between trials. It runs once with the standby
// fast path and once with the leader's assignment only; the fast path's
// p99 is also reported as a ratio to the leader-only p99 of the same run.
func BenchmarkFailover(b *testing.B) {
	const trials = 21
	var anchorP99 float64
	for _, mode := range []struct {
		name  string
		fast  bool
		probe time.Duration
	}{
		{"leader-only", false, config.DefaultProbeInterval},
		{"standby-fast-path", true, config.DefaultProbeInterval},
		{"standby-fast-path-probe-200ms", true, 200 * time.Millisecond},
	} {
		b.Run(mode.name, func(b *testing.B) {
			o := defaults()
			o.fast = mode.fast
			o.probe = mode.probe
			ds := startCluster(b, 3, o)
			nstest.WaitFor(b, 15*time.Second, "converge", func() error { return settled(ds, testBuckets) })
			var ms []float64
			for i := range trials {
				v := i % 3
				victim := ds[v]
				owned, _ := victim.filter.get()
				if len(owned) == 0 {
					b.Fatalf("trial %d: %s owns nothing", i, victim.id)
				}
				survivors := slices.Delete(slices.Clone(ds), v, v+1)
				start := time.Now()
				go victim.n.Stop() // memberlist and gRPC shut first, at once; the rest winds down in the background
				for {
					if missing(survivors, owned) == 0 {
						break
					}
					if time.Since(start) > 10*time.Second {
						b.Fatalf("trial %d: %d of %s's buckets not taken over after 10s", i, missing(survivors, owned), victim.id)
					}
					time.Sleep(time.Millisecond)
				}
				ms = append(ms, float64(time.Since(start).Microseconds())/1000)
				// A fresh id that sorts in the victim's place (d1.4 leads like
				// d1 did), so memberlist need not wait to reclaim the name.
				ds[v] = startDirector(b, fmt.Sprintf("d%d.%d", v+1, i), []string{survivors[0].n.GossipAddr()}, o)
				nstest.WaitFor(b, 15*time.Second, fmt.Sprintf("trial %d: %s rejoins", i, victim.id), func() error { return settled(ds, testBuckets) })
			}
			sort.Float64s(ms)
			p50, p99 := percentile(ms, 0.50), percentile(ms, 0.99)
			b.ReportMetric(p50, "failover-p50-ms")
			b.ReportMetric(p99, "failover-p99-ms")
			b.ReportMetric(ms[len(ms)-1], "failover-max-ms")
			if anchorP99 > 0 {
				b.ReportMetric(p99/anchorP99, "p99-vs-leader-only")
			} else {
				anchorP99 = p99
			}
		})
	}
}

func missing(ds []*director, want []uint32) int {
	have := map[uint32]bool{}
	for _, d := range ds {
		owned, _ := d.filter.get()
		for _, b := range owned {
			have[b] = true
		}
	}
	n := 0
	for _, b := range want {
		if !have[b] {
			n++
		}
	}
	return n
}

// percentile of sorted values, nearest rank.
func percentile(sorted []float64, p float64) float64 {
	i := int(p*float64(len(sorted))+0.5) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}
