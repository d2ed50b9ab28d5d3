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
//   - One id, one director: a director whose id a live member already
//     gossips from another address refuses to start (Start returns an
//     error naming the id and that address) before it takes any bucket,
//     and shuts memberlist down without leaving, since a leave would
//     announce the live director dead. The address tells a twin from a
//     restart: a director restarted on its own gossip address, while its
//     peers still list the dead instance, is the same member to
//     memberlist and starts. Moving a director to another address needs
//     its old instance declared dead first (about a second), or the start
//     is refused and the supervisor's retry succeeds. A twin heard after
//     the start is logged and counted; a running director never stops on
//     a peer's word.
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
//   - Prometheus metrics and log/slog logs. Refused or malformed input
//     (calls without credentials, over-long ids, refused members,
//     memberlist's warnings) is logged at most once a second per reason
//     after a short burst, with what the sender chose clipped to 64 bytes;
//     saru_refused_requests_total and saru_refused_peers_total count every
//     refusal by reason. Ids longer than a configuration accepts are
//     refused with InvalidArgument before authorisation.
//
// One goroutine owns the coord.Core; memberlist callbacks, gRPC handlers
// and pollers hand it closures through an unbounded queue, so no callback
// ever blocks memberlist.
package node
