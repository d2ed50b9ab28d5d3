// Package coord is a director's coordinator as a pure state machine: the
// membership view, the leader, the current assignment, the drain and join
// lifecycle, and the standby fast path.
//
// Like etcd's raft RawNode, a Core is fed events — PeerAlive (a peer's
// gossiped Meta), PeerDead, Receive (an assignment from the leader's stream
// or a fetch), Applied (the filter installed an owned set), Tick, SyncReady,
// SyncConfirm, Drain and Undrain — and the caller reads what to do from
// Ready: metadata to gossip, an assignment to publish to watchers, an owned
// bucket set to install, a peer to fetch the newest assignment from, a new
// leader to watch, draining peers whose connections to confirm with the
// local syncd, and events to log, each with a typed Reason.
//
// It does no I/O, reads no clock (time is counted in ticks), starts no
// goroutines and is not safe for concurrent use. Membership (memberlist),
// transport (gRPC), the filter and syncd are the caller's (package node).
//
// # Rules
//
//   - The leader is the live director with the lowest id. Only it computes
//     assignments (partition.Assign), and only when the member set (ids,
//     weights, states) differs from the current assignment's.
//   - Before computing, a leader adopts the newest epoch any live peer
//     advertises, by asking the caller to fetch it from that peer.
//   - An assignment is taken only if its epoch is newer than the current
//     one, and it comes from the leader or from a peer this director asked
//     (a late stream message from a former leader is DropNotLeader), and
//     it is valid (DropInvalid), names as owners and standbys only
//     directors this one knows (DropNonMember), and leaves no bucket
//     unowned while a live director owns buckets (DropUnowned). A peer
//     whose fetched assignment is dropped is not asked again for the epoch
//     it announces; the leader issues an epoch above it instead.
//   - Epochs never wrap: none above partition.MaxEpoch is taken or
//     announced (RefuseEpoch, DropEpoch), and none more than MaxEpochJump
//     above the newest this director knows (twice that for an announced
//     one: RefuseEpochJump, DropEpochJump).
//   - A follower normally gets assignments from the leader's stream; if
//     gossip shows a peer with a newer epoch for Retry ticks, it fetches it
//     from that peer (catch-up-fetch), so an unreachable stream cannot
//     leave it behind.
//   - Metadata carries a fingerprint of the director's assignment; a leader
//     that sees a peer hold a different assignment of its own epoch (two
//     leaders that did not see each other) issues the next epoch.
//   - With FastFailover, a director installs the buckets it is standby for
//     as soon as their owner is seen dead (partition.Failover), before the
//     leader's next epoch.
//   - A joining director takes buckets when its syncd reports a complete
//     snapshot, when the join delay has passed, or, after the settle time,
//     when no live director is active (a new cluster).
//   - A draining director stays active in assignments until every other
//     active director confirms it holds its connections, or the confirm
//     timeout passes; then its buckets move in one epoch; one that owns
//     nothing needs no confirmation. The last active director cannot
//     drain, and draining directors serve again while no other director is
//     active. A director started with StartDrained stays draining until
//     undrained.
//   - A peer announcing a different bucket count or seed is refused.
//
// Without gossip encryption anyone may join, and one with the lowest id
// leads: these rules keep a fake leader from leaving buckets unowned,
// giving them to directors that do not exist or pushing epochs to their
// end, and the cluster recovers once it leaves; keeping it out is the
// gossip key's job.
//
// There is no quorum: each side of a network partition elects its own
// leader and keeps serving; see package saru for what that means and how
// the cluster heals.
package coord
