// Package saru is the coordinator of an active-active LVS director mesh.
// The package itself holds only this overview; the work is in its
// sub-packages:
//
//   - partition: the pure bucket assignment engine (owners, standbys,
//     minimal movement, packet-to-bucket functions).
//   - coord: the pure coordinator state machine (membership view, leader,
//     assignment adoption and distribution decisions, join, drain, standby
//     fast path), driven by scripted scenarios in coord/testdata.
//   - config: the checked YAML configuration.
//   - node: the daemon's adapters: memberlist, the saru.v1.Cluster gRPC
//     server, the assignment stream between directors, the syncd client,
//     metrics.
//   - ipvs: the IPVS generic netlink client (services, destinations, sync
//     daemons, timeouts, listing with counters).
//   - services: virtual services from configuration to the desired IPVS
//     table, the pure diff against the kernel, and ipvsadm-style rendering.
//   - director: the daemon assembled from these parts (IPVS reconciliation,
//     filter, shared MAC and VIPs, node, metrics, readiness), which cmd/saru
//     wires to flags and signals.
//
// # Leader and assignments
//
// The leader is the live director with the lowest id; every director
// computes the same answer from the member list memberlist gives it. The
// leader computes a new assignment (partition.Assign, epoch+1) whenever the
// live member set, a weight or a state changes, and serves it; the others
// stream it from the leader (WatchAssignment) and install the newest epoch
// they have seen through the filter. Every director gossips the epoch it
// has and the epoch it applied. Older or equal epochs are ignored. A
// director that becomes leader first fetches the newest assignment any live
// director advertises (GetAssignment) and only then computes, so a new
// leader never starts from scratch and epochs only grow.
//
// # Failure, join, drain
//
// When memberlist declares a director dead (about 0.3-0.5 s with the
// default 100 ms probe), each survivor immediately installs the buckets for
// which it is the precomputed standby (partition.Failover), without waiting
// for the leader; the leader's next epoch confirms it. A joining director
// owns nothing until its syncd reports a complete snapshot or the join delay
// (30 s) passes; in a brand-new cluster, where no director is active yet,
// directors become active after a short settle time. Drain is two-phase:
// the draining director stays active until every other active director's
// syncd confirms it holds the draining director's connections (or
// drain.confirm_timeout passes, logged as drain-confirm-timeout); then all
// its buckets move in one epoch. The last active director cannot drain, and
// if every other director dies while one is drained, the drained one serves
// again rather than leave every bucket unowned (drain-blocked-last-active).
// An operator's drain is recorded in state_dir, so a drained director that
// is patched and rebooted comes back drained (owning nothing, needing no
// confirmation) until `saructl undrain`; then it joins like a new director.
// SIGTERM drains, then leaves, without recording the drain; SIGKILL is
// handled by failure detection.
//
// # When only the saru process dies
//
// SIGKILL of saru on a host that stays up leaves its nftables table with the
// last owned set, so the director would keep accepting those buckets while
// the survivors take them over. The systemd unit's ExecStopPost flushes the
// owned set when saru dies (the director then accepts nothing), and the
// restart replaces the table with one owning nothing until it has joined.
// Without that unit, whatever supervises saru must do the same.
//
// # Network partitions (no quorum)
//
// There is deliberately no majority quorum: the most common deployment has
// two directors, and a quorum would stop the survivor of a two-director
// cluster. When the network splits, each side sees the other side dead,
// elects the lowest id on its side as leader, and reassigns all buckets
// among its own members (the standby fast path first). Both sides therefore
// accept traffic for every bucket: behind a switch that floods to all
// directors, a connection may be accepted on both sides (each side's IPVS
// picks a real server; the client sees duplicate replies or resets) until
// the partition heals. Epochs on the two sides diverge and may collide
// (the same number with different content).
//
// On heal, memberlist merges the member lists. The director with the lowest
// id overall becomes the single leader; it sees the highest epoch any
// director advertises, fetches that assignment if it is newer than its own,
// and computes a new one for the whole member set with epoch max+1. Every
// director accepts it, because it is newer than anything either side had;
// the duplicate ownership ends one epoch after the heal. The scripted
// scenarios coord/testdata/partition.txt and two.txt show each step.
//
// # Refusals
//
// A peer that gossips a different bucket count or hash seed is refused by
// memberlist's alive and merge delegates (logged, counted in
// saru_refused_peers_total) and never becomes a member, so it cannot
// change the cluster's assignment. Malformed assignments and stale epochs
// are dropped with a typed reason (saru_dropped_assignments_total). A
// director whose id is live at another gossip address refuses to start; a
// director restarting on its own address is not refused (package
// saru/node). Calls refused before any work are counted in
// saru_refused_requests_total. Refusals are logged at most about once a
// second per reason, with what the sender controls clipped: a flood of bad
// input costs a counter increment, not a log line.
package saru
