package daemon

import (
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	rpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"

	syncdpb "github.com/saru-lb/saru/proto/syncd/v1"
	"github.com/saru-lb/saru/syncd/conn"
	"github.com/saru-lb/saru/syncd/reliable"
	"github.com/saru-lb/saru/syncd/transport"
	"github.com/saru-lb/saru/syncd/wire"
)

// observer is a bystander on the sync group: it captures datagrams and
// injects its own, as an attacker on the LAN would.
type observer struct {
	tr  transport.Transport
	got chan []byte
}

func (c *cluster) observe(t *testing.T) *observer {
	cfg := c.config("observer").Transport
	tr, err := transport.Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	o := &observer{tr: tr, got: make(chan []byte, 4096)}
	go func() {
		buf := make([]byte, 65536)
		for {
			n, _, err := tr.Recv(buf)
			if err != nil {
				return
			}
			select {
			case o.got <- append([]byte(nil), buf[:n]...):
			default:
			}
		}
	}()
	t.Cleanup(func() { tr.Close() })
	return o
}

// capture returns the first datagram from sender matching want.
func (o *observer) capture(t *testing.T, sender string, want func(*syncdpb.Packet) bool) []byte {
	t.Helper()
	kr, _ := wire.NewKeyring(mustKeys(t, testKey))
	s := wire.NewSealer(kr)
	deadline := time.After(5 * time.Second)
	for {
		select {
		case dg := <-o.got:
			var p syncdpb.Packet
			if r, _ := s.OpenPacket(dg, time.Now(), &p); r == wire.OK && p.Sender == sender && want(&p) {
				return dg
			}
		case <-deadline:
			t.Fatal("nothing captured")
		}
	}
}

func mustKeys(t *testing.T, s string) []wire.Key {
	t.Helper()
	k, err := wire.ParseKeyFile([]byte(s))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// TestAttacksNeverReachTheTable: forged, truncated, wrong-key and replayed
// datagrams are rejected, counted by reason, and never applied.
func TestAttacksNeverReachTheTable(t *testing.T) {
	c := newCluster(t, clusterOpts{})
	d0, d1 := c.start("d0"), c.start("d1")
	obs := c.observe(t)

	// A genuine entry with a short timeout, captured on the wire.
	e := testEntry(0, 1)
	e.Timeout = 1
	if err := d0.be.Export(context.Background(), []conn.Entry{e}); err != nil {
		t.Fatal(err)
	}
	genuine := obs.capture(t, "d0", func(p *syncdpb.Packet) bool { return p.Sequence != 0 })
	heartbeat := obs.capture(t, "d0", func(p *syncdpb.Packet) bool { return p.Heartbeat != nil })
	waitFor(t, 5*time.Second, "entry on d1", func() (bool, string) { _, ok := d1.Entry(e.Key()); return ok, "" })
	waitFor(t, 5*time.Second, "entry expiry on d1", func() (bool, string) { _, ok := d1.Entry(e.Key()); return !ok, "" })
	before := d1.Stats("d0").Peers[0]

	// Forged: a foreign entry signed with a guessed key under the real key id.
	forgedEntry := testEntry(9, 9)
	forgedKR, _ := wire.NewKeyring([]wire.Key{{ID: 1, Secret: []byte("not-the-cluster-key-000000000000")}})
	wrongIDKR, _ := wire.NewKeyring([]wire.Key{{ID: 7, Secret: []byte("not-the-cluster-key-000000000000")}})
	seal := func(kr *wire.Keyring, seq uint64) []byte {
		p := &wire.Packer{Budget: 1200}
		p.Add(&forgedEntry)
		dg, err := wire.NewSealer(kr).SealPacket(nil, &syncdpb.Packet{Sender: "d0", Incarnation: 1 << 62, Sequence: seq, Batches: p.Batches()})
		if err != nil {
			t.Fatal(err)
		}
		return dg
	}
	tampered := append([]byte(nil), genuine...)
	tampered[len(tampered)/2] ^= 0x40 // flip a bit inside the body
	attacks := []struct {
		name   string
		dg     []byte
		reason string
	}{
		{"forged with a guessed key", seal(forgedKR, 1), "bad_mac"},
		{"wrong key id", seal(wrongIDKR, 1), "unknown_key"},
		{"tampered genuine packet", tampered, "bad_mac"},
		{"truncated to the header", genuine[:8], "truncated"},
		{"truncated tag", genuine[:len(genuine)-3], "bad_mac"},
		{"not ours", []byte("GET / HTTP/1.1\r\n\r\n plus padding"), "bad_magic"},
	}
	for _, a := range attacks {
		for i := 0; i < 3; i++ {
			if err := obs.tr.Send(a.dg); err != nil {
				t.Fatal(err)
			}
		}
	}
	// Replays of genuine datagrams: the expired entry must not come back.
	for i := 0; i < 3; i++ {
		_ = obs.tr.Send(genuine)
		_ = obs.tr.Send(heartbeat)
	}
	want := map[string]uint64{}
	for _, a := range attacks {
		want[a.reason] += 3
	}
	waitFor(t, 5*time.Second, "rejections counted", func() (bool, string) {
		st := d1.Stats("")
		for r, n := range want {
			if st.Rejected[r] < n {
				return false, r
			}
		}
		p := d1.Stats("d0").Peers[0]
		return p.RejectedReplay >= before.RejectedReplay+6, "replays"
	})
	time.Sleep(100 * time.Millisecond)
	for _, n := range []*testNode{d0, d1} {
		if _, ok := n.Entry(forgedEntry.Key()); ok {
			t.Fatalf("%s holds the forged entry", n.ID())
		}
		if _, ok := n.be.Imported()[forgedEntry.Key()]; ok {
			t.Fatalf("%s imported the forged entry", n.ID())
		}
	}
	if _, ok := d1.Entry(e.Key()); ok {
		t.Fatal("a replayed packet brought an expired entry back")
	}
	// Forgeries from d0's address say nothing about d0 (a source address
	// is free to spoof): they are counted by reason only.
	if p := d1.Stats("d0").Peers[0]; p.RejectedAuth != 0 {
		t.Errorf("forgeries from d0's address charged to d0: %+v", p)
	}

	// The same counts, labelled by reason, in the Prometheus metrics.
	reg := prometheus.NewRegistry()
	reg.MustRegister(d1.Daemon)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != "syncd_packets_rejected_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			got[m.GetLabel()[0].GetValue()] = m.GetCounter().GetValue()
		}
	}
	for r, n := range want {
		if got[r] < float64(n) {
			t.Errorf("metric syncd_packets_rejected_total{reason=%q} = %v, want >= %d", r, got[r], n)
		}
	}
}

// TestKeyRollover: add the new key everywhere, switch senders to it one at
// a time, then drop the old one; entries flow throughout.
func TestKeyRollover(t *testing.T) {
	const keyB = "2 f0f1f2f3f4f5f6f7f8f9fafbfcfdfefff0f1f2f3f4f5f6f7f8f9fafbfcfdfeff\n"
	c := newCluster(t, clusterOpts{})
	nodes := []*testNode{c.start("d0"), c.start("d1")}
	n := 0
	step := func(name string, keys map[string]string) {
		for _, nd := range nodes {
			if k, ok := keys[nd.ID()]; ok {
				if err := os.WriteFile(filepath.Join(c.keyDir, nd.ID()+".key"), []byte(k), 0o600); err != nil {
					t.Fatal(err)
				}
				if err := nd.ReloadKeys(); err != nil {
					t.Fatal(err)
				}
			}
		}
		for i, nd := range nodes {
			e := testEntry(i, n)
			n++
			if err := nd.be.Export(context.Background(), []conn.Entry{e}); err != nil {
				t.Fatal(err)
			}
			other := nodes[1-i]
			waitFor(t, 5*time.Second, name+": entry from "+nd.ID(), func() (bool, string) { _, ok := other.Entry(e.Key()); return ok, "" })
		}
	}
	step("accept new", map[string]string{"d0": testKey + keyB, "d1": testKey + keyB})
	step("d1 sends new", map[string]string{"d1": keyB + testKey})
	step("d0 sends new", map[string]string{"d0": keyB + testKey})
	step("old key removed", map[string]string{"d0": keyB, "d1": keyB})
}

// TestJoinPullsSnapshot: a director joining late pulls everything from a
// ready peer and reports the snapshot complete, without asking its peers
// to resend their history.
func TestJoinPullsSnapshot(t *testing.T) {
	c := newCluster(t, clusterOpts{})
	want := map[string][]conn.Entry{}
	for i := 0; i < 3; i++ {
		n := c.start(string(rune('a' + i)))
		want[n.ID()] = export(t, n, i, 0, 1500)
	}
	c.allHold(want, 10*time.Second)
	waitFor(t, 5*time.Second, "ready", func() (bool, string) { return c.nodes[0].Status().Ready, "" })
	late := c.start("late")
	waitFor(t, 10*time.Second, "late joiner's snapshot", func() (bool, string) {
		st := late.Status()
		return st.SnapshotState == syncdpb.SnapshotState_SNAPSHOT_STATE_COMPLETE && st.Entries == 4500, st.String()
	})
	for origin, es := range want {
		for _, e := range es {
			got, ok := late.Entry(e.Key())
			if !ok || got.Origin != origin {
				t.Fatalf("late joiner lacks %v from %s", e.ClientAddr, origin)
			}
		}
	}
	if got := len(late.be.Imported()); got != 4500 {
		t.Fatalf("late joiner's backend imported %d of 4500", got)
	}
	// It took the peers' history by snapshot: NACKing it would have made
	// every peer resend its whole retransmit ring to every receiver.
	for _, p := range late.Stats("").Peers {
		if p.RetransmittedPackets != 0 || p.LostPackets != 0 {
			t.Errorf("late joiner, peer %s: %d packets retransmitted to it, %d lost", p.PeerId, p.RetransmittedPackets, p.LostPackets)
		}
	}
}

// TestFarBehindFallsBackToSnapshot: a receiver that misses more than the
// sender's retransmit ring gives the gap up and pulls a snapshot of that
// sender's entries.
func TestFarBehindFallsBackToSnapshot(t *testing.T) {
	c := newCluster(t, clusterOpts{reliable: reliable.Config{RingSize: 4}})
	d0, d1 := c.start("d0"), c.start("d1")
	c.following()
	d1.lossy.SetLoss(1)
	es := export(t, d0, 0, 0, 2000) // ~45 datagrams, ring of 4
	time.Sleep(100 * time.Millisecond)
	d1.lossy.SetLoss(0)
	c.allHold(map[string][]conn.Entry{"d0": es}, 10*time.Second)
	// The snapshot's entries can be visible a moment before its counter.
	waitFor(t, 5*time.Second, "a give-up and a catch-up snapshot", func() (bool, string) {
		p := d1.Stats("d0").Peers[0]
		return p.LostPackets > 0 && p.Snapshots > 0, p.String()
	})
}

func TestAPI(t *testing.T) {
	c := newCluster(t, clusterOpts{})
	d0, d1 := c.start("d0"), c.start("d1")
	c.following()
	es := export(t, d0, 0, 0, 250)
	udp := testEntry(1, 7)
	udp.Protocol = conn.ProtoUDP
	udp.VirtualAddr = netip.MustParseAddr("198.51.100.99")
	if err := d1.be.Export(context.Background(), []conn.Entry{udp}); err != nil {
		t.Fatal(err)
	}
	c.allHold(map[string][]conn.Entry{"d0": es, "d1": {udp}}, 10*time.Second)

	cc, err := grpc.NewClient(d1.APIAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	ctx := context.Background()
	cl := syncdpb.NewSyncClient(cc)

	seen := map[string]bool{}
	token := ""
	for {
		resp, err := cl.ListConnections(ctx, &syncdpb.ListConnectionsRequest{Origin: "d0", PageSize: 40, PageToken: token})
		if err != nil {
			t.Fatal(err)
		}
		for _, cn := range resp.Connections {
			k := netip.AddrPortFrom(netip.AddrFrom4([4]byte(cn.ClientAddress)), uint16(cn.ClientPort)).String()
			if seen[k] || cn.Origin != "d0" {
				t.Fatalf("listed %s twice or from %s", k, cn.Origin)
			}
			seen[k] = true
		}
		if token = resp.NextPageToken; token == "" {
			break
		}
	}
	if len(seen) != 250 {
		t.Fatalf("paged listing returned %d of 250", len(seen))
	}
	for _, tc := range []struct {
		req  *syncdpb.ListConnectionsRequest
		want int
	}{
		{&syncdpb.ListConnectionsRequest{Protocol: "udp"}, 1},
		{&syncdpb.ListConnectionsRequest{Vip: "198.51.100.99"}, 1},
		{&syncdpb.ListConnectionsRequest{Vip: "198.51.100.10", RealServer: "192.168.1.3"}, 31},
		{&syncdpb.ListConnectionsRequest{Origin: "nobody"}, 0},
	} {
		resp, err := cl.ListConnections(ctx, tc.req)
		if err != nil || len(resp.Connections) != tc.want {
			t.Errorf("%v: %d connections, err %v; want %d", tc.req, len(resp.GetConnections()), err, tc.want)
		}
	}
	for _, bad := range []*syncdpb.ListConnectionsRequest{{Vip: "not-an-ip"}, {Protocol: "icmpx"}, {PageToken: "zz"}, {PageSize: 1 << 20}} {
		if _, err := cl.ListConnections(ctx, bad); status.Code(err) != codes.InvalidArgument {
			t.Errorf("%v: %v, want InvalidArgument", bad, err)
		}
	}
	if _, err := cl.GetStats(ctx, &syncdpb.GetStatsRequest{PeerId: "nobody"}); status.Code(err) != codes.NotFound {
		t.Errorf("stats of unknown peer: %v", err)
	}
	st, err := cl.GetStats(ctx, &syncdpb.GetStatsRequest{})
	if err != nil || st.EntriesByOrigin["d0"] != 250 || st.EntriesByOrigin["d1"] != 1 || len(st.Peers) != 1 || st.Peers[0].ReceivedEntries != 250 {
		t.Fatalf("stats %v %v", st, err)
	}

	// Server reflection lists the service, as grpcurl needs.
	rc, err := rpb.NewServerReflectionClient(cc).ServerReflectionInfo(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := rc.Send(&rpb.ServerReflectionRequest{MessageRequest: &rpb.ServerReflectionRequest_ListServices{}}); err != nil {
		t.Fatal(err)
	}
	resp, err := rc.Recv()
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, s := range resp.GetListServicesResponse().GetService() {
		found = found || s.Name == "syncd.v1.Sync"
	}
	if !found {
		t.Fatalf("reflection does not list syncd.v1.Sync: %v", resp)
	}
}
