// Package ipvs controls the kernel's IP Virtual Server over generic netlink
// (family "IPVS"): virtual services, their destinations (real servers), the
// kernel's connection-sync daemons, connection timeouts, and listings with
// counters and rates.
//
// Everything is typed: addresses are netip values, schedulers, forwarding
// methods and flags are named constants, and every call takes a struct, never
// positional strings. [Client] is a thin adapter: one request per call, no
// caching, no retries, no goroutines. Errors name the service or destination
// the kernel refused and wrap the kernel's errno (errors.Is(err,
// unix.EEXIST) works).
//
// The kernel keeps IPVS state per network namespace; a Client acts on the
// namespace given in [Config] (default: the caller's).
//
// # What it does not do
//
// It does not decide what the table should hold (package saru/services does)
// or list or insert individual connections: the kernel offers no netlink call
// for that (see /proc/net/ip_vs_conn and the sync protocol).
package ipvs
