package partition

import (
	"fmt"
	"slices"
	"strings"
	"testing"
)

func members(ids ...string) []Member {
	out := make([]Member, len(ids))
	for i, id := range ids {
		out[i] = Member{ID: id, Weight: 1, State: Active}
	}
	return out
}

// fataler is what both *testing.T and *rapid.T offer.
type fataler interface {
	Helper()
	Fatalf(format string, args ...any)
	Fatal(args ...any)
}

func mustAssign(t fataler, prev Assignment, ms []Member) Assignment {
	t.Helper()
	a, err := Assign(prev, ms)
	if err != nil {
		t.Fatalf("Assign: %v", err)
	}
	if err := a.Validate(); err != nil {
		t.Fatalf("Assign returned an invalid assignment: %v", err)
	}
	return a
}

func mustEmpty(t fataler, n int) Assignment {
	t.Helper()
	a, err := Empty(n)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func TestAssignFirst(t *testing.T) {
	a := mustAssign(t, mustEmpty(t, 16), members("dir3", "dir1", "dir2"))
	if a.Epoch != 1 {
		t.Errorf("epoch = %d, want 1", a.Epoch)
	}
	got := a.Counts()
	for id, n := range got {
		if n != 5 && n != 6 {
			t.Errorf("%s owns %d buckets, want 5 or 6 of 16", id, n)
		}
	}
	if len(got) != 3 {
		t.Errorf("owners %v, want three", got)
	}
	if ids := []string{a.Members[0].ID, a.Members[1].ID, a.Members[2].ID}; !slices.IsSorted(ids) {
		t.Errorf("members not sorted by id: %v", ids)
	}
}

func TestAssignWeighted(t *testing.T) {
	ms := []Member{{"a", 1, Active}, {"b", 3, Active}}
	a := mustAssign(t, mustEmpty(t, 4096), ms)
	if c := a.Counts(); c["a"] != 1024 || c["b"] != 3072 {
		t.Errorf("counts = %v, want a:1024 b:3072", c)
	}
}

func TestAssignNoActive(t *testing.T) {
	ms := []Member{{"a", 1, Joining}, {"b", 1, Draining}}
	a := mustAssign(t, mustEmpty(t, 16), ms)
	for b, o := range a.Owners {
		if o != "" {
			t.Fatalf("bucket %d owned by %q with no active member", b, o)
		}
	}
}

func TestAssignSingleMemberHasNoStandby(t *testing.T) {
	a := mustAssign(t, mustEmpty(t, 32), members("solo"))
	for b := range a.Owners {
		if a.Owners[b] != "solo" || a.Standbys[b] != "" {
			t.Fatalf("bucket %d: owner %q standby %q", b, a.Owners[b], a.Standbys[b])
		}
	}
}

func TestDrainMovesOnlyDrainedBucketsToStandbys(t *testing.T) {
	a := mustAssign(t, mustEmpty(t, 4096), members("d1", "d2", "d3", "d4"))
	ms := members("d1", "d2", "d3", "d4")
	ms[1].State = Draining
	b := mustAssign(t, a, ms)
	if n := len(b.Owned("d2")); n != 0 {
		t.Fatalf("drained member still owns %d buckets", n)
	}
	toStandby := 0
	for i := range a.Owners {
		if a.Owners[i] != "d2" {
			if a.Owners[i] != b.Owners[i] {
				t.Fatalf("bucket %d moved from %s to %s, though %s stays", i, a.Owners[i], b.Owners[i], a.Owners[i])
			}
			continue
		}
		if b.Owners[i] == a.Standbys[i] {
			toStandby++
		}
	}
	if toStandby != 1024 {
		t.Errorf("%d of 1024 drained buckets went to their standby, want all", toStandby)
	}
	// Undrain: d2 gets its share back, taken from the others only.
	ms[1].State = Active
	c := mustAssign(t, b, ms)
	if n := len(c.Owned("d2")); n != 1024 {
		t.Errorf("undrained member owns %d, want 1024", n)
	}
	for i := range b.Owners {
		if b.Owners[i] != c.Owners[i] && c.Owners[i] != "d2" {
			t.Fatalf("bucket %d moved %s -> %s on undrain", i, b.Owners[i], c.Owners[i])
		}
	}
}

func TestFailoverMatchesLeader(t *testing.T) {
	a := mustAssign(t, mustEmpty(t, 4096), members("d1", "d2", "d3", "d4", "d5"))
	fast := Failover(a, "d3")
	b := mustAssign(t, a, members("d1", "d2", "d4", "d5"))
	differ := 0
	for i := range fast {
		if fast[i] == "" || fast[i] == "d3" {
			t.Fatalf("bucket %d owner %q after failover", i, fast[i])
		}
		if fast[i] != b.Owners[i] {
			differ++
		}
	}
	// Only rounding may differ between the fast path and the leader.
	if differ > len(b.Members) {
		t.Errorf("fast path and leader disagree on %d buckets", differ)
	}
	both := Failover(a, "d1", "d2", "d3", "d4", "d5")
	for i, o := range both {
		if o != "" {
			t.Fatalf("bucket %d owned by %q with everyone dead", i, o)
		}
	}
}

func TestRangesRoundTrip(t *testing.T) {
	a := mustAssign(t, mustEmpty(t, 256), []Member{{"x", 2, Active}, {"y", 1, Active}, {"z", 1, Joining}})
	a = mustAssign(t, a, []Member{{"x", 2, Active}, {"y", 1, Active}, {"z", 1, Active}})
	rs := a.Ranges()
	if rs[0].First != 0 || rs[len(rs)-1].Last != 255 {
		t.Fatalf("ranges %v do not cover 0-255", rs)
	}
	b, err := FromRanges(a.Epoch, 256, a.Members, rs)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(a.Owners, b.Owners) || !slices.Equal(a.Standbys, b.Standbys) {
		t.Fatal("FromRanges(Ranges()) differs from the original")
	}
}

func TestBadInput(t *testing.T) {
	good := mustAssign(t, mustEmpty(t, 64), members("a", "b"))
	for _, tc := range []struct {
		name    string
		run     func() error
		mention string
	}{
		{"zero buckets", func() error { _, err := Empty(0); return err }, "bucket count 0"},
		{"not a power of two", func() error { _, err := Empty(3000); return err }, "bucket count 3000"},
		{"too few", func() error { _, err := Empty(8); return err }, "bucket count 8"},
		{"too many", func() error { _, err := Empty(131072); return err }, "bucket count 131072"},
		{"prev without buckets", func() error { _, err := Assign(Assignment{Epoch: 4}, members("a")); return err }, "bucket count 0"},
		{"last epoch", func() error {
			last := good
			last.Epoch = MaxEpoch
			_, err := Assign(last, members("a"))
			return err
		}, "no epoch follows the last one"},
		{"wrapping epoch", func() error {
			last := good
			last.Epoch = 1<<64 - 1
			_, err := Assign(last, members("a"))
			return err
		}, "no epoch follows the last one"},
		{"duplicate id", func() error { _, err := Assign(good, members("a", "b", "a")); return err }, `member "a": duplicate id`},
		{"empty id", func() error { _, err := Assign(good, members("a", "")); return err }, "empty id"},
		{"zero weight", func() error {
			_, err := Assign(good, []Member{{"a", 0, Active}})
			return err
		}, `member "a": weight 0`},
		{"negative weight", func() error {
			_, err := Assign(good, []Member{{"a", 1, Active}, {"b", -2, Active}})
			return err
		}, `member "b": weight -2`},
		{"unknown state", func() error {
			_, err := Assign(good, []Member{{"a", 1, 9}})
			return err
		}, `member "a": unknown state 9`},
		{"short standbys", func() error {
			bad := good
			bad.Standbys = bad.Standbys[:3]
			_, err := Assign(bad, members("a"))
			return err
		}, "3 standbys for 64 buckets"},
		{"ranges with a gap", func() error {
			_, err := FromRanges(1, 64, good.Members, []Range{{0, 9, "a", "b"}, {11, 63, "b", "a"}})
			return err
		}, "expected one starting at 10"},
		{"ranges short", func() error {
			_, err := FromRanges(1, 64, good.Members, []Range{{0, 9, "a", "b"}})
			return err
		}, "cover buckets 0-9 of 0-63"},
		{"ranges with a stranger", func() error {
			_, err := FromRanges(1, 64, good.Members, []Range{{0, 63, "mallory", "a"}})
			return err
		}, `owner "mallory" is not an active member`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.run()
			if err == nil {
				t.Fatal("no error")
			}
			if !strings.Contains(err.Error(), tc.mention) {
				t.Errorf("error %q does not mention %q", err, tc.mention)
			}
		})
	}
}

func TestAssignDoesNotModifyInputs(t *testing.T) {
	prev := mustAssign(t, mustEmpty(t, 64), members("a", "b", "c"))
	owners := slices.Clone(prev.Owners)
	ms := members("c", "a")
	if _, err := Assign(prev, ms); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(owners, prev.Owners) {
		t.Error("Assign modified the previous assignment")
	}
	if ms[0].ID != "c" {
		t.Error("Assign reordered the caller's members")
	}
}

func ExampleAssign() {
	a, _ := Empty(16)
	a, _ = Assign(a, []Member{{ID: "dir1", Weight: 1, State: Active}, {ID: "dir2", Weight: 1, State: Active}})
	b, _ := Assign(a, []Member{
		{ID: "dir1", Weight: 1, State: Active},
		{ID: "dir2", Weight: 1, State: Active},
		{ID: "dir3", Weight: 2, State: Active},
	})
	fmt.Println("epoch", b.Epoch, "moved", Moved(a, b), "dir3 owns", len(b.Owned("dir3")))
	// Output: epoch 2 moved 8 dir3 owns 8
}
