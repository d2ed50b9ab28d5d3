// Package conntrack is a syncd backend over nf_conntrack
// (github.com/ti-mo/conntrack): it exports the local conntrack table (an
// initial dump, NEW and UPDATE events, and a periodic re-dump so idle
// flows' timeouts stay fresh on the peers) and imports the peers' flows
// by create, or update when the flow exists.
//
// # Mapping
//
// A flow becomes a conn.Entry: the original tuple's source is the client,
// its destination the virtual address, the reply tuple's source the real
// server (DNAT), the mark the fwmark, the TCP state the state, the
// conntrack status bits (IPS_*) the flags. The reply tuple's destination
// (SNAT) and the zone travel as persistence-engine data under the name
// PEName. ICMP and expected (related) flows are not synced.
//
// # NAT bindings
//
// A NAT flow is created as conntrackd does: the reply tuple un-NATed plus
// CTA_NAT_DST (real server) and/or CTA_NAT_SRC (SNAT address), so the
// kernel computes the reply tuple and sets IPS_DST_NAT/IPS_SRC_NAT, and
// nf_nat rewrites the flow's packets on the peer. ti-mo/conntrack v0.6.0
// cannot send the NAT attributes, so NATCreate builds that message.
//
// # Loops
//
// A flow this backend imported raises NEW/UPDATE events on this host; they
// are not exported again for a short while (SuppressFor), so a peer's
// flow does not come back as ours.
//
// FlowToEntry and EntryToFlow are pure; Backend is the thin netlink
// adapter.
package conntrack
