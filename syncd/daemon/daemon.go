package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/reflection"

	syncdpb "github.com/saru-lb/saru/proto/syncd/v1"
	"github.com/saru-lb/saru/syncd/conn"
	"github.com/saru-lb/saru/syncd/mesh"
	"github.com/saru-lb/saru/syncd/server"
	"github.com/saru-lb/saru/syncd/transport"
	"github.com/saru-lb/saru/syncd/wire"
)

// Deps are a Daemon's collaborators; zero fields are built from the Config.
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

// Daemon is one running syncd: the goroutines, sockets, gRPC service,
// backend and metrics around a mesh.Mesh, which it feeds and whose Ready
// it carries out.
type Daemon struct {
	cfg   Config
	log   *slog.Logger
	be    conn.Backend
	tr    transport.Transport
	lis   net.Listener
	start time.Time
	ready chan struct{}
	// wake asks the tick loop to come back within Tick: the core has
	// work (an entry waiting to be flushed, a gap to NACK). Idle, the
	// loop sleeps until the core's next tick.
	wake chan struct{}
	// ctx is Run's, for the pulls the core starts.
	ctx context.Context

	keyMod      time.Time
	lastKeyPoll time.Time
	// ticked is when the tick loop last ran, in nanoseconds since start.
	ticked atomic.Int64

	mu         sync.Mutex
	core       *mesh.Mesh
	sendErrs   uint64
	importErrs uint64

	logs *rateLog
}

// New checks the configuration, reads the key file and returns a Daemon.
func New(cfg Config, deps Deps) (*Daemon, error) {
	keys, err := readKeys(cfg.KeyFile)
	if err != nil {
		return nil, err
	}
	d := &Daemon{
		cfg: cfg, log: deps.Logger, be: deps.Backend, tr: deps.Transport, lis: deps.Listener,
		start: time.Now(), ready: make(chan struct{}), wake: make(chan struct{}, 1), ctx: context.Background(),
	}
	if fi, err := os.Stat(cfg.KeyFile); err == nil {
		d.keyMod = fi.ModTime()
	}
	if d.log == nil {
		d.log = slog.New(slog.DiscardHandler)
	}
	d.logs = newRateLog(d.log)
	if d.be == nil {
		d.be = conn.NewMemoryBackend()
	}
	v6 := cfg.Transport.Group.Is6() || cfg.Transport.Listen.Addr().Is6()
	budget := wire.BatchBudget(cfg.MTU, v6, len(cfg.NodeID))
	if budget < 200 {
		return nil, fmt.Errorf("mtu: %d leaves no room for entries", cfg.MTU)
	}
	if cfg.StateDir == "" {
		return nil, errors.New("state_dir: missing")
	}
	inc, err := nextIncarnation(cfg.StateDir, d.start)
	if err != nil {
		return nil, err
	}
	now := d.now()
	d.core, err = mesh.New(mesh.Config{
		ID: cfg.NodeID, Incarnation: inc, Advertise: cfg.Advertise, Budget: budget,
		Heartbeat: cfg.Heartbeat, Flush: cfg.Flush, Refresh: cfg.Refresh, Expire: cfg.Expire,
		SnapshotPeers: cfg.SnapshotPeers, SnapshotWait: cfg.SnapshotWait, Reliable: cfg.Reliable,
	}, keys, now)
	if err != nil {
		return nil, fmt.Errorf("key_file %s: %w", cfg.KeyFile, err)
	}
	return d, nil
}

// now reads the clocks for the core.
func (d *Daemon) now() mesh.Time {
	t := time.Now()
	return mesh.Time{Mono: t.Sub(d.start), Wall: t}
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
func (d *Daemon) ReloadKeys() error {
	keys, err := readKeys(d.cfg.KeyFile)
	if err != nil {
		return err
	}
	d.mu.Lock()
	next, err := d.core.SetKeys(keys, d.cfg.KeyGrace, d.now())
	d.mu.Unlock()
	if err != nil {
		return fmt.Errorf("key_file %s: %w", d.cfg.KeyFile, err)
	}
	d.log.Info("cluster keys reloaded", "send_key", next.SendID())
	return nil
}

// Ready is closed once the daemon's API listens and its transport is open.
func (d *Daemon) Ready() <-chan struct{} { return d.ready }

// APIAddr is the gRPC listen address (after Ready).
func (d *Daemon) APIAddr() string { return d.lis.Addr().String() }

// TickedWithin reports whether the protocol loop ran within d of now
// (or the daemon started then): for a watchdog. Idle, the loop runs at
// least once per heartbeat.
func (d *Daemon) TickedWithin(now time.Time, within time.Duration) bool {
	return now.Sub(d.start)-time.Duration(d.ticked.Load()) < within
}

// ID is the node id.
func (d *Daemon) ID() string { return d.cfg.NodeID }

// Run runs the daemon until ctx is done; call it once. It returns nil when
// ctx ends it, or the error that stopped the transport, API or backend.
func (d *Daemon) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	d.ctx = ctx
	if d.tr == nil {
		tr, err := transport.Open(ctx, d.cfg.Transport)
		if err != nil {
			return fmt.Errorf("sync transport: %w", err)
		}
		d.tr = tr
	}
	defer d.tr.Close()
	if d.lis == nil {
		lis, err := net.Listen("tcp", d.cfg.APIListen)
		if err != nil {
			return fmt.Errorf("api_listen %s: %w", d.cfg.APIListen, err)
		}
		d.lis = lis
	}
	if d.cfg.Advertise == "" || d.cfg.Advertise == d.cfg.APIListen && isPortZero(d.cfg.APIListen) {
		d.cfg.Advertise = d.lis.Addr().String()
		d.mu.Lock()
		d.core.SetAdvertise(d.cfg.Advertise)
		d.mu.Unlock()
	}
	gs := grpc.NewServer()
	syncdpb.RegisterSyncServer(gs, server.New(d))
	reflection.Register(gs)

	var wg sync.WaitGroup
	errc := make(chan error, 4)
	wg.Add(4)
	go func() {
		defer wg.Done()
		if err := gs.Serve(d.lis); err != nil {
			errc <- fmt.Errorf("api serve: %w", err)
		}
	}()
	go func() { defer wg.Done(); d.recvLoop(ctx) }()
	go func() { defer wg.Done(); d.tickLoop(ctx) }()
	go func() {
		defer wg.Done()
		if err := d.be.Run(ctx, d.exportLocal); err != nil && !errors.Is(err, context.Canceled) {
			errc <- fmt.Errorf("backend: %w", err)
		}
	}()
	close(d.ready)
	d.log.Info("syncd running", "node", d.cfg.NodeID, "api", d.lis.Addr().String(), "incarnation", d.core.Status(d.now()).Incarnation)

	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	cancel()
	gs.Stop()
	d.tr.Close()
	wg.Wait()
	return err
}

func isPortZero(s string) bool {
	ap, err := netip.ParseAddrPort(s)
	return err == nil && ap.Port() == 0
}

// exportLocal takes the backend's local entries.
func (d *Daemon) exportLocal(es []conn.Entry) {
	d.mu.Lock()
	d.core.Export(es, d.now())
	d.carryOut(d.core.Ready())
}

// carryOut does what a Ready asks; call it with d.mu held: it sends the
// datagrams (which alias the core's buffers) and releases the lock before
// the rest. It returns Import for the caller to hand back to Recycle.
func (d *Daemon) carryOut(rd mesh.Ready) []conn.Entry {
	for _, dg := range rd.Send {
		if err := d.tr.Send(dg); err != nil {
			d.sendErrs++
			d.logs.warn("send", "sync send failed", "error", err)
		}
	}
	d.mu.Unlock()
	if rd.HasTick {
		d.kick()
	}
	if len(rd.Import) > 0 {
		d.importEntries(rd.Import)
	}
	for _, p := range rd.Pulls {
		go d.pull(p)
	}
	for _, e := range rd.Events {
		d.logEvent(e)
	}
	return rd.Import
}

// kick wakes the tick loop (see Daemon.wake); it never blocks.
func (d *Daemon) kick() {
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

func (d *Daemon) recvLoop(ctx context.Context) {
	buf := make([]byte, 65536)
	d.mu.Lock()
	o := d.core.NewOpener()
	kr := d.core.Keyring()
	d.mu.Unlock()
	var imp []conn.Entry
	for {
		sz, from, err := d.tr.Recv(buf)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			d.logs.warn("recv", "sync receive failed", "error", err)
			time.Sleep(10 * time.Millisecond)
			continue
		}
		// Verify and decode outside the lock; only applying needs it.
		o.SetKeyring(kr)
		opened := o.Open(buf[:sz], from, d.now())
		d.mu.Lock()
		if imp != nil {
			d.core.Recycle(imp)
		}
		d.core.Apply(opened, d.now())
		kr = d.core.Keyring()
		imp = d.carryOut(d.core.Ready())
	}
}

func (d *Daemon) importEntries(es []conn.Entry) {
	if err := d.be.Import(d.ctx, es); err != nil {
		d.mu.Lock()
		d.importErrs++
		d.mu.Unlock()
		d.logs.warn("import", "backend import failed", "entries", len(es), "error", err)
	}
}

// tickLoop runs the core's Tick when it next has work, and never sooner
// than Tick after the last run: at the next heartbeat when idle, within
// Tick when kicked. A fixed Tick-period ticker kept every idle syncd
// waking 200 times a second.
func (d *Daemon) tickLoop(ctx context.Context) {
	t := time.NewTimer(d.cfg.Tick)
	defer t.Stop()
	due := time.Now().Add(d.cfg.Tick)
	for {
		select {
		case <-ctx.Done():
			return
		case <-d.wake:
			if at := time.Now().Add(d.cfg.Tick); at.Before(due) {
				due = at
				t.Reset(time.Until(due))
			}
		case now := <-t.C:
			due = d.tick(now)
			if soonest := now.Add(d.cfg.Tick); due.Before(soonest) {
				due = soonest
			}
			t.Reset(due.Sub(now))
		}
	}
}

// tick polls the key file, runs the core's Tick at now and returns when
// it next has work.
func (d *Daemon) tick(now time.Time) time.Time {
	d.ticked.Store(int64(now.Sub(d.start)))
	if now.Sub(d.lastKeyPoll) >= 2*time.Second {
		d.lastKeyPoll = now
		if fi, err := os.Stat(d.cfg.KeyFile); err == nil && !fi.ModTime().Equal(d.keyMod) {
			d.keyMod = fi.ModTime()
			if err := d.ReloadKeys(); err != nil {
				d.log.Error("cluster key reload failed; keeping the current keys", "error", err)
			}
		}
	}
	d.mu.Lock()
	d.core.Tick(mesh.Time{Mono: now.Sub(d.start), Wall: now})
	rd := d.core.Ready()
	rd.HasTick = false // this loop takes NextTick itself
	d.carryOut(rd)
	return d.start.Add(rd.NextTick)
}

// pull carries out a snapshot pull the core asked for.
func (d *Daemon) pull(p mesh.Pull) {
	n, err := server.Pull(d.ctx, p.Addr, p.Origin, d.applySnapshot)
	d.mu.Lock()
	d.core.PullDone(p, n, err, d.now())
	d.carryOut(d.core.Ready())
}

// applySnapshot takes a chunk of a pulled snapshot.
func (d *Daemon) applySnapshot(es []conn.Entry, total uint64) error {
	d.mu.Lock()
	d.core.PullChunk(es, total, d.now())
	imp := d.carryOut(d.core.Ready())
	d.mu.Lock()
	d.core.Recycle(imp)
	d.mu.Unlock()
	return nil
}

// logEvent logs a core event; drops at most once a second per reason.
func (d *Daemon) logEvent(e mesh.Event) {
	args := make([]any, 0, 8)
	if e.Peer != "" {
		args = append(args, "peer", e.Peer)
	}
	if e.From.IsValid() {
		args = append(args, "from", e.From.String())
	}
	if e.Seq != 0 {
		args = append(args, "seq", e.Seq)
	}
	if e.Err != nil {
		args = append(args, "error", e.Err)
	}
	switch {
	case e.Reason.Drop():
		d.logs.warn(string(e.Reason), "sync packet rejected", append(args, "reason", string(e.Reason))...)
	case e.Reason == mesh.DuplicateID:
		d.logs.warn(string(e.Reason), "another syncd uses this node id", args...)
	case e.Reason == mesh.MarshalFailed:
		d.logs.warn(string(e.Reason), "marshal packet", args...)
	case e.Reason == mesh.PeerHeard:
		d.log.Info("peer heard", args...)
	case e.Reason == mesh.SnapshotAlone:
		d.log.Info("snapshot complete: no ready peer to pull from")
	case e.Reason == mesh.SnapshotComplete:
		d.log.Info("snapshot complete", "from", e.Peer, "entries", e.Entries, "seconds", e.Took.Seconds())
	case e.Reason == mesh.SnapshotFailed:
		d.log.Warn("snapshot pull failed", args...)
	case e.Reason == mesh.CaughtUp:
		d.log.Info("caught up by snapshot", "peer", e.Peer, "entries", e.Entries)
	case e.Reason == mesh.CatchUpFailed:
		d.log.Warn("catch-up snapshot failed; retrying in 1s", args...)
	default:
		d.log.Info(string(e.Reason), args...)
	}
}
