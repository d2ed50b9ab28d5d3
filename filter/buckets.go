package filter

import (
	"fmt"
	"math/bits"

	"github.com/saru-lb/saru/filter/bucket"
)

// BucketSet is the set of buckets a director owns, out of Total buckets.
// The zero value is unusable; use NewBucketSet.
type BucketSet struct {
	total int
	words []uint64
}

// NewBucketSet returns an empty set over total buckets (0..total-1),
// optionally holding the given buckets.
func NewBucketSet(total int, owned ...uint32) (*BucketSet, error) {
	if total <= 0 || total > bucket.Max {
		return nil, fieldErr("buckets", total, "want 1..%d", bucket.Max)
	}
	s := &BucketSet{total: total, words: make([]uint64, (total+63)/64)}
	for _, b := range owned {
		if err := s.Add(b); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// Add marks bucket b as owned.
func (s *BucketSet) Add(b uint32) error {
	if int64(b) >= int64(s.total) {
		return fieldErr("bucket", b, "out of range 0..%d", s.total-1)
	}
	s.words[b/64] |= 1 << (b % 64)
	return nil
}

// Remove marks bucket b as not owned; out-of-range buckets are ignored.
func (s *BucketSet) Remove(b uint32) {
	if int64(b) < int64(s.total) {
		s.words[b/64] &^= 1 << (b % 64)
	}
}

// Contains reports whether b is owned.
func (s *BucketSet) Contains(b uint32) bool {
	return int64(b) < int64(s.total) && s.words[b/64]&(1<<(b%64)) != 0
}

// Total is the number of buckets the set ranges over.
func (s *BucketSet) Total() int { return s.total }

// Len is the number of owned buckets.
func (s *BucketSet) Len() int {
	n := 0
	for _, w := range s.words {
		n += bits.OnesCount64(w)
	}
	return n
}

// Buckets returns the owned buckets in ascending order.
func (s *BucketSet) Buckets() []uint32 {
	out := make([]uint32, 0, s.Len())
	for i, w := range s.words {
		for w != 0 {
			t := bits.TrailingZeros64(w)
			out = append(out, uint32(i*64+t))
			w &= w - 1
		}
	}
	return out
}

// Equal reports whether s and o hold the same buckets over the same total.
func (s *BucketSet) Equal(o *BucketSet) bool {
	if s.total != o.total {
		return false
	}
	for i := range s.words {
		if s.words[i] != o.words[i] {
			return false
		}
	}
	return true
}

// String summarises the set, e.g. "1024/4096 buckets".
func (s *BucketSet) String() string {
	return fmt.Sprintf("%d/%d buckets", s.Len(), s.total)
}
