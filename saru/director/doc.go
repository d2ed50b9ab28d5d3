// Package director is the saru daemon assembled from its parts: it reads
// the credentials the configuration names, reconciles IPVS with the
// configured virtual services, installs the nftables filter, puts the shared
// MAC and the VIPs on the interface, connects to the local syncd, starts the
// coordinator node (membership, assignment, gRPC, metrics), tells systemd
// it is ready (and pings its watchdog when the unit sets WatchdogSec=), and
// on the way out drains, leaves and removes the filter.
// cmd/saru only parses flags, loads the configuration and turns signals
// into a context and reloads.
//
// # IPVS
//
// Every director holds the same IPVS table: the IPVS side of the configured
// services (package saru/config, checked by saru/services). [Run]
// reconciles it with services.Reconciler at start, before anything else is
// touched, again on reload (SIGHUP), and every ipvs.resync_interval
// (default 30 s) to repair changes made behind its back: services and real servers are created, updated and
// deleted until the kernel matches; run again, nothing changes. A bad
// configuration is refused before IPVS is touched; a kernel refusal stops the
// start and names the service or destination.
//
// saru manages only the IPVS services it is configured with and those it
// created before (its record, services.RecordFile in the state directory,
// see services.Plan); any other service in the kernel, from ipvsadm,
// keepalived or another tool, is left alone and logged. A service removed from the
// configuration is deleted at the next start or reload. On exit the IPVS
// table stays as it is (the director has drained first), so a restart
// changes nothing and keeps established connections.
//
// A kernel without IPVS is accepted (and logged) only when no service has an
// IPVS side.
//
// # What it does not do
//
// It holds no cluster logic (saru/node and saru/coord do), no filter logic
// (package filter), and no IPVS semantics (saru/services): it wires them.
// A reload applies only the services' IPVS fields; other changes need a
// restart and are refused, naming the fields.
package director
