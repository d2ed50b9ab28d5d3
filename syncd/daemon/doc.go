// Package daemon is syncd: it wires a local Backend (IPVS bridge,
// conntrack or memory), a Transport and the syncd.v1.Sync gRPC service
// around the pure sync core (syncd/mesh) into one running Daemon.
//
// # Flow
//
// The Daemon feeds the core what happens — entries the backend exports,
// datagrams the transport receives, ticks, the chunks and end of snapshot
// pulls — each with the time read once, and carries out the core's Ready:
// it sends the datagrams, imports the entries into the backend, runs the
// pulls over gRPC, logs the events (drops at most once a second per
// reason) and sleeps until the core's next tick. Everything the protocol
// decides (sequencing, NACKs, expiry, refresh, when to pull a snapshot) is
// the core's; see syncd/mesh for the rules.
//
// Received datagrams are verified and decoded (mesh.Opener) before the
// lock that guards the core is taken, so the costly half of receiving runs
// beside sending.
//
// # Incarnation
//
// Each run has an incarnation, which peers use to tell a restart from a
// replay: they follow a higher one at once and refuse a lower one for
// good. It is not the wall clock (a run started with its clock stepped
// back would be ignored until every peer restarted): the run reads the
// incarnation the last one kept in state_dir, takes the next
// (mesh.NextIncarnation: above it, and not below the wall clock in case
// the file was lost) and writes it back atomically, mode 0600, before the
// first packet leaves.
//
// # Configuration
//
// File.Check turns the YAML file into a Config, purely: syntax, ranges,
// the node id's charset (CheckID, saru's rule), defaults only for what the
// file leaves out. Config.CheckEnvironment then checks the key file
// (ReadKeyFile: private like an ssh key, well formed, no zero secret) and
// the multicast interface. `syncd -check` and the start run both.
//
// It also polls the key file and rolls the core's keys over when it
// changes, and serves the core's counters as Prometheus metrics. This
// package holds the goroutines, locks, clocks and sockets; the core holds
// none.
package daemon
