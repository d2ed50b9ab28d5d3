// Package mesh is syncd's peer protocol as a pure state machine: the
// connection table, per-sender sequencing, packing and sealing, expiry and
// refresh, NACK scheduling and snapshot catch-up.
//
// Like saru/coord, a Mesh is fed events — Export (entries the local
// backend exported), Receive (a datagram and its source address), Tick,
// PullChunk and PullDone (a snapshot being pulled, and its end) — each
// with the time passed in, and the caller reads what to do from Ready:
// datagrams to send, entries to import into the local backend, snapshot
// pulls to start (a peer's API address, and whose entries), events with a
// typed Reason (why a datagram was dropped: bad MAC, replay, stale
// incarnation, ...) and when Tick is next due.
//
// Receive is Open (verify and decode, the costly half) then Apply; a
// caller that guards the Mesh with a lock runs an Opener outside it.
//
// It does no I/O, reads no clock, starts no goroutines, draws no random
// numbers (the incarnation is configured: NextIncarnation computes it from
// the one the caller kept from the last run) and is not safe for concurrent
// use. Sockets, gRPC, the backend, key files, metrics and the goroutines
// around them are package daemon's.
//
// # Time
//
// A Time carries two readings: Mono, a monotonic clock that orders events
// and measures every interval (heartbeats, flushes, NACKs, expiry), and
// Wall, the wall clock, which only stamps entry versions (a hybrid logical
// clock, never below a version already seen) and times key rollover
// grace. A wall-clock step therefore moves versions but no timer.
//
// # Rules
//
//   - Local entries are stamped with this node's id and a version, upserted
//     into the table and packed into data packets up to Config.Budget; a
//     partly filled packet leaves after Config.Flush.
//   - Every datagram is sealed with the cluster key; a datagram that fails
//     verification, or whose sequence the sender's receive window refuses
//     (duplicate, too old, stale incarnation), is dropped with its Reason
//     and never reaches the table.
//   - Heartbeats announce this node's highest sequence and its API
//     address; receivers NACK gaps and give up what the sender no longer
//     holds, and then pull a snapshot of that sender's entries.
//   - A starting node pulls a full snapshot from a ready peer (or a
//     configured snapshot peer) and is ready when one completes, or when
//     no candidate shows up within Config.SnapshotWait.
//   - A starting node takes a peer's data only once the peer's heartbeats
//     (two intervals of them) have named its current sequence, and pulls
//     that peer's entries up to it by snapshot: an old datagram replayed
//     while it starts is neither applied nor taken as where the peer is
//     (see reliable.NewJoiningReceiver).
//   - Per-address state (which peer a source address belongs to, for
//     counting authentic but malformed datagrams) is written only by an
//     authentic, fresh packet, and bounded per peer.
//   - Every local entry is re-sent once per Config.Refresh; the table is
//     swept once per Config.Expire, paused while a snapshot is served
//     (for at most a minute).
package mesh
