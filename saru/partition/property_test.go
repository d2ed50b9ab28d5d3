package partition

import (
	"fmt"
	"slices"
	"testing"

	"pgregory.net/rapid"
)

// minMoves is the naive lower bound on the buckets any balanced assignment
// must move from prev: every bucket whose owner is no longer active, plus
// the surplus of every member over its share, where each member's share may
// be its floor or ceil and the ceil slots are spent where they save most.
func minMoves(prev Assignment, ms []Member) int {
	buckets := len(prev.Owners)
	weight := map[string]int{}
	total := 0
	for _, m := range ms {
		if m.State == Active {
			weight[m.ID] = m.Weight
			total += m.Weight
		}
	}
	cur := map[string]int{}
	if total == 0 {
		owned := 0
		for _, o := range prev.Owners {
			if o != "" {
				owned++
			}
		}
		return owned // all must become unowned
	}
	orphans := 0
	for _, o := range prev.Owners {
		if _, ok := weight[o]; ok {
			cur[o]++
		} else if o != "" {
			orphans++
		} else {
			orphans++ // unowned buckets must be given out too
		}
	}
	surplus, slots, savers := 0, buckets, 0
	for id, w := range weight {
		floor := buckets * w / total
		slots -= floor
		if cur[id] > floor {
			surplus += cur[id] - floor
			if buckets*w%total != 0 {
				savers++
			}
		}
	}
	return orphans + surplus - min(slots, savers)
}

type cluster struct {
	buckets int
	members []Member
	next    int
}

func genCluster(t *rapid.T) *cluster {
	c := &cluster{buckets: 1 << rapid.IntRange(4, 12).Draw(t, "log2buckets")}
	n := rapid.IntRange(1, 12).Draw(t, "members")
	for range n {
		c.add(t)
	}
	return c
}

func (c *cluster) add(t *rapid.T) Member {
	m := Member{ID: fmt.Sprintf("d%02d", c.next), Weight: rapid.IntRange(1, 4).Draw(t, "weight"), State: Active}
	c.next++
	c.members = append(c.members, m)
	return m
}

// checkInvariants asserts what every assignment must satisfy.
func checkInvariants(t *rapid.T, a Assignment, ms []Member) {
	if err := a.Validate(); err != nil {
		t.Fatal(err)
	}
	total, active := 0, 0
	for _, m := range ms {
		if m.State == Active {
			total += m.Weight
			active++
		}
	}
	counts := a.Counts()
	for _, m := range ms {
		n := counts[m.ID]
		if m.State != Active {
			if n != 0 {
				t.Fatalf("%s is %s but owns %d buckets", m.ID, m.State, n)
			}
			continue
		}
		// |n - B*w/W| < 1, in integers.
		if d := n*total - a.Buckets()*m.Weight; d <= -total || d >= total {
			t.Fatalf("%s (weight %d of %d) owns %d of %d buckets: not within one of its share", m.ID, m.Weight, total, n, a.Buckets())
		}
	}
	for b, o := range a.Owners {
		if active > 0 && o == "" {
			t.Fatalf("bucket %d has no owner with %d active members", b, active)
		}
		if s := a.Standbys[b]; (active > 1) != (s != "") {
			t.Fatalf("bucket %d standby %q with %d active members", b, s, active)
		}
	}
}

func TestPropertyInvariantsAndMinimalMovement(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		c := genCluster(t)
		a, err := Empty(c.buckets)
		if err != nil {
			t.Fatal(err)
		}
		a, err = Assign(a, c.members)
		if err != nil {
			t.Fatal(err)
		}
		checkInvariants(t, a, c.members)
		steps := rapid.IntRange(1, 12).Draw(t, "steps")
		for range steps {
			prev := a
			before := slices.Clone(c.members)
			op := rapid.SampledFrom([]string{"join", "leave", "drain", "undrain", "reweight"}).Draw(t, "op")
			i := rapid.IntRange(0, len(c.members)-1).Draw(t, "who")
			switch op {
			case "join":
				c.add(t)
			case "leave":
				if len(c.members) > 1 {
					c.members = slices.Delete(c.members, i, i+1)
				}
			case "drain":
				c.members[i].State = Draining
			case "undrain":
				c.members[i].State = Active
			case "reweight":
				c.members[i].Weight = rapid.IntRange(1, 4).Draw(t, "newweight")
			}
			a, err = Assign(prev, c.members)
			if err != nil {
				t.Fatal(err)
			}
			checkInvariants(t, a, c.members)
			if a.Epoch != prev.Epoch+1 {
				t.Fatalf("epoch %d after %d", a.Epoch, prev.Epoch)
			}
			if got, want := Moved(prev, a), minMoves(prev, c.members); got != want {
				t.Fatalf("%s %v -> %v: moved %d buckets, minimum is %d", op, before, c.members, got, want)
			}
			// Determinism: member order does not matter.
			shuffled := rapid.Permutation(c.members).Draw(t, "shuffled")
			again, err := Assign(prev, shuffled)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(a.Owners, again.Owners) || !slices.Equal(a.Standbys, again.Standbys) {
				t.Fatal("same members in another order gave another assignment")
			}
		}
	})
}

// A member leaving or draining moves only its own buckets; each goes to its
// standby unless the standby is already at its share. (With few buckets and
// many weighted members, keeping every member within one bucket of its share
// can force a surplus bucket to move too; then the minimum is checked.)
func TestPropertyLeaveMovesOnlyLeaversBuckets(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		c := genCluster(t)
		if len(c.members) < 2 {
			c.add(t)
		}
		a := mustAssign(t, mustEmpty(t, c.buckets), c.members)
		i := rapid.IntRange(0, len(c.members)-1).Draw(t, "leaver")
		leaver := c.members[i].ID
		ms := slices.Clone(c.members)
		if rapid.Bool().Draw(t, "drain") {
			ms[i].State = Draining
		} else {
			ms = slices.Delete(ms, i, i+1)
		}
		b := mustAssign(t, a, ms)
		checkInvariants(t, b, ms)
		if got, want := Moved(a, b), minMoves(a, ms); got != want {
			t.Fatalf("moved %d, minimum %d", got, want)
		}
		if minMoves(a, ms) != len(a.Owned(leaver)) {
			return // balance forces more than the leaver's buckets to move
		}
		gained := map[string]int{}
		for k := range a.Owners {
			if a.Owners[k] != b.Owners[k] {
				if a.Owners[k] != leaver {
					t.Fatalf("bucket %d moved %s -> %s though only %s left", k, a.Owners[k], b.Owners[k], leaver)
				}
				gained[b.Owners[k]]++
			}
		}
		ca, cb := a.Counts(), b.Counts()
		for k := range a.Owners {
			if a.Owners[k] != leaver || b.Owners[k] == a.Standbys[k] {
				continue
			}
			s := a.Standbys[k]
			// Not to its standby: only because the standby is full.
			if cb[s] != ca[s]+gained[s] || gained[s] < 0 {
				t.Fatalf("bucket %d went to %s, not its standby %s", k, b.Owners[k], s)
			}
			if full := cb[s]; full < ca[s] {
				t.Fatalf("standby %s shrank", s)
			}
		}
		// The standby fast path agrees with the leader except for rounding.
		fast := Failover(a, leaver)
		differ := 0
		for k := range fast {
			if fast[k] != b.Owners[k] {
				differ++
			}
		}
		if differ > len(ms) {
			t.Fatalf("fast path and leader disagree on %d buckets with %d members", differ, len(ms))
		}
	})
}

// A member joining (or returning from drain) takes buckets only from the
// members already there, and nothing moves between those (where balance
// allows: see above).
func TestPropertyJoinTakesOnlyItsShare(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		c := genCluster(t)
		a := mustAssign(t, mustEmpty(t, c.buckets), c.members)
		j := c.add(t)
		b := mustAssign(t, a, c.members)
		checkInvariants(t, b, c.members)
		if got, want := Moved(a, b), minMoves(a, c.members); got != want {
			t.Fatalf("join moved %d, minimum %d", got, want)
		}
		if want := len(b.Owned(j.ID)); Moved(a, b) != want {
			return // balance forces a shuffle among the others too
		}
		for k := range a.Owners {
			if a.Owners[k] != b.Owners[k] && b.Owners[k] != j.ID {
				t.Fatalf("bucket %d moved %s -> %s; only the newcomer %s should gain", k, a.Owners[k], b.Owners[k], j.ID)
			}
		}
	})
}
