package reliable

import (
	"fmt"
	"slices"
)

// Config tunes the state machines. Zero fields take the defaults.
type Config struct {
	// Window is how many data sequences a receiver tracks past its
	// contiguous point; a sender further ahead than that makes the
	// receiver give the oldest up (and pull a snapshot). Default 8192.
	Window uint64
	// NackDelay is how long a gap may stay open before it is NACKed
	// (tolerates reordering), in nanoseconds. Default 2ms.
	NackDelay int64
	// NackInterval is the minimum time between the first and second NACK
	// of one sequence, in nanoseconds; each later wait doubles, up to
	// eight times it. Default 30ms.
	NackInterval int64
	// MaxNacks is how many times one sequence is NACKed before it is
	// given up as lost (and a snapshot pulled). Default 10: with the
	// default interval a gap is given up about 1.9s after it opened, so a
	// sender or a machine that stalls for a second costs retransmissions,
	// not a snapshot of the sender's whole table.
	MaxNacks int
	// RingSize is how many data packets a sender keeps for
	// retransmission. Default 8192.
	RingSize int
	// ResendHoldoff is the minimum time between two retransmissions of
	// one sequence (several receivers NACK the same loss), in
	// nanoseconds. Default 5ms.
	ResendHoldoff int64
	// JoinSettle is how long a joining receiver listens to a sender's
	// heartbeats before it takes the highest sequence they announced as
	// the sender's current one, in nanoseconds: at least two of the
	// sender's heartbeat intervals, so that a genuine heartbeat is among
	// them. Default 200ms.
	JoinSettle int64
}

func (c Config) withDefaults() Config {
	if c.Window == 0 {
		c.Window = 8192
	}
	if c.NackDelay == 0 {
		c.NackDelay = 2e6
	}
	if c.NackInterval == 0 {
		c.NackInterval = 30e6
	}
	if c.MaxNacks == 0 {
		c.MaxNacks = 10
	}
	if c.RingSize == 0 {
		c.RingSize = 8192
	}
	if c.ResendHoldoff == 0 {
		c.ResendHoldoff = 5e6
	}
	if c.JoinSettle == 0 {
		c.JoinSettle = 200e6
	}
	return c
}

// Verdict is the decision on an incoming packet's sequence. Everything
// but Accept means the packet must not be applied; metrics label by String.
type Verdict uint8

// Verdicts.
const (
	Accept           Verdict = iota
	Duplicate                // seen before: a replay or a redundant retransmission
	TooOld                   // below the window: a replay, or given up already
	StaleIncarnation         // from an older run of the sender: a replay
	Unanchored               // a joining receiver does not know the sender's current sequence yet
)

func (v Verdict) String() string {
	switch v {
	case Accept:
		return "accept"
	case Duplicate:
		return "duplicate"
	case TooOld:
		return "too_old"
	case StaleIncarnation:
		return "stale_incarnation"
	case Unanchored:
		return "unanchored"
	}
	return fmt.Sprintf("verdict(%d)", uint8(v))
}

// Range is the sequences [First, First+Count).
type Range struct {
	First uint64
	Count uint32
}

// Sender numbers data packets and keeps the recent ones for resending.
type Sender struct {
	cfg  Config
	next uint64
	ring []slot
}

type slot struct {
	seq      uint64
	body     []byte
	lastSent int64
}

// NewSender returns a sender whose first sequence is 1.
func NewSender(cfg Config) *Sender {
	cfg = cfg.withDefaults()
	return &Sender{cfg: cfg, next: 1, ring: make([]slot, cfg.RingSize)}
}

// Next assigns the next data sequence.
func (s *Sender) Next() uint64 {
	seq := s.next
	s.next++
	return seq
}

// Highest is the last sequence assigned (0 before any).
func (s *Sender) Highest() uint64 { return s.next - 1 }

// LowestRetained is the oldest sequence that can still be resent.
func (s *Sender) LowestRetained() uint64 {
	n := uint64(len(s.ring))
	if s.next <= n {
		return 1
	}
	return s.next - n
}

// Record keeps a copy of the packet body sent as seq at now.
func (s *Sender) Record(seq uint64, body []byte, now int64) {
	sl := &s.ring[seq%uint64(len(s.ring))]
	sl.seq = seq
	sl.body = append(sl.body[:0], body...)
	sl.lastSent = now
}

// OnNack returns the bodies to resend for the NACKed ranges, skipping
// sequences no longer held and ones resent within ResendHoldoff. The
// returned slices alias the ring: send them before the next Record.
// gone counts the NACKed sequences that could not be resent.
func (s *Sender) OnNack(ranges []Range, now int64, resend [][]byte) (out [][]byte, gone int) {
	low := s.LowestRetained()
	const maxPerNack = 4096
	n := 0
	for _, r := range ranges {
		for i := uint64(0); i < uint64(r.Count) && n < maxPerNack; i++ {
			seq := r.First + i
			n++
			if seq == 0 || seq >= s.next {
				continue
			}
			if seq < low {
				gone++
				continue
			}
			sl := &s.ring[seq%uint64(len(s.ring))]
			if sl.seq != seq {
				gone++
				continue
			}
			if now-sl.lastSent < s.cfg.ResendHoldoff {
				continue
			}
			sl.lastSent = now
			resend = append(resend, sl.body)
		}
	}
	return resend, gone
}

// Stats are a receiver's counters for one remote sender.
type Stats struct {
	Incarnation uint64
	Accepted    uint64 // data packets accepted
	Duplicates  uint64 // data packets seen before
	TooOld      uint64 // data packets below the window
	Stale       uint64 // packets from an older incarnation
	Unanchored  uint64 // data packets refused while joining
	CtrlReplays uint64 // control packets replayed
	Lost        uint64 // sequences given up
	Nacked      uint64 // sequences NACKed (each attempt)
	Highest     uint64 // highest sequence received or announced
	Contiguous  uint64 // every sequence up to it received or given up
	Missing     uint64 // sequences still awaited
	Joining     bool   // not yet anchored (see NewJoiningReceiver)
}

// CaughtUp reports whether the receiver follows the sender and nothing
// the sender announced is missing.
func (s Stats) CaughtUp() bool { return !s.Joining && s.Missing == 0 && s.Contiguous >= s.Highest }

type gap struct {
	seen     int64
	lastNack int64
	nacks    int
}

// Receiver is the receive state for one remote sender.
type Receiver struct {
	cfg   Config
	known bool
	inc   uint64
	base  uint64   // lowest sequence not yet done
	high  uint64   // highest sequence received or announced
	done  []uint64 // bitset over [base, base+Window), indexed seq % Window
	gaps  map[uint64]*gap

	ctrlHigh uint64
	ctrlMask uint64 // bit i: ctrlHigh-i seen

	snapshot bool
	fresh    bool // first contact, nothing accepted nor announced yet
	// joining: see NewJoiningReceiver. Until anchored, heardHB tells
	// whether a heartbeat came, settleFrom when the first did, and
	// anchorHigh is the highest sequence they announced.
	joining    bool
	heardHB    bool
	settleFrom int64
	anchorHigh uint64
	stats      Stats
}

// NewReceiver returns the state for a sender not heard from yet.
func NewReceiver(cfg Config) *Receiver {
	cfg = cfg.withDefaults()
	words := (cfg.Window + 63) / 64
	cfg.Window = words * 64
	return &Receiver{cfg: cfg, done: make([]uint64, words), gaps: map[uint64]*gap{}}
}

// NewJoiningReceiver returns the state for a sender not heard from yet by
// a receiver that is itself starting. It starts at the sender's current
// sequence, whatever the sender's age, and asks for a snapshot of the
// sender's entries (TakeSnapshotRequest) instead of NACKing the sender's
// whole history: a newcomer that NACKs every peer's retransmit ring makes
// every peer resend up to RingSize packets to every receiver at once. A
// later incarnation of the sender is followed from its sequence 1, as by
// any receiver.
//
// The current sequence is not the first one heard: a starting receiver
// cannot tell a replayed old datagram of the sender's current run from a
// fresh one (the MAC is genuine; no window knows it yet). So it refuses
// data (Unanchored) while it listens to the sender's heartbeats for
// JoinSettle, and then starts after the highest sequence they announced.
// A replay can only announce less than the sender has sent, and a
// genuine heartbeat is among those heard, so the anchor is the sender's
// sequence as of one heartbeat ago: older replays are then TooOld, and
// at most the few packets sent since are NACKed. What the refused data
// carried comes with the snapshot, pulled after anchoring.
func NewJoiningReceiver(cfg Config) *Receiver {
	r := NewReceiver(cfg)
	r.joining = true
	return r
}

func (r *Receiver) bit(seq uint64) (int, uint64) {
	i := seq % r.cfg.Window
	return int(i / 64), 1 << (i % 64)
}

func (r *Receiver) isDone(seq uint64) bool {
	w, m := r.bit(seq)
	return r.done[w]&m != 0
}

func (r *Receiver) setDone(seq uint64) {
	w, m := r.bit(seq)
	r.done[w] |= m
}

// advance moves base past done sequences, clearing their bits.
func (r *Receiver) advance() {
	for r.base <= r.high && r.isDone(r.base) {
		w, m := r.bit(r.base)
		r.done[w] &^= m
		r.base++
	}
	if r.base > r.high {
		r.high = r.base - 1
	}
}

// nackWait is how long after the nacks-th NACK of a sequence the next is
// due: NackInterval, doubling, at most 8×NackInterval.
func (r *Receiver) nackWait(nacks int) int64 {
	return r.cfg.NackInterval << min(nacks-1, 3)
}

// giveUp marks seq lost.
func (r *Receiver) giveUp(seq uint64) {
	delete(r.gaps, seq)
	r.setDone(seq)
	r.stats.Lost++
	r.snapshot = true
}

// reset starts a new incarnation; sequences from first on are awaited.
func (r *Receiver) reset(inc, first uint64) {
	clear(r.done)
	clear(r.gaps)
	r.known, r.inc = true, inc
	r.base, r.high = first, first-1
	r.ctrlHigh, r.ctrlMask = 0, 0
	r.heardHB, r.anchorHigh = false, 0 // a joining receiver listens to the new run afresh
	r.stats.Incarnation = inc
}

// listen takes a heartbeat announcing highest at now while joining, and
// anchors once JoinSettle has passed since the first.
func (r *Receiver) listen(highest uint64, now int64) {
	if !r.heardHB {
		r.heardHB, r.settleFrom = true, now
	}
	r.anchorHigh = max(r.anchorHigh, highest)
	if now-r.settleFrom >= r.cfg.JoinSettle {
		r.anchor()
	}
}

// anchor ends joining: sequences after the highest announced are
// awaited, the earlier ones come by snapshot.
func (r *Receiver) anchor() {
	r.joining, r.fresh = false, false
	r.base, r.high = r.anchorHigh+1, r.anchorHigh
	r.snapshot = r.snapshot || r.anchorHigh > 0
}

// incarnation handles a packet's incarnation; ok is false for a stale one.
// A first contact with a young sender (seq within the window) is followed
// from sequence 1; with an older one it starts at seq (its history comes
// from the snapshot). A restarted sender is followed from its sequence 1.
func (r *Receiver) incarnation(inc, seq uint64, now int64) bool {
	switch {
	case !r.known && seq > r.cfg.Window:
		r.reset(inc, seq)
		r.fresh = false
	case !r.known:
		r.reset(inc, 1)
		r.fresh = false
	case inc < r.inc:
		r.stats.Stale++
		return false
	case inc > r.inc:
		r.reset(inc, 1)
	}
	return true
}

// extend records that sequences up to hi exist, opening gaps for the
// ones not received, and slides the window if hi runs beyond it.
func (r *Receiver) extend(hi uint64, now int64) {
	if hi <= r.high {
		return
	}
	if hi >= r.base+r.cfg.Window {
		newBase := hi - r.cfg.Window + 1
		end := min(newBase, r.high+1)
		for s := r.base; s < end; s++ {
			if r.isDone(s) {
				w, m := r.bit(s)
				r.done[w] &^= m
				continue
			}
			delete(r.gaps, s)
			r.stats.Lost++
			r.snapshot = true
		}
		if newBase > end {
			r.stats.Lost += newBase - end
			r.snapshot = true
		}
		r.base = newBase
		if r.high < newBase-1 {
			r.high = newBase - 1
		}
	}
	for s := max(r.high+1, r.base); s <= hi; s++ {
		if !r.isDone(s) {
			r.gaps[s] = &gap{seen: now}
		}
	}
	r.high = hi
}

// OnData decides on a data packet (inc, seq) at now.
func (r *Receiver) OnData(inc, seq uint64, now int64) Verdict {
	if seq == 0 {
		return TooOld
	}
	if r.joining {
		// Only a heartbeat teaches a joining receiver the sender's run
		// (a newer one is followed once its heartbeat comes) and its
		// current sequence.
		switch {
		case r.known && inc < r.inc:
			r.stats.Stale++
			return StaleIncarnation
		case !r.known || inc > r.inc || !r.heardHB || now-r.settleFrom < r.cfg.JoinSettle:
			if r.known && inc == r.inc {
				// Refused now, it comes with the snapshot: awaiting it
				// after anchoring would NACK it. A replay is no newer
				// than what the sender has sent, so this moves the
				// anchor only up to the sender's real sequence.
				r.anchorHigh = max(r.anchorHigh, seq)
			}
			r.stats.Unanchored++
			return Unanchored
		}
		r.anchor()
	}
	if !r.incarnation(inc, seq, now) {
		return StaleIncarnation
	}
	if seq < r.base {
		r.stats.TooOld++
		return TooOld
	}
	if seq <= r.high && r.isDone(seq) {
		r.stats.Duplicates++
		return Duplicate
	}
	r.fresh = false
	r.extend(seq, now)
	delete(r.gaps, seq)
	r.setDone(seq)
	r.advance()
	r.stats.Accepted++
	return Accept
}

// OnControl decides on a control packet (inc, cseq): each control
// sequence is accepted once, within a 64-packet window.
func (r *Receiver) OnControl(inc, cseq uint64, now int64) Verdict {
	if cseq == 0 {
		return TooOld
	}
	if !r.known {
		// A control packet is the first we hear: the first heartbeat
		// decides where to start.
		r.reset(inc, 1)
		r.fresh = true
		r.ctrlHigh, r.ctrlMask = cseq, 1
		return Accept
	}
	if !r.incarnation(inc, 0, now) {
		return StaleIncarnation
	}
	switch {
	case cseq > r.ctrlHigh:
		sh := cseq - r.ctrlHigh
		if sh >= 64 {
			r.ctrlMask = 0
		} else {
			r.ctrlMask <<= sh
		}
		r.ctrlMask |= 1
		r.ctrlHigh = cseq
		return Accept
	case r.ctrlHigh-cseq >= 64:
		r.stats.CtrlReplays++
		return TooOld
	}
	m := uint64(1) << (r.ctrlHigh - cseq)
	if r.ctrlMask&m != 0 {
		r.stats.CtrlReplays++
		return Duplicate
	}
	r.ctrlMask |= m
	return Accept
}

// OnHeartbeat takes the sender's announced highest sequence and the
// oldest it can still resend (after OnControl accepted the packet).
// Sequences it can no longer resend are given up.
func (r *Receiver) OnHeartbeat(highest, lowestRetained uint64, now int64) {
	if !r.known {
		return
	}
	if r.joining {
		r.listen(highest, now)
		return
	}
	if r.fresh {
		r.fresh = false
		if r.base == 1 && r.high == 0 && lowestRetained > 1 {
			// First contact by heartbeat with a sender whose ring has
			// wrapped: start after its history (the snapshot carries it).
			r.base, r.high = highest+1, highest
			return
		}
	}
	r.extend(highest, now)
	for s := r.base; s < lowestRetained && s <= r.high; s++ {
		if !r.isDone(s) {
			r.giveUp(s)
		}
	}
	r.advance()
}

// Tick returns the ranges to NACK at now (appended to dst) and gives up
// sequences NACKed MaxNacks times.
func (r *Receiver) Tick(now int64, dst []Range) []Range {
	if len(r.gaps) == 0 {
		return dst
	}
	var due []uint64
	for s, g := range r.gaps {
		if now-g.seen < r.cfg.NackDelay || (g.nacks > 0 && now-g.lastNack < r.nackWait(g.nacks)) {
			continue
		}
		if g.nacks >= r.cfg.MaxNacks {
			r.giveUp(s)
			continue
		}
		g.nacks++
		g.lastNack = now
		r.stats.Nacked++
		due = append(due, s)
	}
	r.advance()
	slices.Sort(due)
	for _, s := range due {
		if n := len(dst); n > 0 && dst[n-1].First+uint64(dst[n-1].Count) == s && dst[n-1].Count < 1<<16 {
			dst[n-1].Count++
			continue
		}
		dst = append(dst, Range{First: s, Count: 1})
	}
	return dst
}

// Pending reports whether Tick has work to come: a gap to NACK or give
// up, or a snapshot request not yet taken. It is cheap (Deadline walks the
// gaps), for a caller deciding whether to schedule a Tick at all.
func (r *Receiver) Pending() bool { return len(r.gaps) > 0 || r.snapshot }

// Deadline reports the earliest time at which Tick has something to do: a
// NACK due, a sequence to give up, or (at once: now) a snapshot request
// waiting for TakeSnapshotRequest. ok is false when nothing is pending, so
// the caller need not call Tick until a packet arrives.
func (r *Receiver) Deadline(now int64) (at int64, ok bool) {
	if r.snapshot {
		return now, true
	}
	for _, g := range r.gaps {
		t := g.seen + r.cfg.NackDelay
		if g.nacks > 0 {
			t = g.lastNack + r.nackWait(g.nacks)
		}
		if !ok || t < at {
			at, ok = t, true
		}
	}
	return at, ok
}

// Incarnation is the sender incarnation the state follows.
func (r *Receiver) Incarnation() uint64 { return r.inc }

// TakeSnapshotRequest reports, once, that sequences were given up since
// the last call, so the caller should pull a snapshot of the sender's
// entries.
func (r *Receiver) TakeSnapshotRequest() bool {
	s := r.snapshot
	r.snapshot = false
	return s
}

// Stats returns the counters.
func (r *Receiver) Stats() Stats {
	s := r.stats
	s.Highest = r.high
	if r.base > 0 {
		s.Contiguous = r.base - 1
	}
	s.Missing = uint64(len(r.gaps))
	s.Joining = r.joining
	return s
}
