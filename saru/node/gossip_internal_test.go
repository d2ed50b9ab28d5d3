package node

import (
	"log/slog"
	"net/netip"
	"testing"

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
