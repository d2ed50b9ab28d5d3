package node

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"testing"

	"github.com/hashicorp/memberlist"
	"github.com/prometheus/client_golang/prometheus"

	sarupb "github.com/saru-lb/saru/proto/saru/v1"
	"github.com/saru-lb/saru/saru/config"
)

// Compression allocated a 64 KiB LZW table for every gossip packet sent;
// in the kernel lab the garbage it made was a fifth of saru's CPU, and a
// starved director is one its peers falsely suspect.
func TestGossipUncompressed(t *testing.T) {
	n := &Node{cfg: config.Config{ID: "d1", GossipBind: netip.MustParseAddrPort("127.0.0.1:7946"),
		ProbeInterval: config.DefaultProbeInterval, ProbeTimeout: config.DefaultProbeTimeout, SuspicionMult: 2},
		log: slog.New(slog.DiscardHandler)}
	mc := n.memberlistConfig()
	if mc.EnableCompression {
		t.Error("memberlist compresses gossip packets")
	}
	if mc.ProbeInterval != config.DefaultProbeInterval || mc.SuspicionMult != 2 || mc.BindPort != 7946 {
		t.Errorf("memberlist config: probe %v, suspicion x%d, port %d: want %v, x2, 7946", mc.ProbeInterval, mc.SuspicionMult, mc.BindPort, config.DefaultProbeInterval)
	}
}

// Gossip that the alive and merge delegates refuse is logged a few times,
// shortened, and counted every time: a flood of bad members must not flood
// the log.
func TestGossipRefusalsLogRarely(t *testing.T) {
	var logs bytes.Buffer
	reg := prometheus.NewRegistry()
	n, err := New(Options{Config: config.Config{ID: "d1", Buckets: 256, Seed: 1, GossipBind: netip.MustParseAddrPort("127.0.0.1:7946")},
		Filter: nopFilter{}, Logger: slog.New(slog.NewTextHandler(&logs, nil)), Registry: reg})
	if err != nil {
		t.Fatal(err)
	}
	mc := n.memberlistConfig()
	huge := strings.Repeat("x", 64<<10) // a gossip packet's worth
	const floods = 1000
	for range floods {
		bad := &memberlist.Node{Name: huge, Meta: []byte("junk")}
		err := mc.Alive.NotifyAlive(bad)
		if err == nil {
			t.Fatal("a member with a 64 KiB name and junk metadata was accepted")
		}
		if len(err.Error()) > 512 {
			t.Fatalf("the refusal memberlist logs is %d bytes", len(err.Error()))
		}
		if mc.Merge.NotifyMerge([]*memberlist.Node{bad}) == nil {
			t.Fatal("a merge with a bad member was accepted")
		}
		// memberlist logs the refusal itself, quoting the name.
		fmt.Fprintf(mc.LogOutput, "2025/01/02 03:04:05 [WARN] memberlist: ignoring alive message for '%s': %v\n", huge, err)
	}
	lines := strings.Split(strings.TrimSpace(logs.String()), "\n")
	if len(lines) > 10 {
		t.Errorf("%d refusals wrote %d log lines", 3*floods, len(lines))
	}
	for _, l := range lines {
		if len(l) > 1024 {
			t.Errorf("log line of %d bytes: %.200s...", len(l), l)
		}
	}
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var refused float64
	for _, f := range fams {
		if f.GetName() == "saru_refused_peers_total" {
			for _, m := range f.GetMetric() {
				refused += m.GetCounter().GetValue()
			}
		}
	}
	if refused != 2*floods {
		t.Errorf("saru_refused_peers_total = %v, want %d", refused, 2*floods)
	}
}

type nopFilter struct{}

func (nopFilter) Apply(context.Context, []uint32) error { return nil }
func (nopFilter) Counters(context.Context) ([]*sarupb.RuleCounter, error) {
	return nil, nil
}
