package coord_test

import (
	"strings"
	"testing"

	"github.com/saru-lb/saru/saru/coord"
	"github.com/saru-lb/saru/saru/partition"
)

func TestMetaRoundTrip(t *testing.T) {
	m := coord.Meta{ID: "dir1", Weight: 2, State: partition.Draining, Epoch: 9, Applied: 8, GRPC: "10.0.0.1:7400", Buckets: 4096, Seed: 0x5eed, Confirms: []string{"dir2"}}
	b, err := m.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	got, err := coord.UnmarshalMeta(b)
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != m.ID || got.Weight != m.Weight || got.State != m.State || got.Epoch != m.Epoch || got.Applied != m.Applied ||
		got.GRPC != m.GRPC || got.Buckets != m.Buckets || got.Seed != m.Seed || len(got.Confirms) != 1 || got.Confirms[0] != "dir2" {
		t.Fatalf("round trip: got %+v, want %+v", got, m)
	}
}

func TestMetaRejects(t *testing.T) {
	for _, tc := range []struct {
		in, want string
	}{
		{`{"v":2,"i":"a","w":1,"s":1}`, "version 2"},
		{`{"v":1,"i":"","w":1,"s":1}`, "empty id"},
		{`{"v":1,"i":"a","w":0,"s":1}`, "weight 0"},
		{`{"v":1,"i":"a","w":1,"s":9}`, "unknown state 9"},
		{`{"v":1,"i":"a","w":1,"s":1,"e":1,"a":2}`, "applied epoch 2 above epoch 1"},
		{`{"v":1,"i":"a","w":1,"s":1,"c":[""]}`, "empty id in confirms"},
		{`not json`, "decode meta"},
		{`{"v":1,"i":"` + strings.Repeat("x", 600) + `","w":1,"s":1}`, "limit 512"},
	} {
		_, err := coord.UnmarshalMeta([]byte(tc.in))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("UnmarshalMeta(%.40q) = %v, want error containing %q", tc.in, err, tc.want)
		}
	}
	if _, err := (coord.Meta{ID: strings.Repeat("x", 600), Weight: 1, State: partition.Active}).Marshal(); err == nil {
		t.Error("Marshal of an oversized meta succeeded")
	}
}

// FuzzUnmarshalMeta: gossiped metadata is network input. Whatever decodes
// must re-encode and decode to the same value.
func FuzzUnmarshalMeta(f *testing.F) {
	f.Add([]byte(`{"v":1,"i":"dir1","w":1,"s":2,"e":5,"a":5,"g":"10.0.0.1:7400","b":4096,"h":7,"c":["dir2"]}`))
	f.Add([]byte(`{"v":1}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := coord.UnmarshalMeta(b)
		if err != nil {
			return
		}
		enc, err := m.Marshal()
		if err != nil {
			return // may exceed the limit after re-encoding escapes
		}
		m2, err := coord.UnmarshalMeta(enc)
		if err != nil {
			t.Fatalf("re-decode: %v", err)
		}
		if m2.ID != m.ID || m2.Epoch != m.Epoch || m2.State != m.State || len(m2.Confirms) != len(m.Confirms) {
			t.Fatalf("round trip changed %+v to %+v", m, m2)
		}
	})
}

func TestNewRejectsBadConfig(t *testing.T) {
	for _, tc := range []struct {
		cfg  coord.Config
		want string
	}{
		{coord.Config{Weight: 1, Buckets: 64, Seed: 1, Retry: 1}, "id: must not be empty"},
		{coord.Config{ID: "a", Weight: 1, Buckets: 100, Seed: 1, Retry: 1}, "bucket count 100"},
		{coord.Config{ID: "a", Weight: 1, Buckets: 64, Retry: 1}, "seed: must be non-zero"},
		{coord.Config{ID: "a", Buckets: 64, Seed: 1, Retry: 1}, "weight 0"},
	} {
		if _, err := coord.New(tc.cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("New(%+v) = %v, want %q", tc.cfg, err, tc.want)
		}
	}
}
