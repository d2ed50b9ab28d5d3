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
// # Limitation: NAT bindings
//
// A NAT flow is created on the peer with both tuples intact (so the reply
// tuple names the real server and the SNAT address), but ctnetlink only
// sets a flow's NAT status bits (IPS_SRC_NAT, IPS_DST_NAT) through the
// CTA_NAT_SRC/CTA_NAT_DST attributes, which github.com/ti-mo/conntrack
// v0.6.0 cannot send; without those bits nf_nat does not rewrite the
// flow's packets on the peer. Stateful (non-NAT) flows are complete.
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
