package daemon

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"testing"
	"time"

	ct "github.com/ti-mo/conntrack"

	"github.com/saru-lb/saru/deploy/nstest"
	"github.com/saru-lb/saru/syncd/conn"
	ctbackend "github.com/saru-lb/saru/syncd/conntrack"
	"github.com/saru-lb/saru/syncd/transport"
)

// startIn starts a node whose sync socket lives in namespace ns (its gRPC
// API listens on the host loopback, where snapshot pulls dial it).
func (c *cluster) startIn(l *lab, ns, id string, tc transport.Config) *testNode {
	c.t.Helper()
	return c.startInWith(l, ns, id, tc, nil)
}

// startInWith is startIn with a given backend (nil: a MemoryBackend).
func (c *cluster) startInWith(l *lab, ns, id string, tc transport.Config, backend conn.Backend) *testNode {
	c.t.Helper()
	cfg := c.config(id)
	cfg.Transport = tc
	var tr transport.Transport
	if err := nstest.In(ns, func() error {
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
	if backend == nil {
		backend = be
	}
	n, err := New(cfg, Deps{Backend: backend, Transport: tr, Listener: lis})
	if err != nil {
		c.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	tn := &testNode{Daemon: n, be: be, lossy: transport.NewLossy(tr, 0, 1), cancel: cancel, done: make(chan error, 1)}
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
	nstest.RequireRoot(t)
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
			c.following() // data sent while a receiver is still joining comes by snapshot, not by NACK
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

// TestIntegrationConntrackSync: a conntrack flow created in one namespace
// reaches the peer namespace's conntrack table through two syncds.
func TestIntegrationConntrackSync(t *testing.T) {
	nstest.RequireRoot(t)
	l := newLab(t, "synck", 2)
	c := newCluster(t, clusterOpts{})
	for i, ns := range l.nodes {
		var be *ctbackend.Backend
		if err := nstest.In(ns, func() error {
			var err error
			be, err = ctbackend.Open(ctbackend.Config{DumpInterval: time.Hour})
			return err
		}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { be.Close() })
		c.startInWith(l, ns, fmt.Sprintf("d%d", i), transport.Config{
			Group: netip.MustParseAddr("239.255.77.8"), Port: c.port, Interface: "sync0", TTL: 1,
		}, be)
	}
	c.following()
	var cc *ct.Conn
	if err := nstest.In(l.nodes[0], func() error {
		var err error
		cc, err = ct.Dial(nil)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	f := ct.NewFlow(6, ct.StatusConfirmed|ct.StatusSeenReply|ct.StatusAssured,
		netip.MustParseAddr("192.0.2.44"), netip.MustParseAddr("198.51.100.44"), 43210, 443, 600, 0x9)
	f.ProtoInfo.TCP = &ct.ProtoInfoTCP{State: 3} // established
	if err := cc.Create(f); err != nil {
		t.Fatalf("create flow in %s: %v", l.nodes[0], err)
	}
	var peer *ct.Conn
	if err := nstest.In(l.nodes[1], func() error {
		var err error
		peer, err = ct.Dial(nil)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	waitFor(t, 10*time.Second, "the flow in the peer namespace", func() (bool, string) {
		flows, err := peer.Dump(nil)
		if err != nil {
			return false, err.Error()
		}
		for _, got := range flows {
			if got.TupleOrig != f.TupleOrig {
				continue
			}
			ok := got.TupleReply == f.TupleReply && got.Mark == 0x9 && got.Status&ct.StatusAssured != 0 &&
				got.ProtoInfo.TCP != nil && got.ProtoInfo.TCP.State == 3
			return ok, fmt.Sprintf("%+v", got)
		}
		return false, fmt.Sprintf("%d flows, not ours", len(flows))
	})
	st := c.nodes[1].Stats("d0")
	if len(st.Peers) != 1 || st.Peers[0].ReceivedEntries == 0 {
		t.Fatalf("d1 stats %v", st)
	}
}
