package daemon

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/reflection"
	"google.golang.org/protobuf/proto"

	syncdpb "github.com/saru-lb/saru/proto/syncd/v1"
	"github.com/saru-lb/saru/syncd/conn"
	"github.com/saru-lb/saru/syncd/reliable"
	"github.com/saru-lb/saru/syncd/server"
	"github.com/saru-lb/saru/syncd/table"
	"github.com/saru-lb/saru/syncd/transport"
	"github.com/saru-lb/saru/syncd/wire"
)

// Deps are a Node's collaborators; zero fields are built from the Config.
type Deps struct {
	// Backend is the local table; nil uses a MemoryBackend.
	Backend conn.Backend
	// Transport replaces the one the Config describes (tests inject
	// loss this way).
	Transport transport.Transport
	// Listener replaces listening on Config.APIListen.
	Listener net.Listener
	// Logger; nil logs nowhere.
	Logger *slog.Logger
}

type peer struct {
	id        string
	recv      *reliable.Receiver
	api       string
	ready     bool
	lastSeen  time.Time
	lastHB    time.Time
	entries   uint64 // entries received and applied
	retrans   uint64 // retransmitted packets received
	rejAuth   uint64
	rejReplay map[reliable.Verdict]uint64
	snapshots uint64
	pulling   bool
	wantSnap  bool      // a catch-up snapshot is due
	retryPull time.Time // not before, after a failed one
	announced uint64
}

// Node is one running syncd.
type Node struct {
	cfg   Config
	log   *slog.Logger
	be    conn.Backend
	tr    transport.Transport
	lis   net.Listener
	inc   uint64
	start time.Time
	ready chan struct{}
	// wake asks the tick loop to come back within Tick: an entry is
	// waiting to be flushed or a peer has a gap to NACK. Idle, the loop
	// sleeps until the next heartbeat.
	wake chan struct{}

	keyring atomic.Pointer[wire.Keyring]
	keyMod  time.Time
	// selfPrefix is how our own packets' bodies begin (field 1, sender):
	// multicast loops them back, and they are dropped before verifying.
	selfPrefix []byte

	mu          sync.Mutex
	tab         *table.Table
	snd         *reliable.Sender
	peers       map[string]*peer
	byAddr      map[netip.Addr]string
	rejected    map[wire.Reason]uint64
	results     [table.Invalid + 1]uint64 // by table.Result
	lastVersion uint64
	packer      wire.Packer
	sealer      *wire.Sealer
	buf         []byte
	resend      [][]byte
	ctrlSeq     uint64
	snapState   syncdpb.SnapshotState
	sent        struct{ data, ctrl, retrans, errors, nackedGone uint64 }
	lastFlush   time.Time
	lastHB      time.Time
	expireCur   uint32
	expireDebt  float64
	// snapshotting counts snapshot streams being served: expiry (the only
	// removal, which moves records) pauses meanwhile so that their
	// cursors miss nothing, for at most maxExpiryPause (a stuck stream
	// must not stop expiry for good; refresh repairs what it then misses).
	snapshotting   int
	expiryPausedTo time.Time
	lastKeyPoll    time.Time
	lastSweep      time.Time
	refreshCur     uint32
	refreshDebt    float64
	expired        uint64
	importErrs     uint64
	dupID          uint64

	logMu   sync.Mutex
	logLast map[string]time.Time
	logSupp map[string]int
}

// New checks the configuration, reads the key file and returns a Node.
func New(cfg Config, deps Deps) (*Node, error) {
	keys, err := readKeys(cfg.KeyFile)
	if err != nil {
		return nil, err
	}
	kr, err := wire.NewKeyring(keys)
	if err != nil {
		return nil, fmt.Errorf("key_file %s: %w", cfg.KeyFile, err)
	}
	now := time.Now()
	n := &Node{
		cfg: cfg, log: deps.Logger, be: deps.Backend, tr: deps.Transport, lis: deps.Listener,
		inc: uint64(now.UnixNano()), start: now, ready: make(chan struct{}), wake: make(chan struct{}, 1),
		tab: table.New(now), snd: reliable.NewSender(cfg.Reliable),
		peers: map[string]*peer{}, byAddr: map[netip.Addr]string{},
		rejected:  map[wire.Reason]uint64{},
		snapState: syncdpb.SnapshotState_SNAPSHOT_STATE_PENDING,
		logLast:   map[string]time.Time{}, logSupp: map[string]int{},
	}
	n.selfPrefix = append([]byte{0x0a, byte(len(cfg.NodeID))}, cfg.NodeID...)
	if fi, err := os.Stat(cfg.KeyFile); err == nil {
		n.keyMod = fi.ModTime()
	}
	if n.log == nil {
		n.log = slog.New(slog.DiscardHandler)
	}
	if n.be == nil {
		n.be = conn.NewMemoryBackend()
	}
	n.keyring.Store(kr)
	n.sealer = wire.NewSealer(kr)
	ipHdr := 20
	if cfg.Transport.Group.Is6() || cfg.Transport.Listen.Addr().Is6() {
		ipHdr = 40
	}
	n.packer.Budget = cfg.MTU - ipHdr - 8 - wire.Overhead - wire.PacketHeaderBound(len(cfg.NodeID)) - 2
	if n.packer.Budget < 200 {
		return nil, fmt.Errorf("mtu: %d leaves no room for entries", cfg.MTU)
	}
	return n, nil
}

func readKeys(path string) ([]wire.Key, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("key_file: %w", err)
	}
	keys, err := wire.ParseKeyFile(data)
	if err != nil {
		return nil, fmt.Errorf("key_file %s: %w", path, err)
	}
	return keys, nil
}

// ReloadKeys re-reads the key file; keys it no longer lists stay accepted
// for the configured grace.
func (n *Node) ReloadKeys() error {
	keys, err := readKeys(n.cfg.KeyFile)
	if err != nil {
		return err
	}
	next, err := n.keyring.Load().Rollover(keys, time.Now(), n.cfg.KeyGrace)
	if err != nil {
		return fmt.Errorf("key_file %s: %w", n.cfg.KeyFile, err)
	}
	n.keyring.Store(next)
	n.mu.Lock()
	n.sealer.SetKeyring(next)
	n.mu.Unlock()
	n.log.Info("cluster keys reloaded", "send_key", next.SendID())
	return nil
}

// Ready is closed once the node's API listens and its transport is open.
func (n *Node) Ready() <-chan struct{} { return n.ready }

// APIAddr is the gRPC listen address (after Ready).
func (n *Node) APIAddr() string { return n.lis.Addr().String() }

// ID is the node id.
func (n *Node) ID() string { return n.cfg.NodeID }

// Run runs the node until ctx is done; call it once. It returns nil when
// ctx ends it, or the error that stopped the transport, API or backend.
func (n *Node) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if n.tr == nil {
		tr, err := transport.Open(ctx, n.cfg.Transport)
		if err != nil {
			return fmt.Errorf("sync transport: %w", err)
		}
		n.tr = tr
	}
	defer n.tr.Close()
	if n.lis == nil {
		lis, err := net.Listen("tcp", n.cfg.APIListen)
		if err != nil {
			return fmt.Errorf("api_listen %s: %w", n.cfg.APIListen, err)
		}
		n.lis = lis
	}
	if n.cfg.Advertise == "" || n.cfg.Advertise == n.cfg.APIListen && isPortZero(n.cfg.APIListen) {
		n.cfg.Advertise = n.lis.Addr().String()
	}
	gs := grpc.NewServer()
	syncdpb.RegisterSyncServer(gs, server.New(n))
	reflection.Register(gs)

	var wg sync.WaitGroup
	errc := make(chan error, 4)
	wg.Add(4)
	go func() {
		defer wg.Done()
		if err := gs.Serve(n.lis); err != nil {
			errc <- fmt.Errorf("api serve: %w", err)
		}
	}()
	go func() { defer wg.Done(); n.recvLoop(ctx) }()
	go func() { defer wg.Done(); n.tickLoop(ctx) }()
	go func() {
		defer wg.Done()
		if err := n.be.Run(ctx, n.exportLocal); err != nil && !errors.Is(err, context.Canceled) {
			errc <- fmt.Errorf("backend: %w", err)
		}
	}()
	close(n.ready)
	n.log.Info("syncd running", "node", n.cfg.NodeID, "api", n.lis.Addr().String(), "incarnation", n.inc)
	go n.initialSnapshot(ctx)

	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	cancel()
	gs.Stop()
	n.tr.Close()
	wg.Wait()
	return err
}

func isPortZero(s string) bool {
	ap, err := netip.ParseAddrPort(s)
	return err == nil && ap.Port() == 0
}

// nextVersion is a hybrid logical clock: wall-clock nanoseconds, never
// below a version already seen.
func (n *Node) nextVersion(now time.Time) uint64 {
	v := uint64(now.UnixNano())
	if v <= n.lastVersion {
		v = n.lastVersion + 1
	}
	n.lastVersion = v
	return v
}

// exportLocal takes the backend's local entries.
func (n *Node) exportLocal(es []conn.Entry) {
	now := time.Now()
	n.mu.Lock()
	defer n.mu.Unlock()
	for i := range es {
		e := es[i]
		e.Origin = n.cfg.NodeID
		e.Version = n.nextVersion(now)
		res := n.tab.Upsert(&e, now)
		n.results[res]++
		if res == table.Invalid {
			n.rateLog("invalid_local", "local entry rejected", "error", e.Validate())
			continue
		}
		n.queueLocked(&e, now)
	}
}

func (n *Node) queueLocked(e *conn.Entry, now time.Time) {
	if !n.packer.Fits(e) {
		n.flushLocked(now)
	}
	n.packer.Add(e)
	if n.packer.Len() == 1 {
		n.lastFlush = now
		n.kick()
	}
}

// kick wakes the tick loop (see Node.wake); it never blocks.
func (n *Node) kick() {
	select {
	case n.wake <- struct{}{}:
	default:
	}
}

// flushLocked sends the packed entries as one data packet.
func (n *Node) flushLocked(now time.Time) {
	if n.packer.Len() == 0 {
		return
	}
	seq := n.snd.Next()
	pkt := &syncdpb.Packet{Sender: n.cfg.NodeID, Incarnation: n.inc, Sequence: seq, Batches: n.packer.Batches()}
	dg := n.sealer.AppendHeader(n.buf[:0])
	dg, err := proto.MarshalOptions{}.MarshalAppend(dg, pkt)
	n.packer.Reset()
	if err != nil {
		n.rateLog("marshal", "marshal packet", "error", err)
		return
	}
	n.snd.Record(seq, dg[wire.HeaderLen:], n.mono(now))
	dg = n.sealer.Seal(dg)
	n.buf = dg
	n.sendLocked(dg)
	n.sent.data++
}

func (n *Node) sendLocked(dg []byte) {
	if err := n.tr.Send(dg); err != nil {
		n.sent.errors++
		n.rateLog("send", "sync send failed", "error", err)
	}
}

func (n *Node) mono(now time.Time) int64 { return now.Sub(n.start).Nanoseconds() }

// sendControlLocked sends a heartbeat and/or NACKs.
func (n *Node) sendControlLocked(hb *syncdpb.Heartbeat, nacks []*syncdpb.Nack) {
	n.ctrlSeq++
	pkt := &syncdpb.Packet{Sender: n.cfg.NodeID, Incarnation: n.inc, ControlSequence: n.ctrlSeq, Heartbeat: hb, Nacks: nacks}
	dg, err := n.sealer.SealPacket(n.buf[:0], pkt)
	if err != nil {
		n.rateLog("marshal", "marshal control packet", "error", err)
		return
	}
	n.buf = dg
	n.sendLocked(dg)
	n.sent.ctrl++
}

func (n *Node) recvLoop(ctx context.Context) {
	buf := make([]byte, 65536)
	sealer := wire.NewSealer(n.keyring.Load())
	var pkt syncdpb.Packet
	var es, imp []conn.Entry
	for {
		sz, from, err := n.tr.Recv(buf)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			n.rateLog("recv", "sync receive failed", "error", err)
			time.Sleep(10 * time.Millisecond)
			continue
		}
		if kr := n.keyring.Load(); kr != nil {
			sealer.SetKeyring(kr)
		}
		es, imp = n.handle(ctx, buf[:sz], from, sealer, &pkt, es[:0], imp[:0])
	}
}

// handle processes one datagram; it returns its scratch slices for reuse.
func (n *Node) handle(ctx context.Context, dg []byte, from netip.AddrPort, s *wire.Sealer, pkt *syncdpb.Packet, es, imp []conn.Entry) ([]conn.Entry, []conn.Entry) {
	if len(dg) > wire.HeaderLen && bytes.HasPrefix(dg[wire.HeaderLen:], n.selfPrefix) {
		return es, imp // our own, looped back (a forgery of our id is ignored alike)
	}
	now := time.Now()
	// Data packets in the canonical encoding decode straight into
	// entries; anything else takes the generic path.
	h, fast, handled, r := s.OpenData(dg, now, es[:0])
	if r == wire.OK && handled {
		if h.Sender == n.cfg.NodeID {
			n.sameID(h.Incarnation, from)
			return fast, imp
		}
		return fast, n.applyData(ctx, h.Sender, h.Incarnation, h.Sequence, h.Retransmit, fast, imp, from, now)
	}
	var err error
	if r == wire.OK {
		proto.Reset(pkt)
		r, err = s.OpenPacket(dg, now, pkt)
	}
	if r != wire.OK {
		n.mu.Lock()
		n.rejected[r]++
		if id, ok := n.byAddr[from.Addr()]; ok && r != wire.Malformed {
			n.peers[id].rejAuth++
		}
		n.mu.Unlock()
		n.rateLog("reject_"+r.String(), "sync packet rejected", "reason", r.String(), "from", from.String(), "error", err)
		return es, imp
	}
	if pkt.Sender == n.cfg.NodeID {
		n.sameID(pkt.Incarnation, from)
		return es, imp
	}
	for _, b := range pkt.Batches {
		if es, err = wire.AppendEntries(es, b, pkt.Sender); err != nil {
			n.mu.Lock()
			n.rejected[wire.Malformed]++
			n.mu.Unlock()
			n.rateLog("reject_malformed", "sync packet rejected", "reason", "malformed", "from", from.String(), "error", err)
			return es[:0], imp
		}
	}
	if pkt.Sequence != 0 {
		return es, n.applyData(ctx, pkt.Sender, pkt.Incarnation, pkt.Sequence, pkt.Retransmit, es, imp, from, now)
	}
	mono := n.mono(now)
	n.mu.Lock()
	p := n.peerLocked(pkt.Sender)
	n.byAddr[from.Addr()] = pkt.Sender
	v := p.recv.OnControl(pkt.Incarnation, pkt.ControlSequence, mono)
	if v != reliable.Accept {
		p.rejReplay[v]++
		n.mu.Unlock()
		n.rateLog("replay_"+v.String(), "sync control packet rejected", "reason", v.String(), "peer", pkt.Sender)
		return es, imp
	}
	p.lastSeen = now
	if hb := pkt.Heartbeat; hb != nil {
		p.recv.OnHeartbeat(hb.HighestSequence, hb.LowestRetained, mono)
		p.api, p.ready, p.announced, p.lastHB = hb.ApiAddress, hb.Ready, hb.Entries, now
		if p.recv.Pending() || p.wantSnap {
			n.kick()
		}
	}
	for _, nk := range pkt.Nacks {
		if nk.Target != n.cfg.NodeID || nk.Incarnation != n.inc {
			continue
		}
		ranges := make([]reliable.Range, 0, len(nk.Ranges))
		for _, r := range nk.Ranges {
			ranges = append(ranges, reliable.Range{First: r.First, Count: r.Count})
		}
		var gone int
		n.resend, gone = n.snd.OnNack(ranges, mono, n.resend[:0])
		n.sent.nackedGone += uint64(gone)
		for _, body := range n.resend {
			dg := n.sealer.AppendHeader(n.buf[:0])
			dg = append(dg, body...)
			dg = append(dg, 0x28, 0x01) // field 5 (retransmit) = true
			dg = n.sealer.Seal(dg)
			n.buf = dg
			n.sendLocked(dg)
			n.sent.retrans++
		}
	}
	n.mu.Unlock()
	return es, imp
}

// sameID handles a packet carrying our own id: looped back, or another
// syncd misconfigured with our id.
func (n *Node) sameID(inc uint64, from netip.AddrPort) {
	if inc == n.inc {
		return
	}
	n.mu.Lock()
	n.dupID++
	n.mu.Unlock()
	n.rateLog("dup_id", "another syncd uses this node id", "node", n.cfg.NodeID, "from", from.String())
}

// applyData checks a data packet's sequence against the sender's receive
// window and applies its entries; it returns imp (reused scratch).
func (n *Node) applyData(ctx context.Context, sender string, inc, seq uint64, retransmit bool, es, imp []conn.Entry, from netip.AddrPort, now time.Time) []conn.Entry {
	n.mu.Lock()
	p := n.peerLocked(sender)
	n.byAddr[from.Addr()] = sender
	v := p.recv.OnData(inc, seq, n.mono(now))
	if v != reliable.Accept {
		p.rejReplay[v]++
		n.mu.Unlock()
		if v != reliable.Duplicate || !retransmit {
			n.rateLog("replay_"+v.String(), "sync packet rejected", "reason", v.String(), "peer", sender, "seq", seq)
		}
		return imp
	}
	p.lastSeen = now
	if retransmit {
		p.retrans++
	}
	if p.recv.Pending() {
		n.kick()
	}
	imp = imp[:0]
	for i := range es {
		if es[i].Version > n.lastVersion {
			n.lastVersion = es[i].Version
		}
		res := n.tab.UpsertValid(&es[i], now) // the decoders validated it
		n.results[res]++
		switch res {
		case table.Inserted, table.Updated, table.Refreshed:
			p.entries++
			imp = append(imp, es[i])
		}
	}
	n.mu.Unlock()
	if len(imp) > 0 {
		n.importEntries(ctx, imp)
	}
	return imp
}

func (n *Node) importEntries(ctx context.Context, es []conn.Entry) {
	if err := n.be.Import(ctx, es); err != nil {
		n.mu.Lock()
		n.importErrs++
		n.mu.Unlock()
		n.rateLog("import", "backend import failed", "entries", len(es), "error", err)
	}
}

func (n *Node) peerLocked(id string) *peer {
	p, ok := n.peers[id]
	if !ok {
		recv := reliable.NewReceiver(n.cfg.Reliable)
		if n.snapState != syncdpb.SnapshotState_SNAPSHOT_STATE_COMPLETE {
			// Starting: take the peer's history by snapshot, not by
			// NACKing its whole retransmit ring.
			recv = reliable.NewJoiningReceiver(n.cfg.Reliable)
		}
		p = &peer{id: id, recv: recv, rejReplay: map[reliable.Verdict]uint64{}}
		n.peers[id] = p
		n.log.Info("peer heard", "peer", id)
	}
	return p
}

// tickLoop runs tick when it next has work, and never sooner than Tick
// after the last run: at the next heartbeat when idle, within Tick when
// kicked. A fixed Tick-period ticker kept every idle syncd waking 200
// times a second.
func (n *Node) tickLoop(ctx context.Context) {
	t := time.NewTimer(n.cfg.Tick)
	defer t.Stop()
	due := time.Now().Add(n.cfg.Tick)
	for {
		select {
		case <-ctx.Done():
			return
		case <-n.wake:
			if at := time.Now().Add(n.cfg.Tick); at.Before(due) {
				due = at
				t.Reset(time.Until(due))
			}
		case now := <-t.C:
			due = n.tick(ctx, now)
			if soonest := now.Add(n.cfg.Tick); due.Before(soonest) {
				due = soonest
			}
			t.Reset(due.Sub(now))
		}
	}
}

// maxExpiryPause bounds how long snapshot streams hold expiry back.
const maxExpiryPause = time.Minute

// NACK sizing: at most maxRangesPerPacket ranges in one Nack; a range
// encodes in at most rangeBytes, a Nack's own fields in nackOverhead plus
// the target id.
const (
	maxRangesPerPacket = 64
	rangeBytes         = 2 + 11 + 6
	nackOverhead       = 3 + 2 + 11
)

// tick does what is due at now and returns when it next has work.
func (n *Node) tick(ctx context.Context, now time.Time) time.Time {
	if now.Sub(n.lastKeyPoll) >= 2*time.Second {
		n.lastKeyPoll = now
		if fi, err := os.Stat(n.cfg.KeyFile); err == nil && !fi.ModTime().Equal(n.keyMod) {
			n.keyMod = fi.ModTime()
			if err := n.ReloadKeys(); err != nil {
				n.log.Error("cluster key reload failed; keeping the current keys", "error", err)
			}
		}
	}
	mono := n.mono(now)
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.packer.Len() > 0 && now.Sub(n.lastFlush) >= n.cfg.Flush {
		n.flushLocked(now)
	}
	var nacks []*syncdpb.Nack
	var ranges []reliable.Range
	for _, p := range n.peers {
		ranges = p.recv.Tick(mono, ranges[:0])
		for len(ranges) > 0 {
			k := min(len(ranges), maxRangesPerPacket)
			nk := &syncdpb.Nack{Target: p.id, Incarnation: p.recv.Incarnation()}
			for _, r := range ranges[:k] {
				nk.Ranges = append(nk.Ranges, &syncdpb.SequenceRange{First: r.First, Count: r.Count})
			}
			ranges = ranges[k:]
			nacks = append(nacks, nk)
		}
		// A request waits for the peer's API address (its heartbeat) and
		// survives a failed pull.
		p.wantSnap = p.recv.TakeSnapshotRequest() || p.wantSnap
		if p.wantSnap && !p.pulling && p.api != "" && !now.Before(p.retryPull) {
			p.pulling, p.wantSnap = true, false
			go n.catchUp(ctx, p.id, p.api)
		}
	}
	// Pack NACKs into control packets within the path MTU.
	for len(nacks) > 0 {
		size, k := 0, 0
		for k < len(nacks) {
			sz := nackOverhead + len(nacks[k].Target) + rangeBytes*len(nacks[k].Ranges)
			if k > 0 && size+sz > n.packer.Budget {
				break
			}
			size += sz
			k++
		}
		n.sendControlLocked(nil, nacks[:k])
		nacks = nacks[k:]
	}
	if now.Sub(n.lastHB) >= n.cfg.Heartbeat {
		n.lastHB = now
		n.sendControlLocked(&syncdpb.Heartbeat{
			HighestSequence: n.snd.Highest(), LowestRetained: n.snd.LowestRetained(),
			ApiAddress: n.cfg.Advertise, Entries: n.tab.Count(n.cfg.NodeID),
			Ready: n.snapState == syncdpb.SnapshotState_SNAPSHOT_STATE_COMPLETE,
		}, nil)
	}
	// Sweep the table once per expire interval, in steps per run.
	el := now.Sub(n.lastSweep)
	if n.lastSweep.IsZero() || el < 0 {
		el = 0
	}
	n.lastSweep = now
	n.expireDebt = min(n.expireDebt+float64(n.tab.Len())*float64(min(el, n.cfg.Expire))/float64(n.cfg.Expire), float64(n.tab.Len()+1))
	if k := int(n.expireDebt); k > 0 && (n.snapshotting == 0 || now.After(n.expiryPausedTo)) {
		n.expireDebt -= float64(k)
		var removed int
		removed, n.expireCur = n.tab.ExpireSome(now, n.expireCur, k)
		n.expired += uint64(removed)
	}
	n.refreshLocked(now, min(el, n.cfg.Refresh))
	return n.nextLocked(now, mono)
}

// nextLocked is when tick next has work: the next heartbeat at the latest
// (which also paces the sweeps), sooner for a partly filled packet, a
// peer's NACK or a catch-up pull.
func (n *Node) nextLocked(now time.Time, mono int64) time.Time {
	next := n.lastHB.Add(n.cfg.Heartbeat)
	if n.packer.Len() > 0 {
		next = earlier(next, n.lastFlush.Add(n.cfg.Flush))
	}
	for _, p := range n.peers {
		if at, ok := p.recv.Deadline(mono); ok {
			next = earlier(next, now.Add(time.Duration(at-mono)))
		}
		if p.wantSnap && !p.pulling && p.api != "" {
			next = earlier(next, p.retryPull)
		}
	}
	return next
}

func earlier(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

// refreshLocked re-sends a slice of the local entries, so that every local
// entry goes out once per refresh interval.
func (n *Node) refreshLocked(now time.Time, el time.Duration) {
	local := n.tab.Count(n.cfg.NodeID)
	if local == 0 {
		return
	}
	n.refreshDebt = min(n.refreshDebt+float64(local)*float64(el)/float64(n.cfg.Refresh), float64(local+1))
	k := int(n.refreshDebt)
	if k == 0 {
		return
	}
	n.refreshDebt -= float64(k)
	var es []conn.Entry
	es, n.refreshCur = n.tab.Scan(n.refreshCur, k, table.Filter{Origin: n.cfg.NodeID}, now, es)
	for i := range es {
		if es[i].Timeout == 0 {
			continue
		}
		n.queueLocked(&es[i], now)
	}
}

// catchUp pulls a snapshot of one peer's entries after losing some.
func (n *Node) catchUp(ctx context.Context, id, api string) {
	defer func() {
		n.mu.Lock()
		if p := n.peers[id]; p != nil {
			p.pulling = false
		}
		n.mu.Unlock()
	}()
	cnt, err := server.Pull(ctx, api, id, n.applySnapshot)
	if err != nil {
		n.log.Warn("catch-up snapshot failed; retrying in 1s", "peer", id, "error", err)
		n.mu.Lock()
		if p := n.peers[id]; p != nil {
			p.wantSnap, p.retryPull = true, time.Now().Add(time.Second)
		}
		n.mu.Unlock()
		return
	}
	n.mu.Lock()
	if p := n.peers[id]; p != nil {
		p.snapshots++
	}
	n.mu.Unlock()
	n.log.Info("caught up by snapshot", "peer", id, "entries", cnt)
}

func (n *Node) applySnapshot(es []conn.Entry, total uint64) error {
	now := time.Now()
	imp := make([]conn.Entry, 0, len(es))
	n.mu.Lock()
	if total > 0 {
		n.tab.Reserve(n.tab.Len() + int(min(total, 1<<26)))
	}
	for i := range es {
		if es[i].Version > n.lastVersion {
			n.lastVersion = es[i].Version
		}
		res := n.tab.Upsert(&es[i], now)
		n.results[res]++
		if res == table.Inserted || res == table.Updated || res == table.Refreshed {
			imp = append(imp, es[i])
		}
	}
	n.mu.Unlock()
	if len(imp) > 0 {
		n.importEntries(context.Background(), imp)
	}
	return nil
}

func (n *Node) setSnapState(s syncdpb.SnapshotState) {
	n.mu.Lock()
	n.snapState = s
	n.mu.Unlock()
}

// initialSnapshot pulls the table from a ready peer, or declares the
// snapshot complete when no ready peer shows up within the wait.
func (n *Node) initialSnapshot(ctx context.Context) {
	deadline := time.Now().Add(n.cfg.SnapshotWait)
	tried := map[string]time.Time{}
	for ctx.Err() == nil {
		var cands []string
		cands = append(cands, n.cfg.SnapshotPeers...)
		n.mu.Lock()
		ids := make([]string, 0, len(n.peers))
		for id := range n.peers {
			ids = append(ids, id)
		}
		slices.Sort(ids)
		for _, id := range ids {
			if p := n.peers[id]; p.ready && p.api != "" {
				cands = append(cands, p.api)
			}
		}
		n.mu.Unlock()
		for _, addr := range cands {
			if t, ok := tried[addr]; ok && time.Since(t) < time.Second {
				continue
			}
			tried[addr] = time.Now()
			n.setSnapState(syncdpb.SnapshotState_SNAPSHOT_STATE_PULLING)
			start := time.Now()
			cnt, err := server.Pull(ctx, addr, "", n.applySnapshot)
			if err == nil {
				n.setSnapState(syncdpb.SnapshotState_SNAPSHOT_STATE_COMPLETE)
				n.log.Info("snapshot complete", "from", addr, "entries", cnt, "seconds", time.Since(start).Seconds())
				return
			}
			n.setSnapState(syncdpb.SnapshotState_SNAPSHOT_STATE_FAILED)
			n.log.Warn("snapshot pull failed", "from", addr, "error", err)
		}
		if time.Now().After(deadline) && len(cands) == 0 {
			n.setSnapState(syncdpb.SnapshotState_SNAPSHOT_STATE_COMPLETE)
			n.log.Info("snapshot complete: no ready peer to pull from")
			return
		}
		select {
		case <-ctx.Done():
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// rateLog logs at most once a second per key, counting what it suppressed.
func (n *Node) rateLog(key, msg string, args ...any) {
	now := time.Now()
	n.logMu.Lock()
	if now.Sub(n.logLast[key]) < time.Second {
		n.logSupp[key]++
		n.logMu.Unlock()
		return
	}
	supp := n.logSupp[key]
	n.logSupp[key] = 0
	n.logLast[key] = now
	n.logMu.Unlock()
	n.log.Warn(msg, append(args, "suppressed", supp)...)
}
