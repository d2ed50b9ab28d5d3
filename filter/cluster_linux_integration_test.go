package filter

import (
	"context"
	"math/rand/v2"
	"net"
	"net/netip"
	"strings"
	"testing"

	"github.com/saru-lb/saru/filter/sharedmac"
)

// joinCluster gives director d the CLUSTERIP-style cluster MAC for vip4.
func joinCluster(t *testing.T, d *netNS) {
	ctx := context.Background()
	h, err := sharedmac.Dial(sharedmac.WithNetNS(d.FD))
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	mac, _ := net.ParseMAC(clusterMAC)
	if err := h.JoinMulticastMAC(ctx, "eth0", mac); err != nil {
		t.Fatal(err)
	}
	if err := h.InstallClusterARP(ctx, "eth0", mac, []netip.Addr{vip4}); err != nil {
		t.Fatal(err)
	}
}

// TestIntegrationClusterMAC: the directors keep their own MACs and answer ARP
// for the VIP with the multicast cluster MAC; the client sends to it, every
// director receives, and the filter lets exactly the predicted one answer.
func TestIntegrationClusterMAC(t *testing.T) {
	requireRoot(t)
	h := newHub(t, true, hubConfig())
	rng := rand.New(rand.NewPCG(5, 6))
	assign := make([]int, hubBuckets)
	for b := range assign {
		assign[b] = rng.IntN(3)
	}
	h.apply(t, assign, []int{0, 1, 2})
	h.phaseFamilies(t, assign, []int{0, 1, 2}, 40000, []bool{false}, 300)
	neigh := h.client.Sh(t, "ip neigh show "+vip4.String())
	if !strings.Contains(neigh, clusterMAC) {
		t.Fatalf("client's neighbour entry for the VIP is not the cluster MAC: %s", neigh)
	}
	for i, d := range h.dirs {
		if link := d.Sh(t, "ip -o link show eth0"); strings.Contains(link, clusterMAC) {
			t.Fatalf("d%d: the interface itself carries the cluster MAC: %s", i+1, link)
		}
	}
}
