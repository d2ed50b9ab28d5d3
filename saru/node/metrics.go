package node

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	epoch, applied, owned, members, leader prometheus.Gauge
	failovers, applyErrors                 prometheus.Counter
	applySeconds                           prometheus.Histogram
	events, refused, dropped, refusedCalls *prometheus.CounterVec
}

func newMetrics(r prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		epoch:        prometheus.NewGauge(prometheus.GaugeOpts{Name: "saru_epoch", Help: "Newest assignment epoch this director has."}),
		applied:      prometheus.NewGauge(prometheus.GaugeOpts{Name: "saru_applied_epoch", Help: "Newest assignment epoch installed in the filter."}),
		owned:        prometheus.NewGauge(prometheus.GaugeOpts{Name: "saru_owned_buckets", Help: "Buckets this director accepts packets for."}),
		members:      prometheus.NewGauge(prometheus.GaugeOpts{Name: "saru_live_members", Help: "Live directors, this one included."}),
		leader:       prometheus.NewGauge(prometheus.GaugeOpts{Name: "saru_leader", Help: "1 when this director computes assignments."}),
		failovers:    prometheus.NewCounter(prometheus.CounterOpts{Name: "saru_failovers_total", Help: "Owned sets installed with buckets taken over from dead owners ahead of the leader."}),
		applyErrors:  prometheus.NewCounter(prometheus.CounterOpts{Name: "saru_apply_errors_total", Help: "Failed filter applies."}),
		applySeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "saru_apply_seconds", Help: "Time to install an owned bucket set.", Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14)}),
		events:       prometheus.NewCounterVec(prometheus.CounterOpts{Name: "saru_coordinator_events_total", Help: "Coordinator decisions by reason."}, []string{"reason"}),
		refused:      prometheus.NewCounterVec(prometheus.CounterOpts{Name: "saru_refused_peers_total", Help: "Gossip from peers refused, by reason."}, []string{"reason"}),
		dropped:      prometheus.NewCounterVec(prometheus.CounterOpts{Name: "saru_dropped_assignments_total", Help: "Received assignments not taken, by reason."}, []string{"reason"}),
		refusedCalls: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "saru_refused_requests_total", Help: "gRPC calls refused before any work, by method and reason."}, []string{"method", "reason"}),
	}
	for _, c := range []prometheus.Collector{m.epoch, m.applied, m.owned, m.members, m.leader, m.failovers, m.applyErrors, m.applySeconds, m.events, m.refused, m.dropped, m.refusedCalls} {
		if err := r.Register(c); err != nil {
			return nil, fmt.Errorf("register metrics: %w", err)
		}
	}
	return m, nil
}
