// Package services is the one home of saru's IPVS virtual services: the
// table every director must hold, how to get there from what the kernel
// has, and the record of what saru owns. The director and the lab both
// change IPVS through its [Reconciler] and nothing else.
//
// # Pure decisions
//
// These take tables and return decisions; they touch no kernel or file:
//
//   - [Spec.Entry] and [Desired] validate a configured service (its
//     identity typed by saru/config; errors name the field and value) and
//     return the normalised IPVS entry.
//   - [Diff] returns the ordered operations that turn one table into
//     another; [Plan] does it for the services saru manages only (those
//     configured and those its record says it created), leaving every other
//     service in the kernel alone as foreign.
//   - [Check] proves a list of operations applies cleanly to a table before
//     anything is sent.
//   - [ParseRecord] decodes the ownership record; [ToProto] turns a kernel
//     listing into the saru.v1 messages ListServices returns.
//
// # Applying
//
// These do I/O, as thin adapters around the decisions above: [Apply] runs a
// checked plan through a small [Kernel] interface that *ipvs.Client
// satisfies; [Reconciler] lists the kernel's table, plans, keeps the
// [Record] file in the director's state directory, and applies; [Lister]
// serves ListServices from a kernel listing.
//
// The semantics follow ipvsadm and ldirectord: a virtual service is a VIP,
// port and protocol, or a firewall mark; the scheduler defaults to wlc and
// forwarding to direct routing ("gate"), as in ipvsadm; weight 0 makes a real
// server quiescent (no new connections, existing ones continue).
//
// # What it does not do
//
// It does not speak netlink (package saru/ipvs does), parse saru's YAML
// (saru/config does, handing over a [Spec] per service), or print tables for
// people (saructl does). It cannot make a multi-step change atomic: IPVS has
// no transactions, so a kernel refusal in the middle of an applied plan
// leaves the earlier steps in place (the next reconciliation continues from
// there, and the record already names what may have been created).
package services
