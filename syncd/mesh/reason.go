package mesh

import (
	"github.com/saru-lb/saru/syncd/reliable"
)

// Reason says why the core dropped something, or why it took a decision.
// Tests assert it; logs and metrics label by it. The drop reasons carry
// the names of wire.Reason and reliable.Verdict.
type Reason string

// Reasons.
const (
	// A datagram dropped before it reached a peer's state (wire.Reason).
	DropTruncated  Reason = "truncated"
	DropBadMagic   Reason = "bad_magic"
	DropBadVersion Reason = "bad_version"
	DropUnknownKey Reason = "unknown_key"
	DropExpiredKey Reason = "expired_key"
	DropBadMAC     Reason = "bad_mac"
	DropMalformed  Reason = "malformed"
	// An authentic data packet the sender's receive window refused
	// (reliable.Verdict): a replay, or a redundant retransmission.
	DropDuplicate        Reason = "duplicate"
	DropTooOld           Reason = "too_old"
	DropStaleIncarnation Reason = "stale_incarnation"
	// DropUnanchored: a data packet heard while starting, before the
	// sender's heartbeats named its current sequence (its entries come
	// with the snapshot).
	DropUnanchored Reason = "unanchored"
	// The same for a control packet (heartbeat, NACKs).
	DropControlDuplicate        Reason = "control_duplicate"
	DropControlTooOld           Reason = "control_too_old"
	DropControlStaleIncarnation Reason = "control_stale_incarnation"
	// DuplicateID: another syncd sends with this node's id.
	DuplicateID Reason = "duplicate_id"
	// MarshalFailed: a packet could not be encoded.
	MarshalFailed Reason = "marshal_failed"
	// Decisions worth logging.
	PeerHeard        Reason = "peer_heard"
	SnapshotComplete Reason = "snapshot_complete"
	SnapshotAlone    Reason = "snapshot_alone" // no ready peer within the wait
	SnapshotFailed   Reason = "snapshot_failed"
	CaughtUp         Reason = "caught_up"
	CatchUpFailed    Reason = "catch_up_failed"
)

// Drop reports whether r says a datagram was dropped.
func (r Reason) Drop() bool {
	switch r {
	case DropTruncated, DropBadMagic, DropBadVersion, DropUnknownKey, DropExpiredKey, DropBadMAC, DropMalformed,
		DropDuplicate, DropTooOld, DropStaleIncarnation, DropUnanchored,
		DropControlDuplicate, DropControlTooOld, DropControlStaleIncarnation:
		return true
	}
	return false
}

func dataReason(v reliable.Verdict) Reason { return Reason(v.String()) }

func controlReason(v reliable.Verdict) Reason { return "control_" + Reason(v.String()) }
