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
//   - Seeds that are not live members are joined again every 2 s, so the
//     two sides of a healed network partition merge even after memberlist
//     has forgotten the dead members.
//   - TLS: with ServerCreds the API is served over TLS; a client
//     certificate verified by the configured CA authorises Drain and
//     Undrain like the token does; peers dial each other with ClientCreds.
//     Reflection serves the commented descriptors of saru.v1 (embedded in
//     proto/saru/v1), so grpcurl describe shows the API's documentation.
//   - The owned bucket set is installed through the Filter interface (the
//     daemon adapts package filter), and the local syncd is asked through
//     the Sync interface (SyncdClient) whether its snapshot is complete and
//     whether it holds a draining peer's connections.
//   - Prometheus metrics and log/slog logs.
//
// One goroutine owns the coord.Core; memberlist callbacks, gRPC handlers
// and pollers hand it closures through an unbounded queue, so no callback
// ever blocks memberlist.
package node
