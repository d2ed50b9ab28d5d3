// Package services turns the virtual services in saru's configuration into
// the IPVS table every director must hold, and reconciles a director's kernel
// table with it.
//
// It is pure: [Desired] validates configuration (errors name the field and
// value) and returns the normalised table ([Config.Entry] does it for one
// service, for configurations that embed services, like saru's own); [Diff] compares a desired table
// with the current one and returns the ordered operations that turn one into
// the other; [Check] proves a list of operations applies cleanly to a table
// before anything is sent. The applier ([Apply], [Reconcile]) runs operations
// through a small [Kernel] interface that *ipvs.Client satisfies, and touches
// nothing until the whole plan has been checked.
//
// The semantics follow ipvsadm and ldirectord: a virtual service is a VIP,
// port and protocol, or a firewall mark; the scheduler defaults to wlc and
// forwarding to direct routing ("gate"), as in ipvsadm; weight 0 makes a real
// server quiescent (no new connections, existing ones continue).
//
// [Render] prints services in the layout of ipvsadm -L -n (with --stats and
// --rate variants) from the saru.v1 messages that ListServices returns, and
// [ToProto] builds those messages from a kernel listing.
//
// # What it does not do
//
// It does not talk to the kernel itself (package saru/ipvs does), and cannot
// make a multi-step change atomic: IPVS has no transactions, so a kernel
// refusal in the middle of an applied plan leaves the earlier steps in place
// (the next reconciliation continues from there).
package services
