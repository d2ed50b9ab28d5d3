package coord

import (
	"errors"
	"fmt"
	"slices"
	"sort"

	"github.com/saru-lb/saru/filter/bucket"
	"github.com/saru-lb/saru/saru/partition"
)

// Reason says why the core refused or dropped something, or why it took a
// decision. Tests assert it; metrics label by it.
type Reason string

// Reasons.
const (
	// Refusals of a peer's metadata.
	RefuseBuckets   Reason = "bucket-count-mismatch"
	RefuseSeed      Reason = "seed-mismatch"
	RefuseSelfID    Reason = "duplicate-self-id"
	RefuseEpoch     Reason = "epoch-out-of-range"
	RefuseEpochJump Reason = "epoch-jump"
	// Drops of a received assignment.
	DropStale     Reason = "stale-epoch"
	DropInvalid   Reason = "invalid-assignment"
	DropBuckets   Reason = "bucket-count-mismatch"
	DropEpoch     Reason = "epoch-out-of-range"
	DropEpochJump Reason = "epoch-jump"
	DropNotLeader Reason = "not-from-leader"
	DropNonMember Reason = "non-member-owner"
	DropUnowned   Reason = "unowned-buckets"
	// Decisions worth logging.
	JoinSyncReady   Reason = "sync-ready"
	JoinDelay       Reason = "join-delay"
	JoinBootstrap   Reason = "bootstrap"
	DrainConfirmed  Reason = "drain-confirmed"
	DrainTimeout    Reason = "drain-confirm-timeout"
	DrainLastActive Reason = "drain-blocked-last-active"
	AssignComputed  Reason = "assignment-computed"
	AssignAdopted   Reason = "assignment-adopted"
	AssignFailed    Reason = "assignment-failed"
	AssignDiverged  Reason = "assignment-diverged"
	CatchUp         Reason = "catch-up-fetch"
	LeaderChanged   Reason = "leader-changed"
	FailoverLocal   Reason = "standby-takeover"
)

// MaxEpochJump is how far above the newest epoch this director knows (its
// own, or one its peers announced) an assignment may be; a peer may
// announce twice as far, since two sides of a network partition may each
// have taken such a jump. A cluster moves one epoch per membership change,
// so a legitimate jump is a partition's worth of them; a peer that could
// claim more would push every director to partition.MaxEpoch, after which
// no assignment follows (at this bound it takes 2^28 claims). Without a
// gossip key two limits remain: a fake that repeats claims just under the
// bound on one side of a partition, or that is the first peer a new
// director hears, can carry directors beyond what the others take; those
// then refuse each other until the directors carried away restart.
const MaxEpochJump = 1 << 24

// Errors returned by operator requests.
var (
	ErrLastActive  = errors.New("no other active director would own the buckets")
	ErrNotDraining = errors.New("director is not draining")
	ErrNotActive   = errors.New("director is not active")
)

// Config is the core's fixed configuration. Durations are in ticks.
type Config struct {
	// ID, Weight and GRPC describe this director.
	ID     string
	Weight int
	GRPC   string
	// Buckets and Seed are the cluster's bucket count and hash seed.
	Buckets int
	Seed    uint32
	// JoinDelay: ticks a joining director waits before it takes buckets
	// unless its syncd reports a complete snapshot first.
	JoinDelay int
	// Settle: ticks after start after which a joining director that sees
	// no active or draining director takes buckets at once (a new cluster
	// has no connections to sync).
	Settle int
	// DrainConfirmTimeout: ticks the leader waits for peers to confirm they
	// hold a draining director's connections before moving its buckets
	// anyway.
	DrainConfirmTimeout int
	// Retry: ticks before an unanswered fetch or apply is asked again.
	Retry int
	// ForgetDead: ticks after which a dead peer is dropped from the peer
	// list (0 keeps dead peers listed forever).
	ForgetDead int
	// StartDrained starts the director draining instead of joining (it was
	// drained by an operator before it restarted, and stays out of service
	// until undrained).
	StartDrained bool
	// FastFailover lets this director take over the buckets it is standby
	// for as soon as their owner is seen dead, before the leader's next
	// assignment.
	FastFailover bool
}

func (c Config) validate() error {
	var errs []error
	if c.ID == "" {
		errs = append(errs, errors.New("id: must not be empty"))
	}
	if c.Weight < 1 {
		errs = append(errs, fmt.Errorf("weight %d: must be at least 1", c.Weight))
	}
	if err := bucket.CheckCount(c.Buckets); err != nil {
		errs = append(errs, err)
	}
	if c.Seed == 0 {
		errs = append(errs, errors.New("seed: must be non-zero"))
	}
	if c.JoinDelay < 0 || c.Settle < 0 || c.DrainConfirmTimeout < 0 || c.ForgetDead < 0 || c.Retry < 1 {
		errs = append(errs, errors.New("tick counts: must be non-negative, retry at least 1"))
	}
	return errors.Join(errs...)
}

// Apply asks the caller to install an owned bucket set in the filter, then
// report Applied(Seq).
type Apply struct {
	Seq   uint64
	Epoch uint64
	// Owned buckets, ascending.
	Owned []uint32
	// Failover is true when Owned includes buckets taken over from dead
	// owners ahead of the leader.
	Failover bool
}

// Leader names the director that computes assignments.
type Leader struct {
	ID   string
	GRPC string
	// Self is true when this director is the leader.
	Self bool
}

// Event is a decision worth logging.
type Event struct {
	Reason Reason
	Detail string
}

// Ready holds what the caller must do after feeding events. Nil or empty
// fields mean "nothing changed".
type Ready struct {
	// Meta is this director's new metadata, to gossip.
	Meta *Meta
	// Publish is a new current assignment, to serve to watchers.
	Publish *partition.Assignment
	// Apply is a new owned set to install.
	Apply *Apply
	// Fetch names a peer whose assignment the caller must pull (GetAssignment)
	// and feed to Receive.
	Fetch string
	// Leader is set when the leader changes; the caller watches it.
	Leader *Leader
	// Confirm lists the draining peers whose connections the caller should
	// check with its syncd and report with SyncConfirm; set when it changes.
	Confirm []string
	// Events to log.
	Events []Event
}

// Empty reports whether there is nothing to do.
func (r Ready) Empty() bool {
	return r.Meta == nil && r.Publish == nil && r.Apply == nil && r.Fetch == "" && r.Leader == nil && r.Confirm == nil && len(r.Events) == 0
}

// Peer is another director as this one knows it.
type Peer struct {
	Meta  Meta
	Alive bool
}

type peer struct {
	meta   Meta
	alive  bool
	deadAt int
}

// Core is one director's coordinator state machine. It does no I/O, reads
// no clock and starts no goroutines: feed it events, then call Ready. It is
// not safe for concurrent use.
type Core struct {
	cfg   Config
	self  Meta
	peers map[string]*peer
	cur   partition.Assignment
	ticks int

	syncReady bool
	leader    Leader

	drainSince map[string]int // leader: tick a draining member was first seen
	drainNoted map[string]bool
	fetchFrom  string
	fetchAt    int
	adopted    bool              // an assignment was taken from a peer
	asked      map[string]bool   // peers asked for their assignment since one was taken
	refused    map[string]uint64 // peer -> the epoch it announced when its answer to a fetch was dropped

	sentMeta    Meta
	metaSent    bool
	publish     bool
	applySeq    uint64
	applyEpochs map[uint64]uint64
	applyAt     int
	wantOwned   []uint32
	sentOwned   []uint32
	sentApply   bool
	sentEpoch   uint64
	failover    bool
	leaderOut   bool
	confirmOut  []string
	confirmSent []string
	fetchOut    string
	blocked     bool
	failed      string // the last AssignFailed detail, not repeated
	behindSince int
	everActive  bool
	events      []Event
}

// New returns a joining director's core with the empty assignment.
func New(cfg Config) (*Core, error) {
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("coordinator config: %w", err)
	}
	cur, err := partition.Empty(cfg.Buckets)
	if err != nil {
		return nil, err
	}
	n := &Core{
		cfg:         cfg,
		self:        Meta{ID: cfg.ID, Weight: cfg.Weight, State: partition.Joining, GRPC: cfg.GRPC, Buckets: cfg.Buckets, Seed: cfg.Seed},
		peers:       make(map[string]*peer),
		cur:         cur,
		drainSince:  make(map[string]int),
		drainNoted:  make(map[string]bool),
		behindSince: -1,
		applyEpochs: make(map[uint64]uint64),
		asked:       make(map[string]bool),
		refused:     make(map[string]uint64),
	}
	if cfg.StartDrained {
		n.self.State = partition.Draining
	}
	n.update()
	return n, nil
}

// CheckPeer tells whether a peer's metadata is acceptable to a director
// with this configuration; "" means yes.
func CheckPeer(cfg Config, m Meta) Reason {
	switch {
	case m.ID == cfg.ID:
		return RefuseSelfID
	case m.Buckets != cfg.Buckets:
		return RefuseBuckets
	case m.Seed != cfg.Seed:
		return RefuseSeed
	case m.Epoch > partition.MaxEpoch:
		return RefuseEpoch
	}
	return ""
}

// PeerAlive records a peer that joined or updated its metadata. Metadata
// CheckPeer refuses, or announcing an epoch more than MaxEpochJump above
// the newest this director knows, is ignored (a peer already known keeps
// its previous metadata).
func (n *Core) PeerAlive(m Meta) Reason {
	r := CheckPeer(n.cfg, m)
	if r == "" && m.Epoch > n.ceiling(m.ID, 2*MaxEpochJump) {
		r = RefuseEpochJump
	}
	switch r {
	case "":
	case RefuseEpoch:
		n.event(r, fmt.Sprintf("peer %q announces epoch %d, above the last one, %d", m.ID, m.Epoch, uint64(partition.MaxEpoch)))
		return r
	case RefuseEpochJump:
		n.event(r, fmt.Sprintf("peer %q announces epoch %d, above %d (the newest known plus %d)", m.ID, m.Epoch, n.ceiling(m.ID, 2*MaxEpochJump), uint64(2*MaxEpochJump)))
		return r
	default:
		n.event(r, fmt.Sprintf("peer %q announces buckets %d seed %d; ours are %d and %d", m.ID, m.Buckets, m.Seed, n.cfg.Buckets, n.cfg.Seed))
		return r
	}
	if p, ok := n.peers[m.ID]; !ok || !p.alive {
		// A director this one did not count may make a refused
		// assignment acceptable.
		clear(n.refused)
	}
	n.peers[m.ID] = &peer{meta: m.clone(), alive: true}
	n.update()
	return ""
}

// PeerDead records that failure detection declared a peer dead, or that it
// left.
func (n *Core) PeerDead(id string) {
	p, ok := n.peers[id]
	if !ok || !p.alive {
		return
	}
	p.alive, p.deadAt = false, n.ticks
	n.update()
}

// Receive offers an assignment sent by the director from (the leader's
// stream or a fetch). It is taken only if its epoch is newer, at most
// partition.MaxEpoch and at most MaxEpochJump above the newest known; if
// from is the leader or a peer this director asked for its assignment; and
// if it is valid, names as owners and standbys only directors this one
// knows, and leaves no bucket unowned while a live director owns buckets.
func (n *Core) Receive(from string, a partition.Assignment) Reason {
	r, detail := n.check(from, a)
	if r != "" {
		if detail != "" {
			n.event(r, detail)
		}
		if p, ok := n.peers[from]; ok && n.asked[from] && from != n.leader.ID {
			// A peer whose answer cannot be taken is not asked again
			// for the epoch it advertises: a leader would otherwise
			// wait for it forever, and followers ask it every Retry.
			n.refused[from] = p.meta.Epoch
			if n.fetchFrom == from {
				n.fetchFrom = ""
			}
			n.update()
		}
		return r
	}
	clear(n.asked)
	n.cur, n.adopted = a, true
	n.publish = true
	if _, max := n.newest(n.live()); n.fetchFrom != "" && a.Epoch >= max {
		n.fetchFrom = ""
	}
	n.update()
	return ""
}

// check tells why an assignment cannot be taken, with details worth
// logging; "" means it can.
func (n *Core) check(from string, a partition.Assignment) (Reason, string) {
	switch {
	case a.Buckets() != n.cfg.Buckets:
		return DropBuckets, ""
	case a.Epoch > partition.MaxEpoch:
		return DropEpoch, fmt.Sprintf("epoch %d from %s is above the last one, %d", a.Epoch, from, uint64(partition.MaxEpoch))
	case a.Epoch <= n.cur.Epoch:
		return DropStale, ""
	}
	if c := n.ceiling("", MaxEpochJump); a.Epoch > c {
		return DropEpochJump, fmt.Sprintf("epoch %d from %s is above %d (the newest known plus %d)", a.Epoch, from, c, uint64(MaxEpochJump))
	}
	if from == n.cfg.ID || (from != n.leader.ID && !n.asked[from]) {
		return DropNotLeader, ""
	}
	if err := a.Validate(); err != nil {
		return DropInvalid, err.Error()
	}
	if r, detail := n.checkOwners(a); r != "" {
		return r, fmt.Sprintf("epoch %d from %s: %s", a.Epoch, from, detail)
	}
	return "", ""
}

// ceiling returns the largest epoch this director takes from a peer: jump
// above the newest it knows, its own or one a peer other than except
// announced (dead peers count: a healed partition brings their epochs
// back). One that has taken no assignment and knows no peer has nothing
// to compare with: it takes up to half of partition.MaxEpoch, so that a
// cluster it joins still has epochs to come.
func (n *Core) ceiling(except string, jump uint64) uint64 {
	e, ok := n.cur.Epoch, n.adopted
	for id, p := range n.peers {
		if id != except {
			e, ok = max(e, p.meta.Epoch), true
		}
	}
	if !ok {
		return partition.MaxEpoch / 2
	}
	return min(e+jump, partition.MaxEpoch)
}

// checkOwners tells whether an assignment's owners are acceptable to this
// director: every owner and standby is a director it knows (alive, or dead
// and not yet forgotten: failure detection may lag the leader's), and no
// bucket is unowned while a live director owns buckets in the current
// assignment or one is active in the new one.
func (n *Core) checkOwners(a partition.Assignment) (Reason, string) {
	known := func(id string) bool {
		_, ok := n.peers[id]
		return id == "" || id == n.cfg.ID || ok
	}
	for b, o := range a.Owners {
		if !known(o) {
			return DropNonMember, fmt.Sprintf("bucket %d owner %q is not a director here", b, o)
		}
		if s := a.Standbys[b]; !known(s) {
			return DropNonMember, fmt.Sprintf("bucket %d standby %q is not a director here", b, s)
		}
	}
	b := slices.Index(a.Owners, "")
	if b < 0 {
		return "", ""
	}
	for _, m := range a.Members {
		if m.State == partition.Active {
			return DropUnowned, fmt.Sprintf("bucket %d has no owner though %s is active", b, m.ID)
		}
	}
	for _, m := range n.cur.Members {
		p, ok := n.peers[m.ID]
		if m.State == partition.Active && (m.ID == n.cfg.ID || ok && p.alive) {
			return DropUnowned, fmt.Sprintf("bucket %d has no owner though %s is alive and owns buckets", b, m.ID)
		}
	}
	return "", ""
}

// Applied reports that the Apply with this sequence number is installed.
func (n *Core) Applied(seq uint64) {
	e, ok := n.applyEpochs[seq]
	if !ok {
		return
	}
	for s := range n.applyEpochs {
		if s <= seq {
			delete(n.applyEpochs, s)
		}
	}
	if e > n.self.Applied {
		n.self.Applied = e
	}
	n.update()
}

// Tick advances time by one tick.
func (n *Core) Tick() {
	n.ticks++
	if n.cfg.ForgetDead > 0 {
		for id, p := range n.peers {
			if !p.alive && n.ticks-p.deadAt >= n.cfg.ForgetDead {
				delete(n.peers, id)
				delete(n.asked, id)
				delete(n.refused, id)
			}
		}
	}
	if len(n.applyEpochs) > 0 && n.ticks-n.applyAt >= n.cfg.Retry {
		n.sentApply = false // ask again
	}
	if n.fetchFrom != "" && n.ticks-n.fetchAt >= n.cfg.Retry {
		n.fetchFrom = ""
	}
	n.update()
}

// SyncReady reports that the local syncd holds a complete snapshot.
func (n *Core) SyncReady() {
	n.syncReady = true
	n.update()
}

// SyncConfirm reports whether the local syncd holds the connections of the
// draining peer id.
func (n *Core) SyncConfirm(id string, ok bool) {
	has := slices.Contains(n.self.Confirms, id)
	switch {
	case ok && !has:
		n.self.Confirms = append(n.self.Confirms, id)
		slices.Sort(n.self.Confirms)
	case !ok && has:
		n.self.Confirms = slices.DeleteFunc(n.self.Confirms, func(s string) bool { return s == id })
	}
	n.update()
}

// Drain starts draining this director: phase one asks peers to confirm
// they hold its connections, phase two (the leader) moves its buckets in
// one epoch.
func (n *Core) Drain() error {
	if n.self.State == partition.Draining {
		return nil
	}
	// Another live director is active by its own word or by the current
	// assignment (its gossip may lag the assignment stream).
	assigned := map[string]bool{}
	for _, m := range n.cur.Members {
		assigned[m.ID] = m.State == partition.Active
	}
	others := false
	for id, p := range n.peers {
		if p.alive && p.meta.State != partition.Draining && (p.meta.State == partition.Active || assigned[id]) {
			others = true
		}
	}
	if n.self.State == partition.Active && !others {
		return fmt.Errorf("drain %s: %w", n.cfg.ID, ErrLastActive)
	}
	n.self.State = partition.Draining
	n.update()
	return nil
}

// Undrain returns a draining director to service. One that started
// drained owns nothing yet and joins (waiting for its syncd snapshot or the
// join delay).
func (n *Core) Undrain() error {
	if n.self.State != partition.Draining {
		return fmt.Errorf("undrain %s: %w", n.cfg.ID, ErrNotDraining)
	}
	n.self.State = partition.Active
	if n.cfg.StartDrained && !n.everActive {
		n.self.State = partition.Joining
	}
	n.update()
	return nil
}

// Drained reports whether this director is draining and has applied an
// assignment in which it is draining and owns no bucket.
func (n *Core) Drained() (uint64, bool) {
	if n.self.State != partition.Draining || n.self.Applied < n.cur.Epoch {
		return 0, false
	}
	for _, m := range n.cur.Members {
		if m.ID == n.cfg.ID {
			if m.State == partition.Draining && len(n.wantOwned) == 0 {
				return n.cur.Epoch, true
			}
			return 0, false
		}
	}
	return 0, false
}

// Undrained reports whether this director is active in the applied
// current assignment.
func (n *Core) Undrained() (uint64, bool) {
	if n.self.State != partition.Active || n.self.Applied < n.cur.Epoch {
		return 0, false
	}
	for _, m := range n.cur.Members {
		if m.ID == n.cfg.ID && m.State == partition.Active {
			return n.cur.Epoch, true
		}
	}
	return 0, false
}

// Self returns this director's metadata.
func (n *Core) Self() Meta { return n.self.clone() }

// Assignment returns the current assignment. Callers must not modify it.
func (n *Core) Assignment() partition.Assignment { return n.cur }

// LeaderID returns the current leader's id.
func (n *Core) LeaderID() string { return n.leader.ID }

// Owned returns the buckets this director wants installed (after any
// standby takeover), ascending.
func (n *Core) Owned() []uint32 { return slices.Clone(n.wantOwned) }

// Owners returns every bucket's effective owner as this director sees it:
// the current assignment with dead owners replaced by their standbys when
// fast failover is on.
func (n *Core) Owners() []string { return n.owners() }

// Peers returns every peer ever seen, sorted by id.
func (n *Core) Peers() []Peer {
	out := make([]Peer, 0, len(n.peers))
	for _, p := range n.peers {
		out = append(out, Peer{Meta: p.meta.clone(), Alive: p.alive})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Meta.ID < out[j].Meta.ID })
	return out
}

// Ready returns what changed since the last call.
func (n *Core) Ready() Ready {
	var rd Ready
	if !n.metaSent || !n.self.equal(n.sentMeta) {
		m := n.self.clone()
		rd.Meta = &m
		n.sentMeta, n.metaSent = m.clone(), true
	}
	if n.publish {
		a := n.cur
		rd.Publish = &a
		n.publish = false
	}
	if !n.sentApply || !slices.Equal(n.wantOwned, n.sentOwned) || n.cur.Epoch != n.sentEpoch {
		n.applySeq++
		n.applyEpochs[n.applySeq] = n.cur.Epoch
		n.applyAt = n.ticks
		rd.Apply = &Apply{Seq: n.applySeq, Epoch: n.cur.Epoch, Owned: slices.Clone(n.wantOwned), Failover: n.failover}
		n.sentOwned, n.sentApply, n.sentEpoch = slices.Clone(n.wantOwned), true, n.cur.Epoch
	}
	if n.fetchOut != "" {
		rd.Fetch = n.fetchOut
		n.fetchOut = ""
	}
	if n.leaderOut {
		l := n.leader
		rd.Leader = &l
		n.leaderOut = false
	}
	if !slices.Equal(n.confirmOut, n.confirmSent) {
		rd.Confirm = append([]string{}, n.confirmOut...)
		n.confirmSent = slices.Clone(n.confirmOut)
	}
	rd.Events, n.events = n.events, nil
	return rd
}

func (n *Core) event(r Reason, detail string) {
	n.events = append(n.events, Event{Reason: r, Detail: detail})
}

// live returns the metadata of every live director, this one included,
// sorted by id.
func (n *Core) live() []Meta {
	out := []Meta{n.self}
	for _, p := range n.peers {
		if p.alive {
			out = append(out, p.meta)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// newest returns the live peer advertising the newest epoch, and that
// epoch, leaving out peers whose assignment of that epoch was refused.
func (n *Core) newest(live []Meta) (string, uint64) {
	var from string
	var max uint64
	for _, m := range live {
		if e, ok := n.refused[m.ID]; m.ID != n.cfg.ID && m.Epoch > max && (!ok || e != m.Epoch) {
			max, from = m.Epoch, m.ID
		}
	}
	return from, max
}

// fetch asks the caller to pull from's assignment.
func (n *Core) fetch(from string) {
	n.fetchFrom, n.fetchAt, n.fetchOut = from, n.ticks, from
	n.asked[from] = true
}

// update recomputes every decision from the state.
func (n *Core) update() {
	n.updateSelfState(n.live())
	live := n.live()

	// Leader: the lowest id among live directors.
	l := Leader{ID: live[0].ID, GRPC: live[0].GRPC, Self: live[0].ID == n.cfg.ID}
	if l != n.leader {
		if l.ID != n.leader.ID {
			n.event(LeaderChanged, fmt.Sprintf("leader %s", l.ID))
		}
		n.leader, n.leaderOut = l, true
	}
	if l.Self {
		n.lead(live)
	} else {
		n.catchUp(live)
	}
	if n.self.Epoch != n.cur.Epoch || n.self.Hash == 0 {
		n.self.Epoch, n.self.Hash = n.cur.Epoch, Fingerprint(n.cur)
	}

	// Phase one of drains: peers this director should confirm.
	var confirm []string
	for _, m := range live {
		if m.ID != n.cfg.ID && m.State == partition.Draining {
			confirm = append(confirm, m.ID)
		}
	}
	n.confirmOut = confirm
	n.self.Confirms = slices.DeleteFunc(n.self.Confirms, func(id string) bool { return !slices.Contains(confirm, id) })

	// What to install.
	owners := n.owners()
	var owned []uint32
	failover := false
	for b, o := range owners {
		if o == n.cfg.ID {
			owned = append(owned, uint32(b))
			if n.cur.Owners[b] != o {
				failover = true
			}
		}
	}
	if failover && !n.failover {
		n.event(FailoverLocal, fmt.Sprintf("epoch %d: taking over %d standby buckets", n.cur.Epoch, len(owned)-len(n.cur.Owned(n.cfg.ID))))
	}
	n.wantOwned, n.failover = owned, failover
}

func (n *Core) updateSelfState(live []Meta) {
	if n.self.State == partition.Active {
		n.everActive = true
	}
	if n.self.State != partition.Joining {
		return
	}
	busy := false
	for _, m := range live {
		if m.ID != n.cfg.ID && (m.State == partition.Active || m.State == partition.Draining) {
			busy = true
		}
	}
	var why Reason
	switch {
	case n.syncReady:
		why = JoinSyncReady
	case n.ticks >= n.cfg.JoinDelay:
		why = JoinDelay
	case n.ticks >= n.cfg.Settle && !busy:
		why = JoinBootstrap
	default:
		return
	}
	n.self.State = partition.Active
	n.event(why, fmt.Sprintf("active after %d ticks", n.ticks))
}

// owners applies fast failover to the current assignment.
func (n *Core) owners() []string {
	if !n.cfg.FastFailover {
		return n.cur.Owners
	}
	var dead []string
	for _, m := range n.cur.Members {
		if m.ID == n.cfg.ID {
			continue
		}
		if p, ok := n.peers[m.ID]; !ok || !p.alive {
			dead = append(dead, m.ID)
		}
	}
	if len(dead) == 0 {
		return n.cur.Owners
	}
	return partition.Failover(n.cur, dead...)
}

// catchUp is a follower's second path to the newest assignment: if gossip
// says a peer has a newer epoch and the leader's stream has not delivered
// it within Retry ticks, fetch it from that peer.
func (n *Core) catchUp(live []Meta) {
	from, max := n.newest(live)
	if max <= n.cur.Epoch {
		n.behindSince = -1
		return
	}
	if n.behindSince < 0 {
		n.behindSince = n.ticks
		return
	}
	if n.ticks-n.behindSince >= n.cfg.Retry && n.fetchFrom == "" {
		n.event(CatchUp, fmt.Sprintf("epoch %d not streamed within %d ticks; fetching it from %s", max, n.ticks-n.behindSince, from))
		n.fetch(from)
	}
}

// lead is the leader's part: adopt the cluster's newest assignment, then
// compute a new one when the member set differs from the current one's.
func (n *Core) lead(live []Meta) {
	if from, max := n.newest(live); max > n.cur.Epoch {
		if n.fetchFrom == "" {
			n.fetch(from)
		}
		return
	}
	// Peers whose newer assignment this director refused may have
	// directors that took it: the next epoch must pass theirs, or those
	// would drop it as stale.
	prev := n.cur
	for _, m := range live {
		if m.ID != n.cfg.ID && m.Epoch > prev.Epoch {
			prev.Epoch = m.Epoch
		}
	}
	members := n.members(live)
	diverged := ""
	for _, m := range live {
		if m.ID != n.cfg.ID && m.Epoch == n.cur.Epoch && m.Hash != 0 && n.self.Hash != 0 && m.Hash != n.self.Hash && n.self.Epoch == n.cur.Epoch {
			diverged = m.ID
		}
	}
	if sameMembers(members, n.cur.Members) && prev.Epoch == n.cur.Epoch {
		if diverged == "" {
			return
		}
		n.event(AssignDiverged, fmt.Sprintf("%s has a different assignment of epoch %d; issuing epoch %d", diverged, n.cur.Epoch, n.cur.Epoch+1))
	}
	next, err := partition.Assign(prev, members)
	if err != nil {
		if err.Error() != n.failed {
			n.event(AssignFailed, err.Error())
		}
		n.failed = err.Error()
		return
	}
	n.failed = ""
	n.event(AssignComputed, fmt.Sprintf("epoch %d for %s", next.Epoch, describe(members)))
	n.cur = next
	n.publish = true
}

// members returns the member list the leader assigns for: each live
// director with its gossiped weight and state, a draining one kept active
// until its peers confirm (or the confirm timeout passes).
func (n *Core) members(live []Meta) []partition.Member {
	out := make([]partition.Member, 0, len(live))
	draining := make(map[string]bool)
	for _, m := range live {
		st := m.State
		if st == partition.Draining && !n.drainReady(m.ID, live) {
			st = partition.Active
		}
		if st == partition.Draining {
			draining[m.ID] = true
		}
		out = append(out, partition.Member{ID: m.ID, Weight: m.Weight, State: st})
	}
	for id := range n.drainSince {
		if !slices.ContainsFunc(live, func(m Meta) bool { return m.ID == id && m.State == partition.Draining }) {
			delete(n.drainSince, id)
			delete(n.drainNoted, id)
		}
	}
	// Never leave every bucket unowned while a draining director is alive:
	// draining directors stay (or become) active while no other director
	// is. One that owns nothing now waits for the settle time first, so a
	// drained director restarting does not take every bucket before it has
	// even met its peers.
	owning := map[string]bool{}
	for _, m := range n.cur.Members {
		owning[m.ID] = m.State == partition.Active
	}
	blocked := false
	if !slices.ContainsFunc(out, func(m partition.Member) bool { return m.State == partition.Active }) {
		for i := range out {
			if draining[out[i].ID] && (owning[out[i].ID] || n.ticks >= n.cfg.Settle) {
				out[i].State, blocked = partition.Active, true
			}
		}
	}
	if blocked {
		if !n.blocked {
			n.event(DrainLastActive, "keeping draining directors active: no other active director")
		}
	}
	n.blocked = blocked
	return out
}

func (n *Core) drainReady(id string, live []Meta) bool {
	active := false
	for _, m := range n.cur.Members {
		if m.ID == id {
			active = m.State == partition.Active
		}
	}
	if !active {
		return true // it owns nothing: there are no connections to hand over
	}
	since, ok := n.drainSince[id]
	if !ok {
		since = n.ticks
		n.drainSince[id] = since
	}
	confirmed := true
	for _, m := range live {
		if m.ID != id && m.State == partition.Active && !slices.Contains(m.Confirms, id) {
			confirmed = false
		}
	}
	if confirmed {
		if !n.drainNoted[id] {
			n.event(DrainConfirmed, fmt.Sprintf("peers hold %s's connections", id))
		}
		n.drainNoted[id] = true
		return true
	}
	if n.ticks-since >= n.cfg.DrainConfirmTimeout {
		if !n.drainNoted[id] {
			n.event(DrainTimeout, fmt.Sprintf("moving %s's buckets after %d ticks without every peer's confirmation", id, n.ticks-since))
		}
		n.drainNoted[id] = true
		return true
	}
	n.drainNoted[id] = false
	return false
}

func sameMembers(a, b []partition.Member) bool {
	return slices.Equal(a, b)
}

func describe(ms []partition.Member) string {
	s := ""
	for i, m := range ms {
		if i > 0 {
			s += " "
		}
		s += fmt.Sprintf("%s/%s/%d", m.ID, m.State, m.Weight)
	}
	return s
}
