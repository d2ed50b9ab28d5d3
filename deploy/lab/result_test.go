package lab

import (
	"errors"
	"testing"
	"time"

	"pgregory.net/rapid"
)

func TestPercentile(t *testing.T) {
	ms := func(v ...int) []time.Duration {
		out := make([]time.Duration, len(v))
		for i, x := range v {
			out[i] = time.Duration(x) * time.Millisecond
		}
		return out
	}
	for _, tc := range []struct {
		in   []time.Duration
		p    float64
		want time.Duration
	}{
		{nil, 50, 0},
		{ms(7), 99, 7 * time.Millisecond},
		{ms(1, 2, 3, 4), 50, 2 * time.Millisecond},
		{ms(4, 3, 2, 1), 100, 4 * time.Millisecond},
		{ms(1, 2, 3, 4, 5, 6, 7, 8, 9, 10), 99, 10 * time.Millisecond},
		{ms(1, 2, 3, 4, 5, 6, 7, 8, 9, 10), 90, 9 * time.Millisecond},
	} {
		if got := Percentile(tc.in, tc.p); got != tc.want {
			t.Errorf("Percentile(%v, %v) = %v, want %v", tc.in, tc.p, got, tc.want)
		}
	}
}

func TestPercentileIsAnElementAndMonotonic(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		vals := rapid.SliceOfN(rapid.Int64Range(0, 1e10), 1, 200).Draw(t, "vals")
		ds := make([]time.Duration, len(vals))
		for i, v := range vals {
			ds[i] = time.Duration(v)
		}
		p := rapid.Float64Range(0, 100).Draw(t, "p")
		q := rapid.Float64Range(p, 100).Draw(t, "q")
		a, b := Percentile(ds, p), Percentile(ds, q)
		if a > b {
			t.Fatalf("p%v=%v > p%v=%v", p, a, q, b)
		}
		found := false
		for _, d := range ds {
			found = found || d == a
		}
		if !found {
			t.Fatalf("percentile %v is not an element", a)
		}
	})
}

func TestOutcome(t *testing.T) {
	states := []StreamState{
		{Port: 1, Stall: 100 * time.Millisecond},
		{Port: 2, Stall: 900 * time.Millisecond, Waiting: 50 * time.Millisecond},
		{Port: 3, Stall: 20 * time.Second, Waiting: 20 * time.Second}, // stalled for good
		{Port: 4, Err: errors.New("connection reset")},                // reset
	}
	lost, p50, p99 := Outcome(states, 10*time.Second)
	if lost != 2 {
		t.Errorf("lost = %d, want 2", lost)
	}
	if p50 != 100*time.Millisecond || p99 != 900*time.Millisecond {
		t.Errorf("p50, p99 = %v, %v; want 100ms, 900ms", p50, p99)
	}
}
