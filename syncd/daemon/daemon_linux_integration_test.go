package daemon

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/saru-lb/saru/syncd/conn"
	"github.com/saru-lb/saru/syncd/transport"
)

// startIn starts a node whose sync socket lives in namespace ns (its gRPC
// API listens on the host loopback, where snapshot pulls dial it).
func (c *cluster) startIn(l *lab, ns, id string, tc transport.Config) *testNode {
	c.t.Helper()
	cfg := c.config(id)
	cfg.Transport = tc
	var tr transport.Transport
	if err := l.in(ns, func() error {
		var err error
		tr, err = transport.Open(context.Background(), tc)
		return err
	}); err != nil {
		c.t.Fatalf("transport in %s: %v", ns, err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		c.t.Fatal(err)
	}
	be := conn.NewMemoryBackend()
	n, err := New(cfg, Deps{Backend: be, Transport: tr, Listener: lis})
	if err != nil {
		c.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	tn := &testNode{Node: n, be: be, lossy: transport.NewLossy(tr, 0, 1), cancel: cancel, done: make(chan error, 1)}
	go func() { tn.done <- n.Run(ctx) }()
	<-n.Ready()
	c.nodes = append(c.nodes, tn)
	return tn
}

// TestIntegrationNamespacesNftLoss runs four syncds in network namespaces
// on a hub, over IPv4 and IPv6 multicast, with an nftables
// "numgen random" rule dropping incoming sync datagrams in every
// namespace: every entry reaches every peer.
func TestIntegrationNamespacesNftLoss(t *testing.T) {
	requireRoot(t)
	for _, tc := range []struct {
		name  string
		group string
		pct   int
	}{
		{"ipv4-10pct", "239.255.77.7", 10},
		{"ipv6-30pct", "ff12::7777", 30},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := newLab(t, "syncd", 4)
			c := newCluster(t, clusterOpts{})
			for i, ns := range l.nodes {
				l.dropRandom(ns, c.port, tc.pct)
				c.startIn(l, ns, fmt.Sprintf("d%d", i), transport.Config{
					Group: netip.MustParseAddr(tc.group), Port: c.port, Interface: "sync0", TTL: 1, ReadBuffer: 8 << 20,
				})
			}
			want := map[string][]conn.Entry{}
			for i, n := range c.nodes {
				want[n.ID()] = export(t, n, i, 0, 2000)
			}
			c.allHold(want, 60*time.Second)
			var retrans, lost uint64
			for _, n := range c.nodes {
				for _, p := range n.Stats("").Peers {
					retrans += p.RetransmittedPackets
					lost += p.LostPackets
				}
			}
			var drops []string
			for _, ns := range l.nodes {
				drops = append(drops, l.dropped(ns))
			}
			t.Logf("nft dropped %v datagrams per namespace; %d retransmissions received, %d packets given up (then caught up by snapshot)", drops, retrans, lost)
			if retrans == 0 {
				t.Fatal("no retransmissions: the loss rule did not bite")
			}
		})
	}
}
