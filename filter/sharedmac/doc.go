// Package sharedmac prepares a director's interface for an active-active VIP:
// every director must receive every frame for the VIP, so they share one
// link-layer address, as in the seed: every director gives the interface the
// same MAC and adds the same VIP (IPv6 without duplicate address detection,
// which would otherwise see the other directors as duplicates). The switch
// cannot learn a port for the MAC and floods. Works for IPv4 and IPv6.
// SetMAC and AddVIPs do this.
//
// Check reports the kernel settings that break a shared-MAC director
// (rp_filter, arp_ignore, arp_announce, IPv6 duplicate address detection and
// VIPs that failed it) with a message saying what goes wrong; Evaluate is
// its pure core.
//
// The package does not filter by bucket (package filter does) and does not
// touch any interface, address or table other than those it is given.
package sharedmac
