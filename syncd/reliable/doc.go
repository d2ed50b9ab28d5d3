// Package reliable is syncd's per-sender reliability state machine: the
// sender's sequence numbers and retransmit ring, and for every remote
// sender a receive window that detects duplicates and replays, finds gaps,
// decides when to NACK them and when to give them up and fall back to a
// snapshot.
//
// Every sender has its own sequence space (per incarnation), so the state
// is right for any number of peers, unlike a single receive sequence per
// daemon. Data packets and control packets (heartbeats, NACKs) are
// numbered separately: control packets are never retransmitted, so they
// have an IPsec-style sliding replay window instead.
//
// The package is pure: no sockets, no clock (callers pass now in
// nanoseconds), no goroutines, no locks. Callers serialise access.
package reliable
