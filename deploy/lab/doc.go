// Package lab is saru's end-to-end lab: a director mesh in network
// namespaces, driven by real traffic, with a guided tour and measured
// scenarios. cmd/sarulab is its thin command.
//
// # Topology
//
// Every run gets namespaces whose names carry a per-run prefix (the pid), so
// runs never collide, and [Lab.Close] removes all of them (the command also
// closes on SIGINT, SIGTERM and panics):
//
//   - a hub namespace holding three bridges: "lan" (clients, directors and,
//     in DR mode, real servers) and "real" (NAT mode's real servers), where
//     director ports never learn, so the shared MAC is never learned and
//     every frame to it reaches every director (as a switch floods a MAC it
//     cannot learn), while other ports learn and take no flooded unicast;
//     and "mgmt", an ordinary bridge for gossip, gRPC and syncd;
//   - N directors (default 3) sharing a LAN address and the MAC on lan0
//     (and, in NAT mode, the real servers' gateway address and a second
//     shared MAC on real0), each with a unique management address on mgmt0,
//     IPVS services configured by saru/services, and cmd/syncd and cmd/saru
//     running with generated configurations (saru adds the VIP once its
//     filter is installed);
//   - M real servers (default 3) running a small HTTP service and a
//     long-lived TCP echo-stream service; in DR mode they hold the VIP on lo
//     with arp_ignore=1 and arp_announce=2, in NAT mode their default route
//     is the directors' shared gateway address;
//   - client namespaces from which the traffic drivers dial.
//
// The traffic drivers and servers are Go code in this process: a socket is
// created on an OS thread switched into the namespace (setns) and keeps that
// namespace for its lifetime.
//
// # Measurements
//
// A stream connection sends a sequence number and its send time every
// interval and the real server echoes them. A connection is lost when it is
// reset or closed, or when a message has waited for its echo longer than
// the loss deadline when a scenario ends; its stall is the longest any of
// its messages waited for the echo during the scenario; moved counts the
// connections whose bucket changed director (computed from the
// assignments before and after), the ones whose survival the scenario
// proves. failover_ms is
// from the crash (or the drain request) until every survivor has applied an
// assignment in which the departed director owns nothing, polled over
// saru.v1.Cluster. Nothing is assumed: a component that is missing or does
// not work makes the scenario print an error line naming it.
//
// # Kernel lab
//
// IPVS is needed. When the host kernel has none, [RunInKernelLab] boots
// Debian's kernel with deploy/kernellab, copies the static binaries (saru,
// syncd, saructl, sarulab, grpcurl) into the guest and runs sarulab there,
// streaming its output back.
//
// In the guest the CPUs are emulated in software, so the lab tunes it:
//
//   - the guest clocks on the TSC (the emulated HPET makes every clock
//     read a trap);
//   - the per-CPU network backlog holds 5000 packets: at the default 1000
//     the flood of frames to the shared MAC overflows it, and memberlist's
//     probes are dropped with it;
//   - saru runs at nice -10, as its systemd unit sets it, and ksoftirqd at
//     -20. All of the lab's forwarding is softirq work, which the slow
//     emulated CPUs soon leave to ksoftirqd; at its default nice 0 a
//     starting saru's burst of CPU stopped every packet in the lab for
//     hundreds of milliseconds (memberlist then saw live directors miss
//     their probes, and buckets moved on false deaths);
//   - a NAT director forwards only while saru runs, as deploy/saru/README.md
//     asks.
//
// saru keeps its own gossip timings (probe 100ms, timeout 50ms, suspicion
// x2), so the lab measures the failover an operator gets. With four
// directors in NAT mode the guest is busy, and a host that is itself
// loaded (the lab has seen the same run vary by a factor of ten within
// an hour) can still starve it while a director starts: every stream's
// echoes wait, and memberlist may suspect directors that are alive.
// Suspicion x3 did not make that rarer. The e2e test reruns a scenario in
// which membership flapped before it acted, and a connection counts as
// lost only if it is reset or still silent 60s after the scenario settled
// (TCP's retransmission back-off can leave a live one quiet for ~26s).
// `sarulab --gossip 500ms/400ms/5` (or SARULAB_GOSSIP) is the tolerant
// setting for a host too busy for that.
//
// # Environment
//
//	SARULAB_GOSSIP     memberlist timings, interval/timeout/suspicion-mult
//	SARULAB_KEEP       keep the work directory (configs, daemon logs)
//	SARULAB_DEBUG      print the busiest processes, softnet drops, stalls of the
//	                   whole machine, director start steps, and, for a join, the
//	                   CPU time each process used, syncd's packet counters and
//	                   when the streams' worst stalls began; and every log
//	SARULAB_LOG_LINES  log lines shown per daemon when a scenario fails
//
// # What it does not do
//
// It does not emulate latency or bandwidth, use IPv6 for the services, or
// touch anything outside the namespaces it creates.
package lab
