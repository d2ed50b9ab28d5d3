package partition

import (
	"encoding/binary"
	"fmt"
	"slices"
	"testing"

	"github.com/saru-lb/saru/filter/bucket"
)

// modN assigns buckets as CLUSTERIP and the common nftables recipe do:
// jhash(bucket) mod W over the active members' weight slots, in id order.
func modN(buckets int, ms []Member) []string {
	var slots []string
	sorted := slices.Clone(ms)
	slices.SortFunc(sorted, func(a, b Member) int { return compareID(a.ID, b.ID) })
	for _, m := range sorted {
		for range m.Weight {
			slots = append(slots, m.ID)
		}
	}
	out := make([]string, buckets)
	var key [4]byte
	for b := range out {
		binary.BigEndian.PutUint32(key[:], uint32(b))
		out[b] = slots[bucket.Jhash(key[:], 0x5eed)%uint32(len(slots))]
	}
	return out
}

func compareID(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func movedOwners(a, b []string) int {
	n := 0
	for i := range a {
		if a[i] != b[i] {
			n++
		}
	}
	return n
}

// BenchmarkMovement reports, over a single leave and a single join for
// N = 2..16 members, weighted and unweighted, the worst ratio of buckets
// moved to the minimum any balanced scheme must move: moved/ideal for
// Assign, modN-moved/ideal for jhash mod N.
func BenchmarkMovement(b *testing.B) {
	const buckets = bucket.Default
	var worst, worstModN float64
	for b.Loop() {
		worst, worstModN = 0, 0
		for _, weighted := range []bool{false, true} {
			for n := 2; n <= 16; n++ {
				ms := make([]Member, n+1)
				for i := range ms {
					w := 1
					if weighted {
						w = 1 + i%4
					}
					ms[i] = Member{ID: fmt.Sprintf("d%02d", i), Weight: w, State: Active}
				}
				base, old := ms[:n], ms // n members; n+1 with the newcomer
				a, err := Assign(mustEmpty(b, buckets), base)
				if err != nil {
					b.Fatal(err)
				}
				// Join: the (n+1)th member arrives.
				joined, err := Assign(a, old)
				if err != nil {
					b.Fatal(err)
				}
				ideal := float64(minMoves(a, old))
				worst = max(worst, float64(Moved(a, joined))/ideal)
				worstModN = max(worstModN, float64(movedOwners(modN(buckets, base), modN(buckets, old)))/ideal)
				// Leave: each member in turn leaves the n+1.
				for l := range old {
					rest := slices.Delete(slices.Clone(old), l, l+1)
					left, err := Assign(joined, rest)
					if err != nil {
						b.Fatal(err)
					}
					ideal := float64(minMoves(joined, rest))
					worst = max(worst, float64(Moved(joined, left))/ideal)
					worstModN = max(worstModN, float64(movedOwners(modN(buckets, old), modN(buckets, rest)))/ideal)
				}
			}
		}
	}
	b.ReportMetric(worst, "moved/ideal")
	b.ReportMetric(worstModN, "modN-moved/ideal")
}

// BenchmarkAssign times one Assign for 65536 buckets and 16 members, after a
// member leaves (the failover path).
func BenchmarkAssign(b *testing.B) {
	ms := make([]Member, 16)
	for i := range ms {
		ms[i] = Member{ID: fmt.Sprintf("director-%02d", i), Weight: 1 + i%3, State: Active}
	}
	a, err := Assign(mustEmpty(b, bucket.Max), ms)
	if err != nil {
		b.Fatal(err)
	}
	rest := ms[1:]
	for b.Loop() {
		if _, err := Assign(a, rest); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(b.Elapsed().Seconds()*1000/float64(b.N), "ms/assign")
}
