package sharedmac

import (
	"context"
	"fmt"
	"net"
	"net/netip"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// ClusterTable is the name of the arp and inet tables InstallClusterARP owns.
const ClusterTable = "saru_cluster_mac"

// nfARPOut is the arp family's output hook (linux/netfilter_arp.h NF_ARP_OUT).
const nfARPOut = 1

// ARP header offsets for Ethernet/IPv4 (RFC 826).
const (
	arpSHAOffset = 8
	arpSPAOffset = 14
)

// InstallClusterARP sets up the CLUSTERIP-style receive path for IPv4 VIPs
// on ifname, in one atomic batch that replaces any previous copy:
//
//   - table arp saru_cluster_mac, chain output: an ARP packet sent from
//     ifname whose sender address is a VIP (replies for the VIP, and the
//     director's own requests from the VIP, which neighbours also learn
//     from) carries the cluster MAC as sender hardware address, as
//     CLUSTERIP's ARP mangling did;
//   - table inet saru_cluster_mac, chain prerouting (priority -350, before
//     the ownership filter): a frame that arrived on ifname for the cluster
//     MAC is marked as addressed to this host, as CLUSTERIP did; otherwise
//     the kernel treats it as multicast and TCP discards it.
//
// The interface keeps its own unicast MAC as the source of what it sends.
func (h *Helper) InstallClusterARP(ctx context.Context, ifname string, mac net.HardwareAddr, vips []netip.Addr) error {
	if len(mac) != 6 || mac[0]&1 == 0 {
		return fmt.Errorf("mac: invalid value %q: want a 6-byte multicast Ethernet address (first octet odd)", mac)
	}
	if len(vips) == 0 {
		return fmt.Errorf("vips: none given")
	}
	for i, v := range vips {
		if !v.Is4() {
			return fmt.Errorf("vips[%d]: invalid value %q: the cluster multicast MAC works for IPv4 only (IPv6 neighbour advertisements are not rewritten); use the shared unicast MAC for IPv6", i, v)
		}
	}
	if len(ifname) == 0 || len(ifname) >= unix.IFNAMSIZ {
		return fmt.Errorf("interface: invalid value %q", ifname)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	c, err := h.nft()
	if err != nil {
		return err
	}
	arpT := &nftables.Table{Name: ClusterTable, Family: nftables.TableFamilyARP}
	inetT := &nftables.Table{Name: ClusterTable, Family: nftables.TableFamilyINet}
	for _, t := range []*nftables.Table{arpT, inetT} {
		c.AddTable(t)
		c.DelTable(t)
		c.AddTable(t)
	}
	out := c.AddChain(&nftables.Chain{Name: "output", Table: arpT, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookRef(nfARPOut), Priority: nftables.ChainPriorityFilter})
	ifn := ifnameBytes(ifname)
	for _, v := range vips {
		c.AddRule(&nftables.Rule{Table: arpT, Chain: out, Exprs: []expr.Any{
			&expr.Meta{Key: expr.MetaKeyOIFNAME, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: ifn},
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: arpSPAOffset, Len: 4},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: v.AsSlice()},
			&expr.Immediate{Register: 1, Data: mac},
			&expr.Payload{OperationType: expr.PayloadWrite, SourceRegister: 1, Base: expr.PayloadBaseNetworkHeader,
				Offset: arpSHAOffset, Len: 6},
			&expr.Counter{},
		}})
	}
	pre := c.AddChain(&nftables.Chain{Name: "prerouting", Table: inetT, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookPrerouting, Priority: nftables.ChainPriorityRef(-350)})
	c.AddRule(&nftables.Rule{Table: inetT, Chain: pre, Exprs: []expr.Any{
		&expr.Meta{Key: expr.MetaKeyIIFNAME, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: ifn},
		&expr.Meta{Key: expr.MetaKeyIIFTYPE, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.NativeEndian.PutUint16(unix.ARPHRD_ETHER)},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseLLHeader, Offset: 0, Len: 6},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: mac},
		&expr.Immediate{Register: 1, Data: []byte{unix.PACKET_HOST}},
		&expr.Meta{Key: expr.MetaKeyPKTTYPE, SourceRegister: true, Register: 1},
		&expr.Counter{},
	}})
	if err := c.Flush(); err != nil {
		return fmt.Errorf("install tables arp and inet %s for %s on %s: %w", ClusterTable, mac, ifname, err)
	}
	return nil
}

// RemoveClusterARP deletes the tables InstallClusterARP created, if present.
func (h *Helper) RemoveClusterARP(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c, err := h.nft()
	if err != nil {
		return err
	}
	for _, fam := range []nftables.TableFamily{nftables.TableFamilyARP, nftables.TableFamilyINet} {
		t := &nftables.Table{Name: ClusterTable, Family: fam}
		c.AddTable(t) // makes the delete succeed when absent
		c.DelTable(t)
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("remove tables %s: %w", ClusterTable, err)
	}
	return nil
}

func (h *Helper) nft() (*nftables.Conn, error) {
	var opts []nftables.ConnOption
	if h.netns != 0 {
		opts = append(opts, nftables.WithNetNSFd(h.netns))
	}
	c, err := nftables.New(opts...)
	if err != nil {
		return nil, fmt.Errorf("open nftables netlink socket: %w", err)
	}
	return c, nil
}

func ifnameBytes(name string) []byte {
	b := make([]byte, unix.IFNAMSIZ)
	copy(b, name)
	return b
}
