package mesh

import (
	"errors"
	"fmt"
	"net/netip"
	"time"

	syncdpb "github.com/saru-lb/saru/proto/syncd/v1"
	"github.com/saru-lb/saru/syncd/conn"
	"github.com/saru-lb/saru/syncd/reliable"
	"github.com/saru-lb/saru/syncd/table"
	"github.com/saru-lb/saru/syncd/wire"
)

// Time is a moment as the core sees it (see the package doc).
type Time struct {
	// Mono is a monotonic reading: only differences between readings
	// matter.
	Mono time.Duration
	// Wall is the wall clock.
	Wall time.Time
}

// Add returns t moved by d on both clocks.
func (t Time) Add(d time.Duration) Time { return Time{Mono: t.Mono + d, Wall: t.Wall.Add(d)} }

// Config is a Mesh's fixed configuration.
type Config struct {
	// ID names this node; Incarnation tells its runs apart: a restarted
	// node must use a higher one, whatever its clock says (see
	// NextIncarnation).
	ID          string
	Incarnation uint64
	// Advertise is the API address announced in heartbeats.
	Advertise string
	// Budget is how many bytes of batches fit in one datagram
	// (wire.BatchBudget).
	Budget int
	// Heartbeat, Flush, Refresh and Expire are the heartbeat interval, the
	// longest a partly filled packet waits, the interval in which every
	// local entry is re-sent, and the interval in which the table is
	// swept for expired entries.
	Heartbeat, Flush, Refresh, Expire time.Duration
	// SnapshotPeers are API addresses to pull the initial snapshot from,
	// besides peers whose heartbeat says ready; SnapshotWait is how long
	// a starting node waits for any candidate before it is ready alone.
	SnapshotPeers []string
	SnapshotWait  time.Duration
	// Reliable tunes sequencing, NACKs and the retransmit ring.
	Reliable reliable.Config
}

func (c Config) validate() error {
	var errs []error
	if c.ID == "" || len(c.ID) > wire.MaxSenderLen {
		errs = append(errs, fmt.Errorf("id %q: want 1-%d bytes", c.ID, wire.MaxSenderLen))
	}
	if c.Incarnation == 0 {
		errs = append(errs, errors.New("incarnation: must be non-zero"))
	}
	if c.Budget < 200 {
		errs = append(errs, fmt.Errorf("budget %d: leaves no room for entries", c.Budget))
	}
	if c.Heartbeat <= 0 || c.Flush <= 0 || c.Refresh <= 0 || c.Expire <= 0 {
		errs = append(errs, errors.New("heartbeat, flush, refresh and expire: must be positive"))
	}
	return errors.Join(errs...)
}

// NextIncarnation is the incarnation of a run that follows one whose
// incarnation was last (0 when none is known): above last, so peers
// follow the new run at once and refuse the old one's packets for good,
// however far the wall clock has stepped back since; and not below the
// wall clock in nanoseconds, so that a node whose record of last is lost
// still starts above its earlier runs while its clock is sane.
func NextIncarnation(last uint64, wall time.Time) uint64 {
	return max(last+1, uint64(max(wall.UnixNano(), 0)))
}

// Timings the protocol does not expose.
const (
	// maxExpiryPause bounds how long snapshot streams hold expiry back.
	maxExpiryPause = time.Minute
	// pullRetry is the wait before a failed pull from the same address
	// or of the same peer is tried again.
	pullRetry = time.Second
)

// Pull asks the caller to pull a snapshot over the syncd.v1.Sync API at
// Addr, feed its chunks to PullChunk and its end to PullDone.
type Pull struct {
	// Origin is the peer whose entries to pull (a catch-up); empty pulls
	// the whole table (the initial snapshot).
	Origin string
	Addr   string
}

// Event is something worth logging, with its typed Reason.
type Event struct {
	Reason Reason
	// Peer is the peer concerned, when known; From the datagram's
	// source, for drops.
	Peer string
	From netip.AddrPort
	// Seq is a dropped data packet's sequence.
	Seq uint64
	// Entries counts a pull's entries; Took is how long it ran.
	Entries uint64
	Took    time.Duration
	// Err is the error behind the event, if any.
	Err error
}

// Ready is what the caller must do after feeding events.
type Ready struct {
	// Send lists datagrams to send, in order. They alias the Mesh's
	// buffers: send them before the next call into the Mesh.
	Send [][]byte
	// Import lists entries to install in the local backend. They are the
	// caller's; Recycle hands the slice back for reuse.
	Import []conn.Entry
	// Pulls lists snapshot pulls to start.
	Pulls []Pull
	// Events to log.
	Events []Event
	// NextTick, when HasTick, is when Tick is next due (a Mono reading):
	// after Tick, when it next has work; after other events, at once
	// when they left work for it (an entry waiting to be flushed, a gap
	// to NACK, a pull to start).
	NextTick time.Duration
	HasTick  bool
}

type peer struct {
	id        string
	recv      *reliable.Receiver
	api       string
	ready     bool
	heard     bool // lastSeen is set
	lastSeen  time.Duration
	hbSeen    bool // lastHB is set
	lastHB    time.Duration
	entries   uint64 // entries received and applied
	retrans   uint64 // retransmitted packets received
	rejAuth   uint64 // authentic but malformed datagrams from its addresses
	addrs     [maxPeerAddrs]netip.Addr
	nextAddr  int // the slot of addrs to overwrite next
	rejReplay map[reliable.Verdict]uint64
	snapshots uint64
	pulling   bool
	wantSnap  bool          // a catch-up snapshot is due
	retryPull time.Duration // not before, after a failed one
}

// Mesh is one node's sync state machine. Feed it events, then call Ready.
type Mesh struct {
	cfg        Config
	start      time.Duration
	tab        *table.Table
	snd        *reliable.Sender
	peers      map[string]*peer
	kr         *wire.Keyring
	sealer     *wire.Sealer
	selfPrefix []byte
	opener     *Opener // Receive's
	packer     wire.Packer

	lastVersion uint64
	ctrlSeq     uint64
	lastFlush   time.Duration
	lastHB      time.Duration
	hbSent      bool
	swept       bool
	lastSweep   time.Duration
	expireCur   uint32
	expireDebt  float64
	refreshCur  uint32
	refreshDebt float64
	// serving counts snapshot streams being served: expiry (the only
	// removal, which moves records) pauses meanwhile so that their
	// cursors miss nothing, for at most maxExpiryPause (a stuck stream
	// must not stop expiry for good; refresh repairs what it then misses).
	serving        int
	expiryPausedTo time.Duration

	// The initial snapshot.
	snapState    syncdpb.SnapshotState
	fullPulling  bool
	fullStarted  time.Duration
	tried        map[string]time.Duration
	pullStarted  map[string]time.Duration // catch-ups, by peer
	snapDeadline time.Duration
	// snapOrigins are the senders whose entries came with the initial
	// snapshot: their history is held, so one first heard after it is
	// followed from its current sequence, not NACKed from sequence 1.
	snapOrigins map[string]bool

	c counts
	// now is the Mono reading of the event being handled.
	now time.Duration

	// Scratch and output.
	ranges  []reliable.Range
	resend  [][]byte
	refresh []conn.Entry
	dgs     [][]byte // buffers; out[i] aliases dgs[i]
	out     [][]byte
	imp     []conn.Entry
	pulls   []Pull
	events  []Event
	next    time.Duration
	hasNext bool
}

type counts struct {
	rejected   map[wire.Reason]uint64
	results    [table.Invalid + 1]uint64 // by table.Result
	sentData   uint64
	sentCtrl   uint64
	sentRetx   uint64
	nackedGone uint64
	expired    uint64
	dupID      uint64
}

// New returns a Mesh started at now, signing with keys[0].
func New(cfg Config, keys []wire.Key, now Time) (*Mesh, error) {
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("mesh config: %w", err)
	}
	kr, err := wire.NewKeyring(keys)
	if err != nil {
		return nil, err
	}
	if cfg.Reliable.JoinSettle == 0 {
		// Two of the peers' heartbeats (the cluster shares the interval).
		cfg.Reliable.JoinSettle = int64(2 * cfg.Heartbeat)
	}
	m := &Mesh{
		cfg: cfg, start: now.Mono,
		tab: table.New(time.Time{}), snd: reliable.NewSender(cfg.Reliable),
		peers: map[string]*peer{},
		kr:    kr, sealer: wire.NewSealer(kr), selfPrefix: wire.SenderPrefix(cfg.ID),
		packer:       wire.Packer{Budget: cfg.Budget},
		snapState:    syncdpb.SnapshotState_SNAPSHOT_STATE_PENDING,
		snapOrigins:  map[string]bool{},
		tried:        map[string]time.Duration{},
		pullStarted:  map[string]time.Duration{},
		snapDeadline: now.Mono + cfg.SnapshotWait,
		c:            counts{rejected: map[wire.Reason]uint64{}},
	}
	m.opener = m.NewOpener()
	return m, nil
}

// SetKeys switches to a new key list at now; keys the current keyring
// holds and keys does not stay accepted for grace.
func (m *Mesh) SetKeys(keys []wire.Key, grace time.Duration, now Time) (*wire.Keyring, error) {
	next, err := m.kr.Rollover(keys, now.Wall, grace)
	if err != nil {
		return nil, err
	}
	m.kr = next
	m.sealer.SetKeyring(next)
	return next, nil
}

// tableTime is the table's clock: monotonic, so that a wall-clock step
// expires nothing.
func tableTime(now Time) time.Time { return time.Time{}.Add(now.Mono) }

// Ready returns what to do and forgets it.
func (m *Mesh) Ready() Ready {
	rd := Ready{Send: m.out, Import: m.imp, Pulls: m.pulls, Events: m.events, NextTick: m.next, HasTick: m.hasNext}
	m.out, m.imp, m.pulls, m.events, m.hasNext = m.out[:0], nil, nil, nil, false
	return rd
}

// Recycle hands back a Ready's Import once the caller is done with it.
func (m *Mesh) Recycle(imp []conn.Entry) {
	if len(m.imp) == 0 && cap(imp) > cap(m.imp) {
		m.imp = imp[:0]
	}
}

func (m *Mesh) event(e Event) { m.events = append(m.events, e) }

// wantTick asks for Tick by at.
func (m *Mesh) wantTick(at time.Duration) {
	if !m.hasNext || at < m.next {
		m.next, m.hasNext = at, true
	}
}

// dgBuf returns an empty buffer for the next outgoing datagram.
func (m *Mesh) dgBuf() []byte {
	i := len(m.out)
	if i == len(m.dgs) {
		m.dgs = append(m.dgs, make([]byte, 0, 1500))
	}
	return m.dgs[i][:0]
}

func (m *Mesh) send(dg []byte) {
	m.dgs[len(m.out)] = dg
	m.out = append(m.out, dg)
}

// nextVersion is a hybrid logical clock: wall-clock nanoseconds, never
// below a version already seen.
func (m *Mesh) nextVersion(now Time) uint64 {
	v := uint64(now.Wall.UnixNano())
	if v <= m.lastVersion {
		v = m.lastVersion + 1
	}
	m.lastVersion = v
	return v
}

func (m *Mesh) seeVersion(v uint64) {
	if v > m.lastVersion {
		m.lastVersion = v
	}
}

// Export takes entries the local backend exported (Origin and Version
// are stamped here). The backend validated each where it decoded it (the
// conn.Backend contract), so they are not checked again.
func (m *Mesh) Export(es []conn.Entry, now Time) {
	m.now = now.Mono
	tt := tableTime(now)
	for i := range es {
		e := es[i]
		e.Origin = m.cfg.ID
		e.Version = m.nextVersion(now)
		m.c.results[m.tab.UpsertValid(&e, tt)]++
		m.queue(&e, now)
	}
}

func (m *Mesh) queue(e *conn.Entry, now Time) {
	if !m.packer.Fits(e) {
		m.flush()
	}
	m.packer.Add(e)
	if m.packer.Len() == 1 {
		m.lastFlush = now.Mono
		m.wantTick(now.Mono)
	}
}

// flush seals the packed entries as one data packet.
func (m *Mesh) flush() {
	if m.packer.Len() == 0 {
		return
	}
	seq := m.snd.Next()
	pkt := &syncdpb.Packet{Sender: m.cfg.ID, Incarnation: m.cfg.Incarnation, Sequence: seq, Batches: m.packer.Batches()}
	dg, body, err := m.sealer.SealData(m.dgBuf(), pkt)
	m.packer.Reset()
	if err != nil {
		m.event(Event{Reason: MarshalFailed, Err: err})
		return
	}
	m.snd.Record(seq, body, int64(m.now))
	m.send(dg)
	m.c.sentData++
}

// sendControl seals a heartbeat and/or NACKs.
func (m *Mesh) sendControl(hb *syncdpb.Heartbeat, nacks []*syncdpb.Nack) {
	m.ctrlSeq++
	pkt := &syncdpb.Packet{Sender: m.cfg.ID, Incarnation: m.cfg.Incarnation, ControlSequence: m.ctrlSeq, Heartbeat: hb, Nacks: nacks}
	dg, err := m.sealer.SealPacket(m.dgBuf(), pkt)
	if err != nil {
		m.event(Event{Reason: MarshalFailed, Err: err})
		return
	}
	m.send(dg)
	m.c.sentCtrl++
}

// SetAdvertise sets the API address announced in heartbeats (known once
// the caller listens).
func (m *Mesh) SetAdvertise(addr string) { m.cfg.Advertise = addr }
