// Package node runs a director's coordinator: the thin adapters around the
// pure state machine in package coord.
//
//   - Membership and failure detection: hashicorp/memberlist, tuned for a
//     LAN (probe 100 ms, timeout 50 ms, suspicion multiplier 2, gossip
//     50 ms by default) so a killed director is declared dead within about
//     a second. Node metadata (coord.Meta) carries weight, state, epoch,
//     applied epoch, gRPC address, bucket count and seed; a peer with a
//     different bucket count or seed is refused by the alive and merge
//     delegates and never enters the member list.
//   - The saru.v1.Cluster gRPC server with reflection and health: reads are
//     open; Drain and Undrain need a bearer token or a verified client
//     certificate (Unauthenticated without credentials, PermissionDenied
//     with wrong ones), are forwarded to the named director, and wait
//     until its buckets have moved.
//   - Followers stream the leader's assignments (WatchAssignment); a new
//     leader fetches the newest epoch (GetAssignment) before computing.
//   - The owned bucket set is installed through the Filter interface (the
//     daemon adapts package filter), and the local syncd is asked through
//     the Sync interface (SyncdClient) whether its snapshot is complete and
//     whether it holds a draining peer's connections.
//   - Prometheus metrics and log/slog logs.
//
// One goroutine owns the coord.Node; memberlist callbacks, gRPC handlers
// and pollers hand it closures through an unbounded queue, so no callback
// ever blocks memberlist.
package node
