package filter

import (
	"slices"
	"testing"

	"pgregory.net/rapid"
)

func TestBucketSetModel(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		total := 1 << rapid.IntRange(4, 16).Draw(t, "log2")
		s, err := NewBucketSet(total)
		if err != nil {
			t.Fatal(err)
		}
		model := map[uint32]bool{}
		for _, op := range rapid.SliceOf(rapid.Uint32Range(0, uint32(total)+5)).Draw(t, "ops") {
			if op%3 == 0 {
				s.Remove(op)
				delete(model, op)
				continue
			}
			err := s.Add(op)
			if (err == nil) != (int(op) < total) {
				t.Fatalf("Add(%d) over %d: %v", op, total, err)
			}
			if err == nil {
				model[op] = true
			}
		}
		var want []uint32
		for b := range model {
			want = append(want, b)
		}
		slices.Sort(want)
		if got := s.Buckets(); !slices.Equal(got, want) {
			t.Fatalf("Buckets() = %v, want %v", got, want)
		}
		if s.Len() != len(want) {
			t.Fatalf("Len() = %d, want %d", s.Len(), len(want))
		}
		for b := uint32(0); b < uint32(total)+3; b++ {
			if s.Contains(b) != model[b] {
				t.Fatalf("Contains(%d) = %v", b, s.Contains(b))
			}
		}
	})
}

// diffBuckets must turn from into to when its add/del are applied, touching
// nothing else.
func TestDiffBucketsProperty(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		total := 1 << rapid.IntRange(4, 12).Draw(t, "log2")
		gen := rapid.SliceOf(rapid.Uint32Range(0, uint32(total)-1))
		from, _ := NewBucketSet(total, gen.Draw(t, "from")...)
		to, _ := NewBucketSet(total, gen.Draw(t, "to")...)
		add, del := diffBuckets(from, to)
		got := copyBuckets(from)
		for _, b := range del {
			if !got.Contains(b) || to.Contains(b) {
				t.Fatalf("deletes %d: in from %v, in to %v", b, from.Contains(b), to.Contains(b))
			}
			got.Remove(b)
		}
		for _, b := range add {
			if got.Contains(b) || !to.Contains(b) {
				t.Fatalf("adds %d: already held %v, in to %v", b, got.Contains(b), to.Contains(b))
			}
			_ = got.Add(b)
		}
		if !got.Equal(to) {
			t.Fatalf("from + diff = %v, want %v", got.Buckets(), to.Buckets())
		}
		if a, d := diffBuckets(to, to); len(a)+len(d) != 0 {
			t.Fatalf("diff of a set with itself: +%v -%v", a, d)
		}
	})
}
