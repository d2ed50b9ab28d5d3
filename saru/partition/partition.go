package partition

import (
	"cmp"
	"errors"
	"fmt"
	"slices"

	"github.com/saru-lb/saru/filter/bucket"
)

// State is a member's place in the bucket lifecycle. Only Active members own
// buckets.
type State uint8

// Member states.
const (
	// Active members own their weight-proportional share of the buckets.
	Active State = iota + 1
	// Joining members are alive but own nothing yet (waiting for their
	// join delay or their sync snapshot).
	Joining
	// Draining members give all their buckets away.
	Draining
)

// String returns the state's name as operators see it.
func (s State) String() string {
	switch s {
	case Active:
		return "active"
	case Joining:
		return "joining"
	case Draining:
		return "draining"
	}
	return fmt.Sprintf("state(%d)", uint8(s))
}

// Member is a live director as the engine sees it.
type Member struct {
	// ID is unique in the cluster.
	ID string
	// Weight is the director's capacity, at least 1. Buckets are shared in
	// proportion to weight.
	Weight int
	// State decides whether the member owns buckets.
	State State
}

// MaxEpoch is the last epoch: Assign refuses to go past it, so epochs never
// wrap. An epoch counts membership changes, so no cluster comes near it;
// below 2^53 epochs stay exact where they become floats (a Prometheus
// gauge, a JSON reader).
const MaxEpoch = 1<<53 - 1

// Assignment maps every bucket to an owner and a standby.
type Assignment struct {
	// Epoch increases by one with every assignment Assign computes, up to
	// MaxEpoch.
	Epoch uint64
	// Members are the members the assignment was computed for, sorted by ID.
	Members []Member
	// Owners[b] is the ID of bucket b's owner, "" when no member is active.
	Owners []string
	// Standbys[b] is the ID of the member that takes bucket b over if its
	// owner dies; "" when there is no other active member.
	Standbys []string
}

// Range is a run of consecutive buckets with the same owner and standby.
type Range struct {
	First, Last    uint32
	Owner, Standby string
}

// Empty returns the assignment before the first one: epoch 0, every bucket
// unowned.
func Empty(buckets int) (Assignment, error) {
	if err := bucket.CheckCount(buckets); err != nil {
		return Assignment{}, err
	}
	return Assignment{Owners: make([]string, buckets), Standbys: make([]string, buckets)}, nil
}

// Buckets returns the assignment's bucket count.
func (a Assignment) Buckets() int { return len(a.Owners) }

// Owned returns the buckets owned by id, in ascending order.
func (a Assignment) Owned(id string) []uint32 {
	var out []uint32
	for b, o := range a.Owners {
		if o == id {
			out = append(out, uint32(b))
		}
	}
	return out
}

// Counts returns how many buckets each owner has.
func (a Assignment) Counts() map[string]int {
	out := make(map[string]int)
	for _, o := range a.Owners {
		if o != "" {
			out[o]++
		}
	}
	return out
}

// Ranges returns the assignment as runs of consecutive buckets with the same
// owner and standby, covering every bucket in order.
func (a Assignment) Ranges() []Range {
	var out []Range
	for b := range a.Owners {
		o, s := a.Owners[b], a.Standbys[b]
		if n := len(out); n > 0 && out[n-1].Owner == o && out[n-1].Standby == s {
			out[n-1].Last = uint32(b)
			continue
		}
		out = append(out, Range{First: uint32(b), Last: uint32(b), Owner: o, Standby: s})
	}
	return out
}

// FromRanges rebuilds an assignment from its ranges (as received over the
// wire), checking that they cover every bucket exactly once, in order.
func FromRanges(epoch uint64, buckets int, members []Member, ranges []Range) (Assignment, error) {
	a, err := Empty(buckets)
	if err != nil {
		return Assignment{}, err
	}
	a.Epoch = epoch
	a.Members = slices.Clone(members)
	next := uint32(0)
	for i, r := range ranges {
		if r.First != next || r.Last < r.First || int(r.Last) >= buckets {
			return Assignment{}, fmt.Errorf("range %d (%d-%d): ranges must cover buckets 0-%d in order, expected one starting at %d", i, r.First, r.Last, buckets-1, next)
		}
		for b := r.First; b <= r.Last; b++ {
			a.Owners[b], a.Standbys[b] = r.Owner, r.Standby
		}
		next = r.Last + 1
	}
	if int(next) != buckets {
		return Assignment{}, fmt.Errorf("ranges cover buckets 0-%d of 0-%d", int(next)-1, buckets-1)
	}
	return a, a.Validate()
}

// Validate checks the assignment's internal consistency: a valid bucket
// count, owners and standbys that are active members, and a standby that
// differs from its owner.
func (a Assignment) Validate() error {
	if err := bucket.CheckCount(len(a.Owners)); err != nil {
		return fmt.Errorf("assignment epoch %d: %w", a.Epoch, err)
	}
	if len(a.Standbys) != len(a.Owners) {
		return fmt.Errorf("assignment epoch %d: %d standbys for %d buckets", a.Epoch, len(a.Standbys), len(a.Owners))
	}
	active := make(map[string]bool, len(a.Members))
	for _, m := range a.Members {
		active[m.ID] = m.State == Active
	}
	for b, o := range a.Owners {
		s := a.Standbys[b]
		switch {
		case o == "" && s != "":
			return fmt.Errorf("assignment epoch %d: bucket %d has standby %q but no owner", a.Epoch, b, s)
		case o != "" && !active[o]:
			return fmt.Errorf("assignment epoch %d: bucket %d owner %q is not an active member", a.Epoch, b, o)
		case s != "" && !active[s]:
			return fmt.Errorf("assignment epoch %d: bucket %d standby %q is not an active member", a.Epoch, b, s)
		case s != "" && s == o:
			return fmt.Errorf("assignment epoch %d: bucket %d has %q as both owner and standby", a.Epoch, b, o)
		}
	}
	return nil
}

// Failover returns the owners that result when the given members die before
// the leader reassigns: each of their buckets goes to its standby, if the
// standby is not dead too. The epoch is unchanged: this is the fast path a
// survivor may take on its own; the leader's next Assign confirms it.
func Failover(a Assignment, dead ...string) []string {
	owners := slices.Clone(a.Owners)
	for b, o := range owners {
		if slices.Contains(dead, o) {
			if s := a.Standbys[b]; s != "" && !slices.Contains(dead, s) {
				owners[b] = s
			} else {
				owners[b] = ""
			}
		}
	}
	return owners
}

// Moved counts the buckets whose owner differs between a and b.
func Moved(a, b Assignment) int {
	n := 0
	for i := range min(len(a.Owners), len(b.Owners)) {
		if a.Owners[i] != b.Owners[i] {
			n++
		}
	}
	return n
}

// checkMembers validates members and returns a copy sorted by ID.
func checkMembers(members []Member) ([]Member, error) {
	ms := slices.Clone(members)
	slices.SortFunc(ms, func(a, b Member) int { return cmp.Compare(a.ID, b.ID) })
	var errs []error
	for i, m := range ms {
		if m.ID == "" {
			errs = append(errs, errors.New("member with empty id"))
		}
		if i > 0 && ms[i-1].ID == m.ID && m.ID != "" {
			errs = append(errs, fmt.Errorf("member %q: duplicate id", m.ID))
		}
		if m.Weight < 1 {
			errs = append(errs, fmt.Errorf("member %q: weight %d: must be at least 1", m.ID, m.Weight))
		}
		if m.State < Active || m.State > Draining {
			errs = append(errs, fmt.Errorf("member %q: unknown state %d", m.ID, m.State))
		}
	}
	return ms, errors.Join(errs...)
}

// Assign computes the assignment that follows prev for the given members.
// The bucket count is prev's; start from Empty. Members that are not in
// the list are gone: their buckets move. It fails once prev's epoch is
// MaxEpoch.
func Assign(prev Assignment, members []Member) (Assignment, error) {
	if prev.Epoch >= MaxEpoch {
		return Assignment{}, fmt.Errorf("previous assignment (epoch %d): no epoch follows the last one, %d", prev.Epoch, uint64(MaxEpoch))
	}
	buckets := len(prev.Owners)
	if err := bucket.CheckCount(buckets); err != nil {
		return Assignment{}, fmt.Errorf("previous assignment (epoch %d): %w", prev.Epoch, err)
	}
	if len(prev.Standbys) != buckets {
		return Assignment{}, fmt.Errorf("previous assignment (epoch %d): %d standbys for %d buckets", prev.Epoch, len(prev.Standbys), buckets)
	}
	ms, err := checkMembers(members)
	if err != nil {
		return Assignment{}, fmt.Errorf("assign epoch %d: %w", prev.Epoch+1, err)
	}
	next := Assignment{
		Epoch:    prev.Epoch + 1,
		Members:  ms,
		Owners:   make([]string, buckets),
		Standbys: make([]string, buckets),
	}
	var act []Member
	for _, m := range ms {
		if m.State == Active {
			act = append(act, m)
		}
	}
	if len(act) == 0 {
		return next, nil
	}
	index := make(map[string]int, len(act))
	for i, m := range act {
		index[m.ID] = i
	}
	// Owners come in long runs: remember the last answer.
	lastID, lastIdx := "", -1
	lookup := func(id string) int {
		if id == lastID {
			return lastIdx
		}
		lastID, lastIdx = id, -1
		if i, ok := index[id]; ok {
			lastIdx = i
		}
		return lastIdx
	}

	owner := make([]int32, buckets)
	cur := make([]int, len(act))
	for b, id := range prev.Owners {
		i := lookup(id)
		owner[b] = int32(i)
		if i >= 0 {
			cur[i]++
		}
	}
	target := targets(buckets, act, cur)

	// Keep each member's buckets up to its target; the rest are free.
	kept := make([]int, len(act))
	var free []int
	for b, i := range owner {
		if i >= 0 && kept[i] < target[i] {
			kept[i]++
			continue
		}
		owner[b] = -1
		free = append(free, b)
	}
	deficit := make([]int, len(act))
	for i := range act {
		deficit[i] = target[i] - kept[i]
	}
	// A free bucket goes to its standby where the standby is short.
	rest := free[:0]
	for _, b := range free {
		if s := lookup(prev.Standbys[b]); s >= 0 && deficit[s] > 0 {
			owner[b] = int32(s)
			deficit[s]--
			continue
		}
		rest = append(rest, b)
	}
	// The remainder fills the shortfalls in member order.
	k := 0
	for i := range act {
		for ; deficit[i] > 0; deficit[i]-- {
			owner[rest[k]] = int32(i)
			k++
		}
	}

	standby := standbys(act, owner, prev.Standbys, lookup)
	for b := range owner {
		next.Owners[b] = act[owner[b]].ID
		if s := standby[b]; s >= 0 {
			next.Standbys[b] = act[s].ID
		}
	}
	return next, nil
}

// targets returns each active member's bucket count: floor or ceil of its
// weight-proportional share, summing to buckets. The ceil slots go first to
// members that hold more than their floor (each such slot saves a move),
// then to the members furthest below their floor, so that a newcomer rather
// than an existing member absorbs rounding and nothing shuffles between
// existing members.
func targets(buckets int, act []Member, cur []int) []int {
	var total uint64
	for _, m := range act {
		total += uint64(m.Weight)
	}
	target := make([]int, len(act))
	type slot struct{ i, surplus int }
	var cands []slot
	left := buckets
	for i, m := range act {
		share := uint64(buckets) * uint64(m.Weight)
		target[i] = int(share / total)
		left -= target[i]
		if share%total != 0 {
			cands = append(cands, slot{i, cur[i] - target[i]})
		}
	}
	slices.SortStableFunc(cands, func(a, b slot) int {
		ap, bp := a.surplus > 0, b.surplus > 0
		switch {
		case ap && !bp:
			return -1
		case !ap && bp:
			return 1
		case ap && bp:
			return 0
		}
		return cmp.Compare(a.surplus, b.surplus)
	})
	for _, c := range cands[:left] {
		target[c.i]++
	}
	return target
}

// standbys picks each bucket's standby: a different active member, with each
// owner's buckets spread over the others in proportion to their weight (so
// a failed owner's load spreads as the next assignment would spread it).
// A bucket keeps its previous standby where that fits.
func standbys(act []Member, owner []int32, prev []string, lookup func(string) int) []int32 {
	n := len(act)
	out := make([]int32, len(owner))
	if n == 1 {
		for b := range out {
			out[b] = -1
		}
		return out
	}
	count := make([]int, n)
	for _, o := range owner {
		count[o]++
	}
	var total uint64
	for _, m := range act {
		total += uint64(m.Weight)
	}
	// quota[x*n+i]: how many of x's buckets have i as standby.
	quota := make([]int, n*n)
	type slot struct {
		i   int
		rem uint64
	}
	cands := make([]slot, 0, n)
	for x := range act {
		others := total - uint64(act[x].Weight)
		left := count[x]
		cands = cands[:0]
		for i, m := range act {
			if i == x {
				continue
			}
			share := uint64(count[x]) * uint64(m.Weight)
			quota[x*n+i] = int(share / others)
			left -= quota[x*n+i]
			cands = append(cands, slot{i, share % others})
		}
		slices.SortStableFunc(cands, func(a, b slot) int { return cmp.Compare(b.rem, a.rem) })
		for _, c := range cands[:left] {
			quota[x*n+c.i]++
		}
	}
	var pending []int
	for b, o := range owner {
		x := int(o)
		if s := lookup(prev[b]); s >= 0 && s != x && quota[x*n+s] > 0 {
			quota[x*n+s]--
			out[b] = int32(s)
			continue
		}
		pending = append(pending, b)
	}
	// Deal the rest round-robin so standbys interleave across the space.
	cursor := make([]int, n)
	for _, b := range pending {
		x := int(owner[b])
		for {
			i := cursor[x]
			cursor[x] = (i + 1) % n
			if i != x && quota[x*n+i] > 0 {
				quota[x*n+i]--
				out[b] = int32(i)
				break
			}
		}
	}
	return out
}
