package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	sarupb "github.com/saru-lb/saru/proto/saru/v1"
	"github.com/saru-lb/saru/saru/config"
	"github.com/saru-lb/saru/saru/coord"
	"github.com/saru-lb/saru/saru/partition"
)

// Filter installs the owned bucket set (package filter's *Filter, adapted
// by the daemon).
type Filter interface {
	// Apply atomically replaces the set of buckets this director accepts.
	Apply(ctx context.Context, owned []uint32) error
	// Counters returns the per-rule packet and byte counters.
	Counters(ctx context.Context) ([]*sarupb.RuleCounter, error)
}

// Sync is the local syncd as the coordinator needs it.
type Sync interface {
	// Ready reports whether syncd holds a complete snapshot of its peers'
	// connections.
	Ready(ctx context.Context) (bool, error)
	// Holds reports whether syncd holds peer's connections, up to date.
	Holds(ctx context.Context, peer string) (bool, error)
}

// ServiceLister lists IPVS virtual services (package services, adapted by
// the daemon). Optional.
type ServiceLister interface {
	ListServices(ctx context.Context) ([]*sarupb.VirtualService, error)
}

// Options configure a Node.
type Options struct {
	Config config.Config
	// Filter is required.
	Filter Filter
	// FilterTable names the nftables table in counters output, e.g.
	// "inet saru".
	FilterTable string
	// Sync is the local syncd; nil when none is configured (then joins wait
	// the join delay and drains wait the confirm timeout).
	Sync Sync
	// Services lists IPVS virtual services; nil when unavailable.
	Services ServiceLister
	// Token authorises Drain and Undrain ("Bearer <token>"); empty disables
	// token authorisation.
	Token string
	// ServerCreds, when set, serve gRPC over TLS (mTLS when it verifies
	// clients; a verified client certificate authorises mutating calls).
	ServerCreds credentials.TransportCredentials
	// ClientCreds dial peers; nil means plaintext.
	ClientCreds credentials.TransportCredentials
	// GossipKey encrypts gossip (16, 24 or 32 bytes); nil means plaintext.
	GossipKey []byte
	// DrainMarker is a file that records an operator's drain of this
	// director, so that it restarts drained until undrained; empty: a
	// restart forgets the drain.
	DrainMarker string
	// Listener serves gRPC; nil means listen on Config.GRPCListen.
	Listener net.Listener
	Logger   *slog.Logger
	Registry prometheus.Registerer
	Version  string
}

// Node is a running director coordinator.
type Node struct {
	opts     Options
	cfg      config.Config
	log      *slog.Logger
	refusals *refusalLog // refused or malformed input, rate-limited
	metrics  *metrics
	start    time.Time
	grpcAdv  string

	core *coord.Core // owned by the loop goroutine

	qmu   sync.Mutex
	queue []func(*coord.Core)
	wake  chan struct{}

	snap   atomic.Pointer[snapshot]
	metaB  atomic.Pointer[[]byte]
	metaCh chan struct{}
	pubMu  sync.Mutex
	pub    *sarupb.Assignment
	pubCh  chan struct{}

	confirmWant atomic.Pointer[[]string]
	confirmNow  chan struct{} // wakes the sync poller when confirmWant changes
	syncReady   atomic.Bool

	ml      *memberlist.Memberlist
	selfAdr string // memberlist address, host:port
	// twin is the gossip address of a live director that has our id, as
	// memberlist reported it while this one started; joined is set once
	// the start is past that check.
	twin    atomic.Pointer[string]
	joined  atomic.Bool
	addrs   map[string]string // peer id -> memberlist address; loop-owned
	srv     *grpc.Server
	lis     net.Listener
	conns   sync.Map // address -> *grpc.ClientConn
	watchMu sync.Mutex
	watch   context.CancelFunc

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	done   chan struct{}
	stop   sync.Once
}

// snapshot is the loop's state as readers (gRPC) see it. Immutable.
type snapshot struct {
	self       coord.Meta
	leader     string
	assignment partition.Assignment
	owners     []string
	owned      int
	peers      []coord.Peer
	gossip     map[string]string
	drained    uint64
	isDrained  bool
	undrained  uint64
	isUndrain  bool
}

// New checks the options and prepares a node; Start runs it.
func New(opts Options) (*Node, error) {
	if opts.Filter == nil {
		return nil, errors.New("node: a filter is required")
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Registry == nil {
		opts.Registry = prometheus.NewRegistry()
	}
	cfg := opts.Config
	n := &Node{opts: opts, cfg: cfg, addrs: make(map[string]string), log: opts.Logger.With("node", cfg.ID), wake: make(chan struct{}, 1), confirmNow: make(chan struct{}, 1),
		metaCh: make(chan struct{}, 1), pubCh: make(chan struct{}), done: make(chan struct{})}
	m, err := newMetrics(opts.Registry)
	if err != nil {
		return nil, err
	}
	n.metrics = m
	n.refusals = newRefusalLog(n.log)
	return n, nil
}

// Start binds the gRPC listener and memberlist, joins the seeds, and
// starts the coordinator loop. It returns once the node serves, or an
// error naming the id and the address of a live director that already
// has this one's id (see the package doc), before taking any bucket.
func (n *Node) Start(ctx context.Context) error {
	cfg := n.cfg
	n.start = time.Now()
	lis := n.opts.Listener
	if lis == nil {
		var err error
		lis, err = net.Listen("tcp", cfg.GRPCListen)
		if err != nil {
			return fmt.Errorf("grpc listen %s: %w", cfg.GRPCListen, err)
		}
	}
	n.lis = lis
	n.grpcAdv = cfg.GRPCAdvertise
	if n.grpcAdv == "" {
		host, port, _ := net.SplitHostPort(lis.Addr().String())
		if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
			host = cfg.GossipBind.Addr().String()
			if cfg.GossipAdvertise.IsValid() {
				host = cfg.GossipAdvertise.Addr().String()
			}
		}
		n.grpcAdv = net.JoinHostPort(host, port)
	}
	core, err := coord.New(coord.Config{
		ID: cfg.ID, Weight: cfg.Weight, GRPC: n.grpcAdv, Buckets: cfg.Buckets, Seed: cfg.Seed,
		JoinDelay: cfg.Ticks(cfg.JoinDelay), Settle: cfg.Ticks(cfg.Settle),
		DrainConfirmTimeout: cfg.Ticks(cfg.DrainConfirmTimeout), Retry: max(1, cfg.Ticks(time.Second)), ForgetDead: cfg.Ticks(10 * time.Minute),
		FastFailover: cfg.FastFailover, StartDrained: n.markedDrained(),
	})
	if err != nil {
		lis.Close()
		return err
	}
	n.core = core
	n.ctx, n.cancel = context.WithCancel(context.WithoutCancel(ctx))
	// The first Ready carries the initial metadata, so gossip starts with it.
	n.process(core.Ready())

	n.srv = n.newServer()
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		if err := n.srv.Serve(lis); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			n.log.Error("grpc server stopped", "err", err)
		}
	}()

	ml, err := memberlist.Create(n.memberlistConfig())
	if err != nil {
		n.srv.Stop()
		n.cancel()
		n.wg.Wait()
		return fmt.Errorf("memberlist on %s: %w", cfg.GossipBind, err)
	}
	n.ml = ml
	n.selfAdr = ml.LocalNode().Address() // read once: memberlist mutates its node in place
	// Join before the coordinator runs: it takes buckets, and must not if
	// the id turns out to be taken. The join's push-pull merges the
	// seeds' member lists before Join returns, so a live twin is known by
	// then.
	if len(cfg.Seeds) > 0 {
		if k, err := ml.Join(cfg.Seeds); err != nil {
			n.log.Warn("joining seeds failed; waiting to be joined", "seeds", cfg.Seeds, "contacted", k, "err", err)
		} else {
			n.log.Info("joined cluster", "contacted", k)
		}
	}
	if twin := n.twin.Load(); twin != nil {
		// Shutdown, not Leave: a leave announces our id dead, and the
		// peers would believe it of the live director.
		ml.Shutdown()
		n.srv.Stop()
		n.cancel()
		n.wg.Wait()
		return fmt.Errorf("node.id %q is already used by a live director at %s (this one gossips from %s): give every director its own id", cfg.ID, *twin, n.selfAdr)
	}
	n.joined.Store(true)
	n.wg.Add(4)
	go n.loop()
	go n.metaUpdater()
	go n.syncPoller()
	go n.rejoiner()
	n.log.Info("director started", "grpc", n.grpcAdv, "gossip", n.selfAdr, "buckets", cfg.Buckets)
	return nil
}

// Addr is the gRPC address this node advertises.
func (n *Node) Addr() string { return n.grpcAdv }

// GossipAddr is the memberlist address, host:port.
func (n *Node) GossipAddr() string { return n.selfAdr }

// Leave announces a graceful departure to the cluster.
func (n *Node) Leave(timeout time.Duration) error {
	return n.ml.Leave(timeout)
}

// Stop stops the node without leaving (peers detect it as failed unless
// Leave was called).
func (n *Node) Stop() {
	n.stop.Do(func() {
		n.cancel()
		n.ml.Shutdown()
		n.srv.Stop()
		n.wg.Wait()
		n.conns.Range(func(k, v any) bool {
			v.(*grpc.ClientConn).Close()
			return true
		})
		close(n.done)
	})
}

// Done is closed once the node has stopped.
func (n *Node) Done() <-chan struct{} { return n.done }

// enqueue runs f on the loop goroutine with the core.
func (n *Node) enqueue(f func(*coord.Core)) {
	n.qmu.Lock()
	n.queue = append(n.queue, f)
	n.qmu.Unlock()
	select {
	case n.wake <- struct{}{}:
	default:
	}
}

// call runs f on the loop goroutine and waits for it.
func (n *Node) call(ctx context.Context, f func(*coord.Core) error) error {
	ch := make(chan error, 1)
	n.enqueue(func(c *coord.Core) { ch <- f(c) })
	select {
	case err := <-ch:
		return err
	case <-ctx.Done():
		return ctx.Err()
	case <-n.ctx.Done():
		return errors.New("director is stopping")
	}
}

func (n *Node) loop() {
	defer n.wg.Done()
	tick := time.NewTicker(n.cfg.Tick)
	defer tick.Stop()
	for {
		select {
		case <-n.ctx.Done():
			return
		case <-tick.C:
			n.core.Tick()
		case <-n.wake:
		}
		n.qmu.Lock()
		q := n.queue
		n.queue = nil
		n.qmu.Unlock()
		for _, f := range q {
			f(n.core)
		}
		for {
			rd := n.core.Ready()
			if rd.Empty() {
				break
			}
			n.process(rd)
		}
		n.snapshot()
	}
}

func (n *Node) process(rd coord.Ready) {
	for _, e := range rd.Events {
		lvl := slog.LevelInfo
		switch e.Reason {
		case coord.RefuseBuckets, coord.RefuseSeed, coord.RefuseSelfID, coord.RefuseEpoch, coord.RefuseEpochJump,
			coord.DropInvalid, coord.DropNonMember, coord.DropUnowned, // DropEpoch and DropEpochJump are the Refuse strings
			coord.AssignFailed, coord.DrainTimeout, coord.DrainLastActive:
			lvl = slog.LevelWarn
		}
		n.log.Log(n.ctx, lvl, "coordinator", "reason", string(e.Reason), "detail", e.Detail)
		n.metrics.events.WithLabelValues(string(e.Reason)).Inc()
	}
	if rd.Meta != nil {
		b, err := rd.Meta.Marshal()
		if err != nil {
			n.log.Error("gossip metadata", "err", err)
		} else {
			n.metaB.Store(&b)
			select {
			case n.metaCh <- struct{}{}:
			default:
			}
		}
	}
	if rd.Apply != nil {
		n.apply(rd.Apply)
	}
	if rd.Publish != nil {
		a := toProto(*rd.Publish)
		n.pubMu.Lock()
		n.pub = a
		close(n.pubCh)
		n.pubCh = make(chan struct{})
		n.pubMu.Unlock()
		n.metrics.epoch.Set(float64(a.Epoch))
	}
	if rd.Leader != nil {
		n.log.Info("leader", "id", rd.Leader.ID, "grpc", rd.Leader.GRPC, "self", rd.Leader.Self)
		n.follow(*rd.Leader)
		if rd.Leader.Self {
			n.metrics.leader.Set(1)
		} else {
			n.metrics.leader.Set(0)
		}
	}
	if rd.Fetch != "" {
		n.fetch(rd.Fetch)
	}
	if rd.Confirm != nil {
		c := slices.Clone(rd.Confirm)
		n.confirmWant.Store(&c)
		// Ask syncd now: a drain waits on every peer's answer.
		select {
		case n.confirmNow <- struct{}{}:
		default:
		}
	}
}

func (n *Node) apply(a *coord.Apply) {
	start := time.Now()
	ctx, cancel := context.WithTimeout(n.ctx, 5*time.Second)
	err := n.opts.Filter.Apply(ctx, a.Owned)
	cancel()
	n.metrics.applySeconds.Observe(time.Since(start).Seconds())
	if err != nil {
		n.log.Error("apply owned buckets", "epoch", a.Epoch, "owned", len(a.Owned), "err", err)
		n.metrics.applyErrors.Inc()
		return
	}
	if a.Failover {
		n.metrics.failovers.Inc()
	}
	n.core.Applied(a.Seq)
	n.metrics.applied.Set(float64(a.Epoch))
	n.metrics.owned.Set(float64(len(a.Owned)))
	n.log.Debug("applied", "epoch", a.Epoch, "owned", len(a.Owned), "failover", a.Failover, "took", time.Since(start))
}

func (n *Node) snapshot() {
	c := n.core
	s := &snapshot{self: c.Self(), leader: c.LeaderID(), assignment: c.Assignment(), owners: c.Owners(), owned: len(c.Owned()), peers: c.Peers()}
	s.drained, s.isDrained = c.Drained()
	s.undrained, s.isUndrain = c.Undrained()
	if old := n.snap.Load(); old != nil && slices.Equal(old.owners, s.owners) {
		s.owners = old.owners
	} else {
		s.owners = slices.Clone(s.owners)
	}
	s.gossip = make(map[string]string, len(n.addrs)+1)
	for id, a := range n.addrs {
		s.gossip[id] = a
	}
	s.gossip[n.cfg.ID] = n.selfAdr
	alive := 1
	for _, p := range s.peers {
		if p.Alive {
			alive++
		}
	}
	n.metrics.members.Set(float64(alive))
	n.snap.Store(s)
}

// metaUpdater pushes new metadata into gossip, one update at a time.
func (n *Node) metaUpdater() {
	defer n.wg.Done()
	for {
		select {
		case <-n.ctx.Done():
			return
		case <-n.metaCh:
			// The update is queued for gossip at once; waiting for its
			// broadcast to finish (several gossip rounds) would only delay
			// the next one, so wait briefly and move on.
			if err := n.ml.UpdateNode(max(n.cfg.GossipInterval, time.Millisecond)); err != nil && n.ctx.Err() == nil && !strings.Contains(err.Error(), "timeout") {
				n.log.Warn("gossip metadata update", "err", err)
			}
		}
	}
}

// rejoinInterval is how often seeds that are not live members are joined
// again: memberlist forgets dead members after a while, so without this two
// sides of a healed network partition would never merge.
const rejoinInterval = 2 * time.Second

func (n *Node) rejoiner() {
	defer n.wg.Done()
	t := time.NewTicker(rejoinInterval)
	defer t.Stop()
	for {
		select {
		case <-n.ctx.Done():
			return
		case <-t.C:
		}
		sn := n.snap.Load()
		if sn == nil {
			continue
		}
		live := map[string]bool{n.selfAdr: true}
		for _, p := range sn.peers {
			if p.Alive {
				live[sn.gossip[p.Meta.ID]] = true
			}
		}
		var missing []string
		for _, s := range n.cfg.Seeds {
			if !live[s] {
				missing = append(missing, s)
			}
		}
		if len(missing) == 0 {
			continue
		}
		if k, err := n.ml.Join(missing); err == nil && k > 0 {
			n.log.Info("rejoined seeds", "seeds", missing, "contacted", k)
		}
	}
}

// syncPoller asks the local syncd whether its snapshot is complete (until
// it is) and whether it holds draining peers' connections.
func (n *Node) syncPoller() {
	defer n.wg.Done()
	if n.opts.Sync == nil {
		return
	}
	t := time.NewTicker(max(n.cfg.Tick, 250*time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-n.ctx.Done():
			return
		case <-t.C:
		case <-n.confirmNow:
		}
		ctx, cancel := context.WithTimeout(n.ctx, time.Second)
		if !n.syncReady.Load() {
			if ok, err := n.opts.Sync.Ready(ctx); err != nil {
				n.log.Debug("syncd status", "err", err)
			} else if ok {
				n.syncReady.Store(true)
				n.log.Info("syncd snapshot complete")
				n.enqueue(func(c *coord.Core) { c.SyncReady() })
			}
		}
		if want := n.confirmWant.Load(); want != nil {
			for _, id := range *want {
				ok, err := n.opts.Sync.Holds(ctx, id)
				if err != nil {
					n.log.Debug("syncd stats", "peer", id, "err", err)
				}
				n.enqueue(func(c *coord.Core) { c.SyncConfirm(id, ok && err == nil) })
			}
		}
		cancel()
	}
}

func (n *Node) dial(addr string) (*grpc.ClientConn, error) {
	if c, ok := n.conns.Load(addr); ok {
		return c.(*grpc.ClientConn), nil
	}
	creds := n.opts.ClientCreds
	if creds == nil {
		creds = insecure.NewCredentials()
	}
	c, err := grpc.NewClient(addr, grpc.WithTransportCredentials(creds))
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", addr, err)
	}
	if old, loaded := n.conns.LoadOrStore(addr, c); loaded {
		c.Close()
		return old.(*grpc.ClientConn), nil
	}
	return c, nil
}

// follow watches the leader's assignment stream (or stops watching when
// this director leads).
func (n *Node) follow(l coord.Leader) {
	n.watchMu.Lock()
	defer n.watchMu.Unlock()
	if n.watch != nil {
		n.watch()
		n.watch = nil
	}
	if l.Self || l.GRPC == "" {
		return
	}
	ctx, cancel := context.WithCancel(n.ctx)
	n.watch = cancel
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		for ctx.Err() == nil {
			err := n.watchOnce(ctx, l)
			if ctx.Err() != nil {
				return
			}
			n.log.Debug("assignment watch ended; retrying", "leader", l.ID, "err", err)
			select {
			case <-ctx.Done():
				return
			case <-time.After(100 * time.Millisecond):
			}
		}
	}()
}

func (n *Node) watchOnce(ctx context.Context, l coord.Leader) error {
	conn, err := n.dial(l.GRPC)
	if err != nil {
		return err
	}
	stream, err := sarupb.NewClusterClient(conn).WatchAssignment(ctx, &sarupb.WatchAssignmentRequest{})
	if err != nil {
		return err
	}
	for {
		msg, err := stream.Recv()
		if err != nil {
			return err
		}
		n.receive(l.ID, msg.GetAssignment())
	}
}

func (n *Node) receive(from string, pa *sarupb.Assignment) {
	a, err := fromProto(pa)
	if err != nil {
		n.refusals.warn(string(coord.DropInvalid), "assignment refused", "from", from, "err", err)
		n.metrics.dropped.WithLabelValues(string(coord.DropInvalid)).Inc()
		return
	}
	n.enqueue(func(c *coord.Core) {
		if r := c.Receive(from, a); r != "" {
			n.metrics.dropped.WithLabelValues(string(r)).Inc()
			if r != coord.DropStale && r != coord.DropNotLeader { // both are races of a leader change
				n.refusals.warn(string(r), "assignment refused", "from", clip(from), "epoch", a.Epoch)
			}
		}
	})
}

// fetch pulls the assignment of the peer advertising the newest epoch.
func (n *Node) fetch(id string) {
	addr := ""
	for _, p := range n.core.Peers() {
		if p.Meta.ID == id {
			addr = p.Meta.GRPC
		}
	}
	if addr == "" {
		return
	}
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		conn, err := n.dial(addr)
		if err != nil {
			n.log.Warn("fetch assignment", "from", id, "err", err)
			return
		}
		ctx, cancel := context.WithTimeout(n.ctx, 2*time.Second)
		defer cancel()
		resp, err := sarupb.NewClusterClient(conn).GetAssignment(ctx, &sarupb.GetAssignmentRequest{})
		if err != nil {
			n.log.Warn("fetch assignment", "from", id, "err", err)
			return
		}
		n.log.Info("adopting newest assignment", "from", id, "epoch", resp.GetAssignment().GetEpoch())
		n.receive(id, resp.GetAssignment())
	}()
}

func (n *Node) markedDrained() bool {
	if n.opts.DrainMarker == "" {
		return false
	}
	_, err := os.Stat(n.opts.DrainMarker)
	if err == nil {
		n.log.Warn("starting drained: an operator drained this director; undrain it to return it to service", "marker", n.opts.DrainMarker)
	}
	return err == nil
}

// markDrained records or clears an operator's drain.
func (n *Node) markDrained(drained bool) error {
	if n.opts.DrainMarker == "" {
		return nil
	}
	if drained {
		if err := os.WriteFile(n.opts.DrainMarker, []byte("drained by an operator; `saructl undrain` returns this director to service\n"), 0o644); err != nil {
			return fmt.Errorf("record the drain: %w", err)
		}
		return nil
	}
	if err := os.Remove(n.opts.DrainMarker); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("clear the drain record: %w", err)
	}
	return nil
}

// DrainSelf drains this director and waits until an epoch in which it owns
// no bucket is applied. (A restart forgets this drain; an operator's Drain
// call is recorded in the drain marker.)
func (n *Node) DrainSelf(ctx context.Context) (uint64, error) { return n.drainSelf(ctx, false) }

func (n *Node) drainSelf(ctx context.Context, record bool) (uint64, error) {
	if err := n.call(ctx, func(c *coord.Core) error { return c.Drain() }); err != nil {
		return 0, err
	}
	if record {
		if err := n.markDrained(true); err != nil {
			n.log.Error("drain not recorded: a restart will return this director to service", "err", err)
		}
	}
	return n.waitFor(ctx, func(s *snapshot) (uint64, bool) { return s.drained, s.isDrained })
}

func (n *Node) undrainSelf(ctx context.Context, record bool) (uint64, error) {
	if err := n.call(ctx, func(c *coord.Core) error { return c.Undrain() }); err != nil {
		return 0, err
	}
	if record {
		if err := n.markDrained(false); err != nil {
			n.log.Error("undrain not recorded", "err", err)
		}
	}
	return n.waitFor(ctx, func(s *snapshot) (uint64, bool) { return s.undrained, s.isUndrain })
}

func (n *Node) waitFor(ctx context.Context, f func(*snapshot) (uint64, bool)) (uint64, error) {
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for {
		if s := n.snap.Load(); s != nil {
			if e, ok := f(s); ok {
				return e, nil
			}
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-n.ctx.Done():
			return 0, errors.New("director is stopping")
		case <-t.C:
		}
	}
}

// Status is a summary for tests and the daemon.
type Status struct {
	ID, Leader string
	State      partition.State
	Epoch      uint64
	Applied    uint64
	Owned      int
	Live       int
}

// Status returns the node's current view.
func (n *Node) Status() Status {
	s := n.snap.Load()
	if s == nil {
		return Status{ID: n.cfg.ID}
	}
	live := 1
	for _, p := range s.peers {
		if p.Alive {
			live++
		}
	}
	return Status{ID: s.self.ID, Leader: s.leader, State: s.self.State, Epoch: s.assignment.Epoch, Applied: s.self.Applied, Owned: s.owned, Live: live}
}
