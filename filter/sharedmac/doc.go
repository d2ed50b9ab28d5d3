// Package sharedmac prepares a director's interface for an active-active VIP:
// every director must receive every frame for the VIP, so they share one
// link-layer address. Two ways are offered:
//
//   - Shared unicast MAC (the seed's way): every director gives the interface
//     the same MAC and adds the same VIP (IPv6 without duplicate address
//     detection, which would otherwise see the other directors as
//     duplicates). The switch cannot learn a port for the MAC and floods.
//     Works for IPv4 and IPv6. SetMAC and AddVIPs do this.
//
//   - Cluster multicast MAC (CLUSTERIP-style): each director keeps its own
//     MAC, joins a multicast cluster MAC on the interface (JoinMulticastMAC)
//     and answers ARP for the VIP with the cluster MAC (InstallClusterARP:
//     an nftables arp-family rule rewrites the sender hardware address of
//     the ARP packets it sends from the VIP, and an inet rule marks frames to the cluster MAC as
//     addressed to the host, without which TCP drops them). IPv4 only: the
//     kernel's IPv6 neighbour advertisements are not rewritten, so IPv6
//     neighbours learn each director's own MAC; use the shared unicast MAC
//     for IPv6. Some routers refuse ARP replies carrying a multicast MAC and
//     need a static ARP entry.
//
// Check reports the kernel settings that break a shared-MAC director
// (rp_filter, arp_ignore, arp_announce, IPv6 duplicate address detection and
// VIPs that failed it) with a message saying what goes wrong; Evaluate is
// its pure core.
//
// The package does not filter by bucket (package filter does) and does not
// touch any interface, address or table other than those it is given.
package sharedmac
