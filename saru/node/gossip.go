package node

import (
	"bytes"
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
	mc.Conflict = d
	mc.Logger = nil
	ml := n.log.With("component", "memberlist")
	mc.LogOutput = logWriter{l: ml, refusals: newRefusalLog(ml)}
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
// seed differs from ours. It counts a refusal by reason and returns the
// reason with the error.
func (d *delegate) check(node *memberlist.Node) (coord.Meta, string, error) {
	m, reason, err := d.decode(node)
	if err != nil {
		d.n.metrics.refused.WithLabelValues(reason).Inc()
	}
	return m, reason, err
}

func (d *delegate) decode(node *memberlist.Node) (coord.Meta, string, error) {
	if len(node.Name) > maxIDLen {
		return coord.Meta{}, "bad-id", fmt.Errorf("peer %q at %s: name of %d bytes, at most %d", clip(node.Name), node.Address(), len(node.Name), maxIDLen)
	}
	m, err := coord.UnmarshalMeta(node.Meta)
	if err != nil {
		return coord.Meta{}, "bad-meta", fmt.Errorf("peer %s at %s: %w", node.Name, node.Address(), err)
	}
	if m.ID != node.Name {
		return coord.Meta{}, "id-mismatch", fmt.Errorf("peer %s at %s: metadata names %q", node.Name, node.Address(), clip(m.ID))
	}
	c := d.n.cfg
	if r := coord.CheckPeer(coord.Config{ID: c.ID, Buckets: c.Buckets, Seed: c.Seed}, m); r != "" {
		return coord.Meta{}, string(r), fmt.Errorf("peer %s at %s refused (%s): it has %d buckets, seed %d and epoch %d, we have %d and %d",
			node.Name, node.Address(), r, m.Buckets, m.Seed, m.Epoch, c.Buckets, c.Seed)
	}
	return m, "", nil
}

// NotifyAlive keeps refused peers out of the member list.
func (d *delegate) NotifyAlive(node *memberlist.Node) error {
	if node.Name == d.n.cfg.ID {
		return nil
	}
	if _, reason, err := d.check(node); err != nil {
		d.n.refusals.warn(reason, "peer refused", "err", err)
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
		if _, reason, err := d.check(p); err != nil {
			d.n.refusals.warn(reason, "merge refused", "err", err)
			return err
		}
	}
	return nil
}

// NotifyConflict hears of a member gossiping an id another member (or
// this director) already has from another address. memberlist keeps the
// first and ignores the other. While this director starts, a live member
// with our id makes Start refuse; once started, this director keeps
// running: gossip cannot tell the twin from the original, and a running
// director must not be stopped by what a peer says.
//
// A director restarted on its own address is no twin: memberlist takes
// an alive message from the same address as the same member and lets the
// new instance refute the old one's suspect or dead state.
func (d *delegate) NotifyConflict(existing, other *memberlist.Node) {
	d.n.metrics.refused.WithLabelValues("duplicate-id").Inc()
	addr := other.Address()
	if existing.Name == d.n.cfg.ID && !d.n.joined.Load() {
		d.n.twin.CompareAndSwap(nil, &addr)
		return
	}
	d.n.refusals.logf(slog.LevelError, "duplicate-id", "two directors claim one id; the second is ignored",
		"peer", clip(existing.Name), "address", existing.Address(), "other", addr)
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
	m, reason, err := d.check(node)
	if err != nil {
		d.n.refusals.warn(reason, "peer ignored", "err", err)
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

// maxMemberlistLine is the longest memberlist log line kept: its lines
// quote member names and addresses that peers choose.
const maxMemberlistLine = 256

// logWriter turns memberlist's log lines into slog records. Its warnings
// and errors are mostly about what peers sent, so they are rate-limited
// like other refusals.
type logWriter struct {
	l        *slog.Logger
	refusals *refusalLog
}

var _ io.Writer = logWriter{}

func (w logWriter) Write(p []byte) (int, error) {
	b := bytes.TrimSpace(p)
	lvl := slog.LevelDebug
	switch {
	case bytes.Contains(b, []byte("[ERR]")):
		lvl = slog.LevelError
	case bytes.Contains(b, []byte("[WARN]")):
		lvl = slog.LevelWarn
	}
	if _, rest, ok := bytes.Cut(b, []byte("memberlist: ")); ok {
		b = rest
	}
	s := string(b[:min(len(b), maxMemberlistLine)])
	if len(b) > maxMemberlistLine {
		s = fmt.Sprintf("%s...(%d bytes)", strings.ToValidUTF8(s, ""), len(b))
	}
	if lvl == slog.LevelDebug {
		w.l.Log(context.Background(), lvl, s)
	} else {
		w.refusals.logf(lvl, "memberlist-"+lvl.String(), s)
	}
	return len(p), nil
}
