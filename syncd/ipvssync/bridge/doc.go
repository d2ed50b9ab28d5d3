// Package bridge connects the IPVS kernel's own connection sync threads to
// syncd, on a stock kernel: it implements syncd's conn.Backend for IPVS.
//
// # How
//
// The bridge owns a dummy interface inside the director (saru-sync0 by
// default; multicast flag on, no address, never enslaved or routed to the
// LAN). It starts the kernel's backup sync thread on it and then its master
// thread (a backup must bind its port before any other socket does),
// through a SyncDaemons the caller provides (saru/ipvs over genetlink in
// cmd/syncd).
//
//   - Export: the master sends v1 messages to the sync group with multicast
//     loopback off, so no UDP socket on the host sees them. The bridge reads
//     them with an AF_PACKET socket bound to the dummy interface (outgoing
//     frames only, its own injections excluded by source port), decodes them
//     and hands the entries to syncd.
//   - Import: the bridge packs peers' entries into v1 messages no larger than
//     the backup's limit and sends them to the sync group with
//     IP_MULTICAST_IF set to the dummy interface and IP_MULTICAST_LOOP on:
//     the dummy device drops the original, the looped-back copy reaches the
//     backup thread's socket, which the kernel binds to that device.
//   - Entries the master never exports (fewer packets than sync_threshold,
//     idle long-lived connections, everything from before start) are read
//     from /proc/net/ip_vs_conn at start and by Snapshot.
//
// Drops are counted by typed reason (DropReason) and logged at most once
// per interval per reason.
//
// # What it does not do
//
// It does not authenticate, sequence or retransmit (syncd's peer transport
// does), nor keep a table of its own. It never puts the kernel threads on a
// LAN interface. IPv6 sync groups are not supported (the entries themselves
// may be IPv6). It needs CAP_NET_ADMIN and CAP_NET_RAW.
package bridge
