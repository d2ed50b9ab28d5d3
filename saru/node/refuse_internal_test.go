package node

import (
	"log/slog"
	"math"
	"net"
	"testing"

	"github.com/hashicorp/memberlist"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/saru-lb/saru/saru/config"
	"github.com/saru-lb/saru/saru/coord"
	"github.com/saru-lb/saru/saru/partition"
)

// A peer gossiping an epoch past the last one is kept out of the member
// list, and the refusal is counted by its reason.
func TestRefuseEpochOutOfRange(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := newMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	n := &Node{cfg: config.Config{ID: "d1", Buckets: 64, Seed: 7}, metrics: m, log: log, refusals: newRefusalLog(log)}
	meta, err := coord.Meta{ID: "a0", Weight: 1, State: partition.Active, Epoch: math.MaxUint64, Applied: 1, GRPC: "a0:7400", Buckets: 64, Seed: 7}.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	d := &delegate{n: n}
	if err := d.NotifyAlive(&memberlist.Node{Name: "a0", Addr: net.IPv4(10, 0, 0, 9), Port: 7946, Meta: meta}); err == nil {
		t.Fatal("peer with epoch 2^64-1 accepted")
	}
	if got := refused(t, reg, coord.RefuseEpoch); got != 1 {
		t.Errorf("saru_refused_peers_total{reason=%q} = %v, want 1", coord.RefuseEpoch, got)
	}
}

func refused(t *testing.T, reg *prometheus.Registry, r coord.Reason) float64 {
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "saru_refused_peers_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "reason" && l.GetValue() == string(r) {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}
