package node

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/saru-lb/saru/saru/coord"
)

// memberlistConfig tunes memberlist for a LAN where a killed director must
// be declared dead within a second.
func (n *Node) memberlistConfig() *memberlist.Config {
	cfg := n.cfg
	mc := memberlist.DefaultLANConfig()
	mc.Name = cfg.ID
	mc.BindAddr = cfg.GossipBind.Addr().String()
	mc.BindPort = int(cfg.GossipBind.Port())
	if cfg.GossipAdvertise.IsValid() {
		mc.AdvertiseAddr = cfg.GossipAdvertise.Addr().String()
		mc.AdvertisePort = int(cfg.GossipAdvertise.Port())
	}
	mc.ProbeInterval = cfg.ProbeInterval
	mc.ProbeTimeout = cfg.ProbeTimeout
	mc.SuspicionMult = cfg.SuspicionMult
	mc.GossipInterval = cfg.GossipInterval
	mc.GossipNodes = 4
	mc.PushPullInterval = 5 * time.Second
	mc.DeadNodeReclaimTime = time.Second
	mc.TCPTimeout = 2 * time.Second
	// Gossip packets are a few hundred bytes on a LAN; compressing each
	// one allocated a 64 KiB LZW table per packet, and the garbage
	// collector then cost a fifth of saru's CPU. Peers still accept
	// compressed packets from older directors.
	mc.EnableCompression = false
	mc.SecretKey = n.opts.GossipKey
	d := &delegate{n: n}
	mc.Delegate = d
	mc.Events = d
	mc.Alive = d
	mc.Merge = d
	mc.Logger = nil
	mc.LogOutput = logWriter{n.log.With("component", "memberlist")}
	return mc
}

type delegate struct{ n *Node }

func (d *delegate) NodeMeta(limit int) []byte {
	if b := d.n.metaB.Load(); b != nil && len(*b) <= limit {
		return *b
	}
	return nil
}

func (d *delegate) NotifyMsg([]byte)                           {}
func (d *delegate) GetBroadcasts(overhead, limit int) [][]byte { return nil }
func (d *delegate) LocalState(join bool) []byte                { return nil }
func (d *delegate) MergeRemoteState(buf []byte, join bool)     {}

// check decodes a peer's metadata and refuses one whose bucket count or
// seed differs from ours.
func (d *delegate) check(node *memberlist.Node) (coord.Meta, error) {
	m, err := coord.UnmarshalMeta(node.Meta)
	if err != nil {
		d.n.metrics.refused.WithLabelValues("bad-meta").Inc()
		return coord.Meta{}, fmt.Errorf("peer %s at %s: %w", node.Name, node.Address(), err)
	}
	if m.ID != node.Name {
		d.n.metrics.refused.WithLabelValues("id-mismatch").Inc()
		return coord.Meta{}, fmt.Errorf("peer %s at %s: metadata names %q", node.Name, node.Address(), m.ID)
	}
	c := d.n.cfg
	if r := coord.CheckPeer(coord.Config{ID: c.ID, Buckets: c.Buckets, Seed: c.Seed}, m); r != "" {
		d.n.metrics.refused.WithLabelValues(string(r)).Inc()
		return coord.Meta{}, fmt.Errorf("peer %s at %s refused (%s): it has %d buckets, seed %d and epoch %d, we have %d and %d",
			node.Name, node.Address(), r, m.Buckets, m.Seed, m.Epoch, c.Buckets, c.Seed)
	}
	return m, nil
}

// NotifyAlive keeps refused peers out of the member list.
func (d *delegate) NotifyAlive(node *memberlist.Node) error {
	if node.Name == d.n.cfg.ID {
		return nil
	}
	if _, err := d.check(node); err != nil {
		d.n.log.Warn("peer refused", "err", err)
		return err
	}
	return nil
}

// NotifyMerge refuses to merge with a cluster holding a refused peer.
func (d *delegate) NotifyMerge(peers []*memberlist.Node) error {
	for _, p := range peers {
		if p.Name == d.n.cfg.ID {
			continue
		}
		if _, err := d.check(p); err != nil {
			d.n.log.Warn("merge refused", "err", err)
			return err
		}
	}
	return nil
}

func (d *delegate) NotifyJoin(node *memberlist.Node)   { d.alive(node) }
func (d *delegate) NotifyUpdate(node *memberlist.Node) { d.alive(node) }

func (d *delegate) NotifyLeave(node *memberlist.Node) {
	if node.Name == d.n.cfg.ID {
		return
	}
	id := node.Name
	d.n.log.Info("peer gone", "peer", id)
	d.n.enqueue(func(c *coord.Core) { c.PeerDead(id) })
}

func (d *delegate) alive(node *memberlist.Node) {
	if node.Name == d.n.cfg.ID {
		return
	}
	m, err := d.check(node)
	if err != nil {
		d.n.log.Warn("peer ignored", "err", err)
		return
	}
	addr := node.Address() // copied here: memberlist mutates its nodes in place
	d.n.enqueue(func(c *coord.Core) {
		d.n.addrs[m.ID] = addr
		if r := c.PeerAlive(m); r != "" {
			d.n.metrics.refused.WithLabelValues(string(r)).Inc()
		}
	})
}

// logWriter turns memberlist's log lines into slog records.
type logWriter struct{ l *slog.Logger }

var _ io.Writer = logWriter{}

func (w logWriter) Write(p []byte) (int, error) {
	s := strings.TrimSpace(string(p))
	lvl := slog.LevelDebug
	switch {
	case strings.Contains(s, "[ERR]"):
		lvl = slog.LevelError
	case strings.Contains(s, "[WARN]"):
		lvl = slog.LevelWarn
	}
	if i := strings.Index(s, "memberlist: "); i >= 0 {
		s = s[i+len("memberlist: "):]
	}
	w.l.Log(context.Background(), lvl, s)
	return len(p), nil
}
