// Package bridge connects the IPVS kernel's own connection sync threads to
// syncd, on a stock kernel: it implements syncd's conn.Backend for IPVS.
//
// # How
//
// The bridge owns a dummy interface inside the director (saru-sync0 by
// default; multicast flag on, no address, never enslaved or routed to the
// LAN; Open refuses an existing interface that is not a dummy). It starts
// the kernel's backup sync thread on it and then its master thread (the
// backup must bind its port before any other socket does), through a
// SyncDaemons the caller provides (saru/ipvs over genetlink in cmd/syncd).
//
//   - Export, from the master: the master sends v1 messages to the sync
//     group with multicast loopback off, so no UDP socket on the host sees
//     them. The bridge reads them with an AF_PACKET socket on the dummy
//     interface (outgoing IPv4 frames only, its own injections excluded by
//     source port), decodes them and hands the entries to syncd.
//   - Export, from the table: every PollInterval the bridge reads
//     /proc/net/ip_vs_conn and /proc/net/ip_vs_conn_sync and exports the
//     local entries (not created by sync) that are new, changed, or kept
//     alive here longer than the peers were told (ipvssync.Tracker). The
//     same read at start-up exports what the master never sent.
//   - Import: the bridge packs peers' entries into v1 messages no larger than
//     the backup's limit and sends them to the sync group with
//     IP_MULTICAST_IF set to the dummy interface and IP_MULTICAST_LOOP on:
//     the dummy device drops the original, the looped-back copy reaches the
//     backup thread's socket, which the kernel binds to that device.
//
// Drops are counted by typed reason (DropReason) and logged at most once
// per interval per reason.
//
// # What the kernel does (Debian 6.1, proven in the kernel lab)
//
//   - Master and backup run at once on one dummy interface without an
//     address.
//   - Outgoing frames reach only ETH_P_ALL packet sockets
//     (dev_queue_xmit_nit walks ptype_all): a packet socket bound to
//     ETH_P_IP sees nothing the master sends.
//   - A UDP socket joined to the group on the dummy interface (with
//     SO_REUSEADDR next to the backup) receives none of the master's
//     messages; a socket that binds the port first without SO_REUSEADDR
//     makes the backup fail to start (EADDRINUSE).
//   - The master exports a TCP connection at its third packet (ESTABLISHED,
//     timeout 900, flags DR|NOOUTPUT), then on state changes (FIN_WAIT,
//     INACTIVE, 120 s) and, by its code, every 50 packets; a connection
//     with a packet a second is not sent again. Persistence templates (TEMPLATE,
//     state NONE or ASSURED, 300 s) go with their connections. It holds a
//     part-filled message up to 2 s (IPVS_SYNC_FLUSH_TIME) and looks once a
//     second, so a lone export leaves 2 to 3 s after the threshold packet;
//     the table read is what brings an entry to the peers within a second.
//   - The backup creates an entry without a virtual service, binds it to a
//     matching real server and counts it in that server's ActiveConn (or
//     InActConn). That is the point for an active-active mesh: every
//     director's lc/wlc scheduler then sees the load all directors put on
//     the real server, not only its own share, so the bridge leaves it so.
//   - A later message for the same tuple replaces state and timeout; one
//     naming another real server replaces the entry unless it is INACTIVE
//     (then the kernel takes it for the expiry of an entry already replaced
//     and ignores it). Timeout 0 gives the kernel's default for the state.
//   - The backup silently drops a message whose size field differs from the
//     datagram, one with an unknown state and one larger than its maxlen
//     (1472 by default); ipvssync.Pack never builds one.
//   - A kernel-format message sent on the LAN, to the group or unicast to a
//     director, reaches no backup: the kernel binds its socket to the dummy
//     interface.
//
// # What it does not do
//
// It does not authenticate, sequence or retransmit (syncd's peer transport
// does), nor keep a table of its own. It never puts the kernel threads on a
// LAN interface. IPv6 sync groups are not supported (the entries themselves
// may be IPv6). The table does not show fwmarks, so an entry of a fwmark
// service found only by the table read travels without its fwmark. It
// needs CAP_NET_ADMIN and CAP_NET_RAW.
package bridge
