// Package daemon is syncd: it wires a local Backend (IPVS bridge,
// conntrack or memory), the connection table, the reliability state
// machines, the authenticated wire format, a Transport and the
// syncd.v1.Sync gRPC service into one running Node.
//
// # Flow
//
// Entries the backend exports are stamped with this node's id and a
// hybrid-logical-clock version, upserted into the table and packed into
// datagrams up to the path MTU. Every datagram carries the sender's id,
// incarnation and a data sequence, is signed with the cluster key and
// kept in a retransmit ring. Peers verify, check the sequence against the
// per-sender receive window, apply the entries by version and hand the
// changed ones to their backend. Heartbeats announce each sender's
// highest sequence; receivers NACK gaps, give up what the sender no longer
// holds and then pull a snapshot of that sender's entries over gRPC.
// Local entries are re-sent once per refresh interval, so a peer that
// missed one converges anyway.
//
// A starting node pulls a full snapshot from a ready peer (one whose
// heartbeat says ready) and then reports SNAPSHOT_STATE_COMPLETE; with no
// ready peer within the snapshot wait it is complete on its own.
//
// The state machines live in syncd/reliable and syncd/table; this package
// holds the goroutines, locks, clocks and sockets around them.
package daemon
