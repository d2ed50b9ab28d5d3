package node

import (
	"errors"
	"fmt"

	"github.com/saru-lb/saru/filter/bucket"
	sarupb "github.com/saru-lb/saru/proto/saru/v1"
	"github.com/saru-lb/saru/saru/partition"
)

// SenseToProto is s as the API spells it. saru.v1.Sense numbers the senses
// as package bucket does, one up: its zero is SENSE_UNSPECIFIED.
func SenseToProto(s bucket.Sense) sarupb.Sense {
	if !s.Valid() {
		return sarupb.Sense_SENSE_UNSPECIFIED
	}
	return sarupb.Sense(s) + 1
}

// SenseFromProto is the sense the API names; SENSE_UNSPECIFIED is the
// default, src-port. An unknown value gives an invalid sense.
func SenseFromProto(p sarupb.Sense) bucket.Sense {
	if p == sarupb.Sense_SENSE_UNSPECIFIED {
		return bucket.SrcPort
	}
	return bucket.Sense(p - 1)
}

func stateToProto(s partition.State) sarupb.MemberState {
	switch s {
	case partition.Joining:
		return sarupb.MemberState_MEMBER_STATE_JOINING
	case partition.Active:
		return sarupb.MemberState_MEMBER_STATE_ACTIVE
	case partition.Draining:
		return sarupb.MemberState_MEMBER_STATE_DRAINING
	}
	return sarupb.MemberState_MEMBER_STATE_UNSPECIFIED
}

func stateFromProto(s sarupb.MemberState) (partition.State, error) {
	switch s {
	case sarupb.MemberState_MEMBER_STATE_JOINING:
		return partition.Joining, nil
	case sarupb.MemberState_MEMBER_STATE_ACTIVE:
		return partition.Active, nil
	case sarupb.MemberState_MEMBER_STATE_DRAINING:
		return partition.Draining, nil
	}
	return 0, fmt.Errorf("member state %v: not an assignable state", s)
}

func toProto(a partition.Assignment) *sarupb.Assignment {
	out := &sarupb.Assignment{Epoch: a.Epoch, BucketCount: uint32(a.Buckets())}
	for _, r := range a.Ranges() {
		out.Ranges = append(out.Ranges, &sarupb.BucketRange{First: r.First, Last: r.Last, Owner: r.Owner, Standby: r.Standby})
	}
	for _, m := range a.Members {
		out.Members = append(out.Members, &sarupb.AssignedMember{Id: m.ID, Weight: uint32(m.Weight), State: stateToProto(m.State)})
	}
	return out
}

// maxRanges bounds a received assignment's ranges (one per bucket at most).
const maxRanges = bucket.Max

// fromProto checks and converts an assignment received over gRPC.
func fromProto(p *sarupb.Assignment) (partition.Assignment, error) {
	if p == nil {
		return partition.Assignment{}, errors.New("assignment: missing")
	}
	if err := bucket.CheckCount(int(p.BucketCount)); err != nil {
		return partition.Assignment{}, fmt.Errorf("assignment epoch %d: %w", p.Epoch, err)
	}
	if len(p.Ranges) > maxRanges || len(p.Ranges) > int(p.BucketCount) {
		return partition.Assignment{}, fmt.Errorf("assignment epoch %d: %d ranges for %d buckets", p.Epoch, len(p.Ranges), p.BucketCount)
	}
	if len(p.Members) > bucket.Max {
		return partition.Assignment{}, fmt.Errorf("assignment epoch %d: %d members", p.Epoch, len(p.Members))
	}
	members := make([]partition.Member, 0, len(p.Members))
	for i, m := range p.Members {
		st, err := stateFromProto(m.State)
		if err != nil {
			return partition.Assignment{}, fmt.Errorf("assignment epoch %d: members[%d] %q: %w", p.Epoch, i, m.Id, err)
		}
		if m.Id == "" || m.Weight < 1 {
			return partition.Assignment{}, fmt.Errorf("assignment epoch %d: members[%d]: empty id or zero weight", p.Epoch, i)
		}
		members = append(members, partition.Member{ID: m.Id, Weight: int(m.Weight), State: st})
	}
	ranges := make([]partition.Range, 0, len(p.Ranges))
	for _, r := range p.Ranges {
		ranges = append(ranges, partition.Range{First: r.First, Last: r.Last, Owner: r.Owner, Standby: r.Standby})
	}
	a, err := partition.FromRanges(p.Epoch, int(p.BucketCount), members, ranges)
	if err != nil {
		return partition.Assignment{}, fmt.Errorf("assignment epoch %d: %w", p.Epoch, err)
	}
	return a, nil
}
