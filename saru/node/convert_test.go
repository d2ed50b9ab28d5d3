package node

import (
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/saru-lb/saru/filter/bucket"
	sarupb "github.com/saru-lb/saru/proto/saru/v1"
	"github.com/saru-lb/saru/saru/partition"
)

func sample(t testing.TB) partition.Assignment {
	a, err := partition.Empty(64)
	if err != nil {
		t.Fatal(err)
	}
	a, err = partition.Assign(a, []partition.Member{{ID: "d1", Weight: 1, State: partition.Active}, {ID: "d2", Weight: 2, State: partition.Active}, {ID: "d3", Weight: 1, State: partition.Joining}})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func TestAssignmentRoundTrip(t *testing.T) {
	a := sample(t)
	b, err := fromProto(toProto(a))
	if err != nil {
		t.Fatal(err)
	}
	if b.Epoch != a.Epoch || partition.Moved(a, b) != 0 || len(b.Members) != 3 || b.Members[2].State != partition.Joining {
		t.Fatalf("round trip changed the assignment: %+v", b)
	}
}

func TestFromProtoRejects(t *testing.T) {
	good := func() *sarupb.Assignment { return toProto(sample(t)) }
	for name, mut := range map[string]func(*sarupb.Assignment){
		"bucket count":   func(p *sarupb.Assignment) { p.BucketCount = 100 },
		"gap":            func(p *sarupb.Assignment) { p.Ranges[1].First++ },
		"short":          func(p *sarupb.Assignment) { p.Ranges = p.Ranges[:len(p.Ranges)-1] },
		"unknown owner":  func(p *sarupb.Assignment) { p.Ranges[0].Owner = "d9" },
		"joining owner":  func(p *sarupb.Assignment) { p.Ranges[0].Owner = "d3" },
		"dead state":     func(p *sarupb.Assignment) { p.Members[0].State = sarupb.MemberState_MEMBER_STATE_DEAD },
		"zero weight":    func(p *sarupb.Assignment) { p.Members[0].Weight = 0 },
		"owner=standby":  func(p *sarupb.Assignment) { p.Ranges[0].Standby = p.Ranges[0].Owner },
		"missing":        nil,
		"too many range": func(p *sarupb.Assignment) { p.Ranges = append(p.Ranges, make([]*sarupb.BucketRange, 64)...) },
	} {
		var p *sarupb.Assignment
		if mut != nil {
			p = good()
			mut(p)
		}
		if _, err := fromProto(p); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// FuzzAssignment: assignments arrive over gRPC from peers. Whatever
// decodes must be valid and survive a round trip.
func FuzzAssignment(f *testing.F) {
	b, err := proto.Marshal(toProto(sample(f)))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	f.Fuzz(func(t *testing.T, data []byte) {
		var p sarupb.Assignment
		if proto.Unmarshal(data, &p) != nil {
			return
		}
		a, err := fromProto(&p)
		if err != nil {
			return
		}
		if err := a.Validate(); err != nil {
			t.Fatalf("accepted an invalid assignment: %v", err)
		}
		b, err := fromProto(toProto(a))
		if err != nil || partition.Moved(a, b) != 0 || b.Epoch != a.Epoch {
			t.Fatalf("round trip: %v", err)
		}
	})
}

// The API's senses are package bucket's, one up: every sense has its enum
// value with the same name, and back.
func TestSenseProto(t *testing.T) {
	names := map[bucket.Sense]sarupb.Sense{
		bucket.SrcPort:     sarupb.Sense_SENSE_SRC_PORT,
		bucket.DstPort:     sarupb.Sense_SENSE_DST_PORT,
		bucket.SrcAddr:     sarupb.Sense_SENSE_SRC_ADDR,
		bucket.DstAddr:     sarupb.Sense_SENSE_DST_ADDR,
		bucket.SrcAddrPort: sarupb.Sense_SENSE_SRC_ADDR_PORT,
	}
	if got, want := len(sarupb.Sense_name), len(bucket.Senses())+1; got != want {
		t.Fatalf("saru.v1.Sense has %d values, want %d (one per bucket.Sense and unspecified)", got, want)
	}
	for _, s := range bucket.Senses() {
		p := SenseToProto(s)
		if want, ok := names[s]; ok && p != want {
			t.Errorf("SenseToProto(%v) = %v, want %v", s, p, want)
		}
		if _, ok := sarupb.Sense_name[int32(p)]; !ok || p == sarupb.Sense_SENSE_UNSPECIFIED {
			t.Errorf("SenseToProto(%v) = %d: not a sense of the API", s, p)
		}
		if back := SenseFromProto(p); back != s {
			t.Errorf("SenseFromProto(SenseToProto(%v)) = %v", s, back)
		}
	}
	if s := SenseFromProto(sarupb.Sense_SENSE_UNSPECIFIED); s != bucket.SrcPort {
		t.Errorf("unspecified sense is %v, want the default src-port", s)
	}
	if SenseFromProto(99).Valid() {
		t.Error("an unknown API sense became a valid one")
	}
	if p := SenseToProto(bucket.Sense(99)); p != sarupb.Sense_SENSE_UNSPECIFIED {
		t.Errorf("SenseToProto(invalid) = %v", p)
	}
}
