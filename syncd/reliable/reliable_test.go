package reliable

import (
	"encoding/binary"
	"go/build"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"pgregory.net/rapid"
)

const ms = int64(1e6)

func TestReceiverInOrderAndReplay(t *testing.T) {
	r := NewReceiver(Config{})
	for seq := uint64(5); seq <= 10; seq++ {
		if v := r.OnData(7, seq, 0); v != Accept {
			t.Fatalf("seq %d: %v", seq, v)
		}
	}
	if v := r.OnData(7, 8, 0); v != Duplicate {
		t.Fatalf("replayed seq 8 (inside the window): %v", v)
	}
	r.OnData(7, 12, 0)
	if v := r.OnData(7, 12, 0); v != Duplicate {
		t.Fatalf("replayed seq 12 (inside the window): %v", v)
	}
	r.OnData(7, 11, 0)
	if got := r.Tick(10*ms, nil); !slices.Equal(got, []Range{{1, 4}}) {
		t.Fatalf("a young sender's history is NACKed: %v", got)
	}
	for seq := uint64(1); seq < 5; seq++ {
		r.OnData(7, seq, 0)
	}
	if v := r.OnData(7, 8, 0); v != TooOld {
		t.Fatalf("replayed seq 8 (below the contiguous point): %v", v)
	}
	if v := r.OnData(6, 13, 0); v != StaleIncarnation {
		t.Fatalf("older incarnation: %v", v)
	}
	st := r.Stats()
	if st.Contiguous != 12 || st.Highest != 12 || !st.CaughtUp() {
		t.Fatalf("stats %+v", st)
	}
	// A restart (higher incarnation) is followed from sequence 1.
	if v := r.OnData(8, 2, 0); v != Accept {
		t.Fatalf("restart: %v", v)
	}
	if got := r.Tick(10*ms, nil); !slices.Equal(got, []Range{{1, 1}}) {
		t.Fatalf("nack after restart %v", got)
	}
}

func TestReceiverGapNackAndGiveUp(t *testing.T) {
	r := NewReceiver(Config{MaxNacks: 2})
	r.OnData(1, 1, 0)
	r.OnData(1, 4, 0) // 2, 3 missing
	if got := r.Tick(0, nil); len(got) != 0 {
		t.Fatalf("nacked before NackDelay: %v", got)
	}
	if got := r.Tick(3*ms, nil); !slices.Equal(got, []Range{{2, 2}}) {
		t.Fatalf("nack %v", got)
	}
	if got := r.Tick(4*ms, nil); len(got) != 0 {
		t.Fatalf("nacked again within NackInterval: %v", got)
	}
	r.OnData(1, 3, 5*ms) // retransmission of 3
	if got := r.Tick(40*ms, nil); !slices.Equal(got, []Range{{2, 1}}) {
		t.Fatalf("second nack %v", got)
	}
	if r.TakeSnapshotRequest() {
		t.Fatal("snapshot requested before giving up")
	}
	if got := r.Tick(80*ms, nil); len(got) != 0 || r.Stats().Lost != 0 {
		t.Fatalf("gave up or nacked within the doubled interval: %v", got)
	}
	r.Tick(100*ms, nil) // third attempt exceeds MaxNacks: give up
	st := r.Stats()
	if st.Lost != 1 || st.Contiguous != 4 || st.Missing != 0 {
		t.Fatalf("stats %+v", st)
	}
	if !r.TakeSnapshotRequest() || r.TakeSnapshotRequest() {
		t.Fatal("snapshot request must be reported once")
	}
}

// A gap is NACKed at doubling intervals (30, 60, 120, then 240ms) and
// given up only after about 1.9s: a stall of a second is repaired by
// retransmission, not by pulling a snapshot.
func TestNackBackoff(t *testing.T) {
	r := NewReceiver(Config{})
	r.OnData(1, 1, 0)
	r.OnData(1, 3, 0) // 2 missing
	var at []int64
	var gaveUp int64
	for now := int64(0); now <= 3000*ms && gaveUp == 0; now += ms {
		if got := r.Tick(now, nil); len(got) > 0 {
			at = append(at, now)
		}
		if r.Stats().Lost > 0 {
			gaveUp = now
		}
	}
	want := []int64{2, 32, 92, 212, 452, 692, 932, 1172, 1412, 1652}
	for i := range want {
		want[i] *= ms
	}
	if !slices.Equal(at, want) {
		t.Fatalf("NACKs at %v, want %v", at, want)
	}
	if snap := r.TakeSnapshotRequest(); gaveUp != 1892*ms || !snap {
		t.Fatalf("gave up at %dms (want 1892), snapshot requested: %v", gaveUp/ms, snap)
	}
}

// A caller that wakes only at Deadline sees the same NACK schedule as one
// ticking every millisecond, and every deadline has work.
func TestDeadlineDrivesTick(t *testing.T) {
	r := NewReceiver(Config{})
	r.OnData(1, 1, 0)
	if _, ok := r.Deadline(0); ok || r.Pending() {
		t.Fatal("a receiver with no gap has a deadline")
	}
	r.OnData(1, 3, 0) // 2 missing
	if !r.Pending() {
		t.Fatal("a gap is not pending")
	}
	var at []int64
	now := int64(0)
	for i := 0; i < 20; i++ {
		d, ok := r.Deadline(now)
		if !ok {
			break
		}
		if d < now {
			t.Fatalf("deadline %dms is before now %dms", d/ms, now/ms)
		}
		now = d
		lost := r.Stats().Lost
		if got := r.Tick(now, nil); len(got) > 0 {
			at = append(at, now)
		} else if r.Stats().Lost == lost {
			if !r.TakeSnapshotRequest() {
				t.Fatalf("deadline %dms had nothing to do", now/ms)
			}
			at = append(at, -now) // the snapshot request, taken at once
		}
	}
	want := []int64{2, 32, 92, 212, 452, 692, 932, 1172, 1412, 1652, -1892}
	for i := range want {
		want[i] *= ms
	}
	// The give-up at 1892 ms sends no NACK; the snapshot request it leaves
	// is due at once (the negative entry).
	if !slices.Equal(at, want) {
		t.Fatalf("work at %v, want %v", at, want)
	}
	if _, ok := r.Deadline(now); ok || r.Pending() {
		t.Fatal("deadline left after the gap was given up and the snapshot taken")
	}
}

func TestHeartbeatFindsTailLossAndGoneSequences(t *testing.T) {
	r := NewReceiver(Config{})
	r.OnData(1, 1, 0)
	r.OnControl(1, 1, 0)
	r.OnHeartbeat(3, 1, 0)
	if st := r.Stats(); st.Missing != 2 || st.CaughtUp() {
		t.Fatalf("tail loss not seen: %+v", st)
	}
	r.OnControl(1, 2, 0)
	r.OnHeartbeat(5, 4, 0) // 2 and 3 can no longer be resent
	st := r.Stats()
	if st.Lost != 2 || st.Contiguous != 3 || st.Missing != 2 {
		t.Fatalf("stats %+v", st)
	}
	if !r.TakeSnapshotRequest() {
		t.Fatal("no snapshot request")
	}
}

func TestFirstContactWithOldSenderSkipsHistory(t *testing.T) {
	r := NewReceiver(Config{Window: 64})
	if v := r.OnData(1, 1000, 0); v != Accept {
		t.Fatal(v)
	}
	if st := r.Stats(); st.Missing != 0 || st.Contiguous != 1000 {
		t.Fatalf("stats %+v", st)
	}
	if v := r.OnData(1, 999, 0); v != TooOld {
		t.Fatalf("history before first contact: %v", v)
	}
}

func TestFirstContactByHeartbeatSkipsHistory(t *testing.T) {
	r := NewReceiver(Config{})
	r.OnControl(3, 100, 0)
	r.OnHeartbeat(50000, 40000, 0)
	if st := r.Stats(); st.Missing != 0 || st.Contiguous != 50000 || !st.CaughtUp() {
		t.Fatalf("stats %+v", st)
	}
	if v := r.OnData(3, 50001, 0); v != Accept {
		t.Fatalf("next data %v", v)
	}
}

func TestControlReplayWindow(t *testing.T) {
	r := NewReceiver(Config{})
	for _, c := range []struct {
		seq  uint64
		want Verdict
	}{{10, Accept}, {10, Duplicate}, {8, Accept}, {8, Duplicate}, {100, Accept}, {37, Accept}, {36, TooOld}, {0, TooOld}} {
		if v := r.OnControl(1, c.seq, 0); v != c.want {
			t.Fatalf("control %d: %v, want %v", c.seq, v, c.want)
		}
	}
}

func TestWindowSlideGivesUp(t *testing.T) {
	r := NewReceiver(Config{Window: 64})
	r.OnData(1, 1, 0)
	if v := r.OnData(1, 200, 0); v != Accept {
		t.Fatalf("far ahead: %v", v)
	}
	st := r.Stats()
	if st.Contiguous != 136 || st.Lost != 135 || st.Missing != 63 {
		t.Fatalf("stats %+v", st)
	}
	if !r.TakeSnapshotRequest() {
		t.Fatal("no snapshot request after sliding")
	}
}

func TestSenderRing(t *testing.T) {
	s := NewSender(Config{RingSize: 4, ResendHoldoff: ms})
	for i := 0; i < 6; i++ {
		seq := s.Next()
		s.Record(seq, []byte{byte(seq)}, 0)
	}
	if s.Highest() != 6 || s.LowestRetained() != 3 {
		t.Fatalf("highest %d lowest %d", s.Highest(), s.LowestRetained())
	}
	out, gone := s.OnNack([]Range{{1, 7}}, 2*ms, nil)
	var got []byte
	for _, b := range out {
		got = append(got, b[0])
	}
	if string(got) != "\x03\x04\x05\x06" || gone != 2 {
		t.Fatalf("resent %v gone %d", got, gone)
	}
	if out, _ := s.OnNack([]Range{{3, 1}}, 2*ms+1, nil); len(out) != 0 {
		t.Fatal("resent within holdoff")
	}
}

// TestLossyChannelDeliversEverything simulates one sender and several
// receivers over a channel that drops data, heartbeats and NACKs at
// random: every packet is eventually accepted exactly once by every
// receiver, none is lost for good while the ring holds it.
func TestLossyChannelDeliversEverything(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		loss := rapid.Float64Range(0, 0.5).Draw(rt, "loss")
		n := rapid.IntRange(1, 500).Draw(rt, "packets")
		peers := rapid.IntRange(1, 4).Draw(rt, "receivers")
		rng := rand.New(rand.NewPCG(rapid.Uint64().Draw(rt, "seed"), 1))
		cfg := Config{MaxNacks: 50}
		s := NewSender(cfg)
		rs := make([]*Receiver, peers)
		acc := make([]map[uint64]int, peers)
		for i := range rs {
			rs[i] = NewReceiver(cfg)
			acc[i] = map[uint64]int{}
			rs[i].OnControl(1, 1, 0) // a first heartbeat: start from 1
			rs[i].OnHeartbeat(0, 1, 0)
		}
		drop := func() bool { return rng.Float64() < loss }
		deliver := func(i int, body []byte, now int64) {
			seq := binary.BigEndian.Uint64(body)
			if rs[i].OnData(1, seq, now) == Accept {
				acc[i][seq]++
			}
		}
		now := int64(0)
		cseq := uint64(1)
		for k := 0; k < n; k++ {
			seq := s.Next()
			body := binary.BigEndian.AppendUint64(nil, seq)
			s.Record(seq, body, now)
			for i := range rs {
				if !drop() {
					deliver(i, body, now)
				}
			}
			now += ms / 10
		}
		for round := 0; round < 2000; round++ {
			now += 10 * ms
			cseq++
			for i := range rs {
				if !drop() && rs[i].OnControl(1, cseq, now) == Accept {
					rs[i].OnHeartbeat(s.Highest(), s.LowestRetained(), now)
				}
				nacks := rs[i].Tick(now, nil)
				if len(nacks) == 0 || drop() {
					continue
				}
				resend, _ := s.OnNack(nacks, now, nil)
				for _, b := range resend {
					for j := range rs { // resends are multicast too
						if !drop() {
							deliver(j, b, now)
						}
					}
				}
			}
			all := true
			for i := range rs {
				if !rs[i].Stats().CaughtUp() || rs[i].Stats().Contiguous != uint64(n) {
					all = false
				}
			}
			if all {
				break
			}
		}
		for i := range rs {
			st := rs[i].Stats()
			if st.Lost != 0 || len(acc[i]) != n {
				rt.Fatalf("receiver %d: accepted %d of %d, stats %+v", i, len(acc[i]), n, st)
			}
			for seq, c := range acc[i] {
				if c != 1 {
					rt.Fatalf("receiver %d accepted %d %d times", i, seq, c)
				}
			}
		}
	})
}

// TestPure: the state machine imports nothing that does I/O or reads a clock.
func TestPure(t *testing.T) {
	p, err := build.ImportDir(".", 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, imp := range p.Imports {
		for _, bad := range []string{"net", "os", "time", "sync", "syscall", "google.golang.org/grpc"} {
			if imp == bad || strings.HasPrefix(imp, bad+"/") {
				t.Errorf("reliable imports %s", imp)
			}
		}
	}
}

// A known sender whose every data packet was lost: the gap beyond its
// ring is given up (and a snapshot requested), not skipped as history.
func TestKnownSenderLossBeyondRing(t *testing.T) {
	r := NewReceiver(Config{})
	r.OnControl(1, 1, 0)
	r.OnHeartbeat(0, 1, 0)
	r.OnControl(1, 2, 0)
	r.OnHeartbeat(45, 42, 0)
	st := r.Stats()
	if st.Lost != 41 || st.Missing != 4 || !r.TakeSnapshotRequest() {
		t.Fatalf("stats %+v", st)
	}
}

// A joining receiver never NACKs a sender's history, however it first
// hears the sender; it takes data only once the sender's heartbeats have
// named its current sequence, asks for a snapshot of the history instead,
// and follows a later incarnation from sequence 1 like any receiver.
func TestJoiningReceiverSkipsHistory(t *testing.T) {
	const settle = 200 * ms
	heartbeats := func(r *Receiver, highest uint64) {
		r.OnControl(3, 1, 0)
		r.OnHeartbeat(highest, 1, 0)
		r.OnControl(3, 2, settle)
		r.OnHeartbeat(highest, 1, settle)
	}
	for _, tc := range []struct {
		name     string
		contact  func(r *Receiver)
		next     uint64 // the sender's next data sequence
		snapshot bool
	}{
		{"heartbeats", func(r *Receiver) { heartbeats(r, 500) }, 501, true},
		{"data, then heartbeats", func(r *Receiver) {
			if v := r.OnData(3, 500, 0); v != Unanchored {
				t.Fatalf("data before any heartbeat: %v, want unanchored", v)
			}
			heartbeats(r, 500)
		}, 501, true},
		{"heartbeats of a sender with nothing sent", func(r *Receiver) { heartbeats(r, 0) }, 1, false},
		{"data after the settle time, no heartbeat since", func(r *Receiver) {
			r.OnControl(3, 1, 0)
			r.OnHeartbeat(500, 1, 0)
			if v := r.OnData(3, 501, settle-1); v != Unanchored {
				t.Fatalf("data while listening: %v, want unanchored", v)
			}
		}, 502, true}, // 501, refused while listening, comes with the snapshot
		{"data refused while listening is not NACKed", func(r *Receiver) {
			r.OnControl(3, 1, 0)
			r.OnHeartbeat(500, 1, 0)
			for seq := uint64(501); seq <= 504; seq++ {
				if v := r.OnData(3, seq, 50*ms); v != Unanchored {
					t.Fatalf("data %d while listening: %v, want unanchored", seq, v)
				}
			}
		}, 505, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := NewJoiningReceiver(Config{})
			tc.contact(r)
			if v := r.OnData(3, tc.next, settle+ms); v != Accept {
				t.Fatalf("next data packet %d: %v", tc.next, v)
			}
			if got := r.Tick(settle+100*ms, nil); len(got) != 0 {
				t.Fatalf("NACKed %v of the history", got)
			}
			if got := r.TakeSnapshotRequest(); got != tc.snapshot {
				t.Fatalf("snapshot requested %v, want %v", got, tc.snapshot)
			}
			if st := r.Stats(); !st.CaughtUp() || st.Lost != 0 {
				t.Fatalf("stats %+v", st)
			}
			// The sender restarts: its new history is all new, and is NACKed.
			r.OnData(4, 3, settle+200*ms)
			if got := r.Tick(settle+300*ms, nil); !slices.Equal(got, []Range{{1, 2}}) {
				t.Fatalf("after a restart NACKed %v, want 1-2", got)
			}
		})
	}
	// The same first contact by an ordinary receiver NACKs the young
	// sender's history: what the joining receiver is for.
	r := NewReceiver(Config{})
	r.OnData(3, 500, 0)
	if got := r.Tick(100*ms, nil); !slices.Equal(got, []Range{{1, 499}}) {
		t.Fatalf("ordinary receiver NACKed %v, want 1-499", got)
	}
}

// An attacker replays a sender's old heartbeat and data (genuine, of its
// current run) to a receiver that is starting: none of it is taken as the
// sender's current sequence. The receiver anchors on the highest sequence
// the heartbeats heard while it listened announced, refuses the replayed
// data, and NACKs none of the sender's history.
func TestJoiningReceiverIgnoresReplays(t *testing.T) {
	r := NewJoiningReceiver(Config{})
	if v := r.OnData(3, 101, 0); v != Unanchored {
		t.Fatalf("replayed data first: %v, want unanchored", v)
	}
	r.OnControl(3, 5, ms) // a replayed heartbeat comes first
	r.OnHeartbeat(100, 1, ms)
	if v := r.OnData(3, 101, 2*ms); v != Unanchored {
		t.Fatalf("replayed data after a replayed heartbeat: %v, want unanchored", v)
	}
	for i, at := range []int64{100 * ms, 200 * ms} { // the sender's own
		r.OnControl(3, uint64(40+i), at)
		r.OnHeartbeat(5000, 1, at)
	}
	r.OnControl(3, 6, 210*ms) // another replay, after anchoring
	r.OnHeartbeat(100, 1, 210*ms)
	if v := r.OnData(3, 101, 220*ms); v != TooOld {
		t.Fatalf("replayed data after anchoring: %v, want too_old", v)
	}
	if v := r.OnData(3, 5001, 220*ms); v != Accept {
		t.Fatalf("the sender's next data: %v", v)
	}
	if got := r.Tick(1000*ms, nil); len(got) != 0 {
		t.Fatalf("NACKed %v", got)
	}
	if !r.TakeSnapshotRequest() {
		t.Fatal("no snapshot requested for the history")
	}
}
