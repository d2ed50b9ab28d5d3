package node_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/saru-lb/saru/deploy/nstest"
	"github.com/saru-lb/saru/filter/bucket"
	sarupb "github.com/saru-lb/saru/proto/saru/v1"
	"github.com/saru-lb/saru/saru/config"
	"github.com/saru-lb/saru/saru/node"
	"github.com/saru-lb/saru/saru/partition"
)

const (
	testBuckets = 256
	testToken   = "s3cret-token"
)

// fakeFilter records the installed owned set and when it changed.
type fakeFilter struct {
	mu    sync.Mutex
	owned []uint32
	at    time.Time
}

func (f *fakeFilter) Apply(ctx context.Context, owned []uint32) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !slices.Equal(f.owned, owned) {
		f.at = time.Now()
	}
	f.owned = slices.Clone(owned)
	return nil
}

func (f *fakeFilter) Counters(ctx context.Context) ([]*sarupb.RuleCounter, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return []*sarupb.RuleCounter{{Chain: "prerouting", Handle: 1, Description: fmt.Sprintf("owned %d buckets -> accept", len(f.owned)), Packets: 7, Bytes: 420}}, nil
}

func (f *fakeFilter) get() ([]uint32, time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.owned), f.at
}

// fakeSync is a syncd that holds every peer's connections once ready.
type fakeSync struct{ ready atomic.Bool }

func (s *fakeSync) Ready(context.Context) (bool, error)         { return s.ready.Load(), nil }
func (s *fakeSync) Holds(context.Context, string) (bool, error) { return true, nil }

type director struct {
	id     string
	n      *node.Node
	filter *fakeFilter
	sync   *fakeSync
}

type testOpts struct {
	fast       bool
	seed       uint32
	buckets    int
	joinDelay  time.Duration
	syncReady  bool
	noSync     bool
	verboseLog bool
	probe      time.Duration  // memberlist probe interval; the timeout is half
	tls        *node.Options  // ServerCreds and ClientCreds, when set
	marker     string         // drain marker file
	gossip     netip.AddrPort // gossip bind address; zero: 127.0.0.1, any port
	log        *slog.Logger   // replaces the test logger
	registry   *prometheus.Registry
}

func defaults() testOpts {
	return testOpts{fast: true, seed: 0x5eed, buckets: testBuckets, joinDelay: 30 * time.Second, syncReady: true, probe: 200 * time.Millisecond}
}

func logger(verbose bool) *slog.Logger {
	if verbose || os.Getenv("SARU_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

func startDirector(t testing.TB, id string, seeds []string, o testOpts) *director {
	t.Helper()
	d, err := tryStartDirector(t, id, seeds, o)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// tryStartDirector starts a director and returns the error of its start.
func tryStartDirector(t testing.TB, id string, seeds []string, o testOpts) (*director, error) {
	t.Helper()
	if !o.gossip.IsValid() {
		o.gossip = netip.MustParseAddrPort("127.0.0.1:0")
	}
	cfg := config.Config{
		ID: id, Name: id, Weight: 1, Buckets: o.buckets, Seed: o.seed,
		Services:      []config.Service{{VIP: netip.MustParseAddr("192.0.2.10"), Protocols: []bucket.Protocol{bucket.TCP}, Port: 80, Sense: bucket.SrcPort}},
		GossipBind:    o.gossip,
		Seeds:         seeds,
		ProbeInterval: o.probe, ProbeTimeout: o.probe / 2, SuspicionMult: 2, GossipInterval: 50 * time.Millisecond,
		Tick: 20 * time.Millisecond, JoinDelay: o.joinDelay, Settle: 300 * time.Millisecond, FastFailover: o.fast,
		DrainConfirmTimeout: 3 * time.Second, DrainTimeout: 20 * time.Second,
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	d := &director{id: id, filter: &fakeFilter{}, sync: &fakeSync{}}
	d.sync.ready.Store(o.syncReady)
	opts := node.Options{Config: cfg, Filter: d.filter, FilterTable: "inet saru", Token: testToken, Listener: lis, Logger: logger(o.verboseLog)}
	if o.registry != nil {
		opts.Registry = o.registry
	}
	if o.log != nil {
		opts.Logger = o.log
	}
	if !o.noSync {
		opts.Sync = d.sync
	}
	opts.DrainMarker = o.marker
	if o.tls != nil {
		opts.ServerCreds, opts.ClientCreds = o.tls.ServerCreds, o.tls.ClientCreds
	}
	n, err := node.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(context.Background()); err != nil {
		return d, err
	}
	d.n = n
	t.Cleanup(n.Stop)
	return d, nil
}

// startCluster starts directors d1..dk joined through d1.
func startCluster(t testing.TB, k int, o testOpts) []*director {
	t.Helper()
	var ds []*director
	for i := 1; i <= k; i++ {
		var seeds []string
		if i > 1 {
			seeds = []string{ds[0].n.GossipAddr()}
		}
		ds = append(ds, startDirector(t, fmt.Sprintf("d%d", i), seeds, o))
	}
	return ds
}

// converged checks that the directors agree on leader and epoch, have
// applied it, and that their installed sets cover every bucket once.
func converged(ds []*director, buckets int) error {
	if err := covered(ds, buckets); err != nil {
		return err
	}
	st0 := ds[0].n.Status()
	for _, d := range ds {
		st := d.n.Status()
		if st.Epoch != st0.Epoch || st.Applied != st.Epoch || st.Leader != st0.Leader || st.Live != len(ds) {
			return fmt.Errorf("%s: %+v; %s: %+v", ds[0].id, st0, d.id, st)
		}
	}
	return nil
}

// settled is converged with every director active.
func settled(ds []*director, buckets int) error {
	if err := converged(ds, buckets); err != nil {
		return err
	}
	for _, d := range ds {
		if st := d.n.Status(); st.State != partition.Active || st.Owned == 0 {
			return fmt.Errorf("%s is %s with %d buckets", d.id, st.State, st.Owned)
		}
	}
	return nil
}

func covered(ds []*director, buckets int) error {
	count := make([]int, buckets)
	for _, d := range ds {
		owned, _ := d.filter.get()
		for _, b := range owned {
			count[b]++
		}
	}
	var none, dup int
	for _, c := range count {
		if c == 0 {
			none++
		}
		if c > 1 {
			dup++
		}
	}
	if none > 0 || dup > 0 {
		return fmt.Errorf("%d buckets unowned, %d owned twice", none, dup)
	}
	return nil
}

func client(t testing.TB, addr string) sarupb.ClusterClient {
	t.Helper()
	c, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return sarupb.NewClusterClient(c)
}

func withToken(ctx context.Context, tok string) context.Context {
	return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+tok)
}

func TestClusterElectsAndDistributes(t *testing.T) {
	ds := startCluster(t, 3, defaults())
	nstest.WaitFor(t, 10*time.Second, "three directors converge", func() error { return settled(ds, testBuckets) })
	for _, d := range ds {
		if st := d.n.Status(); st.Leader != "d1" || st.State != partition.Active {
			t.Errorf("%s: %+v, want leader d1 and active", d.id, st)
		}
		if owned, _ := d.filter.get(); len(owned) < testBuckets/3-1 || len(owned) > testBuckets/3+1 {
			t.Errorf("%s owns %d buckets, want about %d", d.id, len(owned), testBuckets/3)
		}
	}
	// Every director serves the same assignment; WhoOwns agrees with it.
	ctx := context.Background()
	a1, err := client(t, ds[2].n.Addr()).GetAssignment(ctx, &sarupb.GetAssignmentRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if a1.Assignment.BucketCount != testBuckets || a1.Assignment.Epoch != ds[0].n.Status().Epoch {
		t.Fatalf("d3 serves %v", a1.Assignment)
	}
	who, err := client(t, ds[1].n.Addr()).WhoOwns(ctx, &sarupb.WhoOwnsRequest{Protocol: "tcp", SrcAddr: "198.51.100.1", SrcPort: 40001, DstAddr: "192.0.2.10", DstPort: 80})
	if err != nil {
		t.Fatal(err)
	}
	if who.Bucket != 40001&(testBuckets-1) {
		t.Fatalf("bucket %d, want %d", who.Bucket, 40001&(testBuckets-1))
	}
	for _, d := range ds {
		owned, _ := d.filter.get()
		if slices.Contains(owned, who.Bucket) != (who.Owner == d.id) {
			t.Errorf("WhoOwns says %s owns bucket %d; %s installed it: %v", who.Owner, who.Bucket, d.id, slices.Contains(owned, who.Bucket))
		}
	}
	icmp, err := client(t, ds[1].n.Addr()).WhoOwns(ctx, &sarupb.WhoOwnsRequest{Protocol: "icmp", SrcAddr: "198.51.100.1", DstAddr: "192.0.2.10"})
	if err != nil {
		t.Fatal(err)
	}
	if want := bucket.OfAddr(netip.MustParseAddr("198.51.100.1"), testBuckets, 0x5eed); icmp.Bucket != want || icmp.Sense != sarupb.Sense_SENSE_SRC_ADDR {
		t.Errorf("echo request: bucket %d sense %v, want %d by source address", icmp.Bucket, icmp.Sense, want)
	}
	for _, bad := range []*sarupb.WhoOwnsRequest{
		{Protocol: "sctp", SrcAddr: "198.51.100.1", DstAddr: "192.0.2.10", DstPort: 80},
		{Protocol: "tcp", SrcAddr: "2001:db8::1", DstAddr: "192.0.2.10", DstPort: 80},
		{Protocol: "tcp", SrcAddr: "nonsense", DstAddr: "192.0.2.10", DstPort: 80},
		{Protocol: "tcp", SrcAddr: "198.51.100.1", SrcPort: 70000, DstAddr: "192.0.2.10", DstPort: 80},
	} {
		if _, err := client(t, ds[1].n.Addr()).WhoOwns(ctx, bad); status.Code(err) != codes.InvalidArgument {
			t.Errorf("WhoOwns(%v): %v, want InvalidArgument", bad, err)
		}
	}
	if _, err := client(t, ds[1].n.Addr()).WhoOwns(ctx, &sarupb.WhoOwnsRequest{Protocol: "tcp", SrcAddr: "198.51.100.1", SrcPort: 1, DstAddr: "192.0.2.99", DstPort: 80}); status.Code(err) != codes.NotFound {
		t.Errorf("WhoOwns for an unknown VIP: %v, want NotFound", err)
	}
	members, err := client(t, ds[0].n.Addr()).ListMembers(ctx, &sarupb.ListMembersRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(members.Members) != 3 || !members.Members[0].Leader || members.Members[2].Id != "d3" || members.Members[2].GossipAddress == "" {
		t.Errorf("members: %v", members.Members)
	}
}

func TestClusterSurvivesKill(t *testing.T) {
	for _, victim := range []int{1, 0} { // a follower, then the leader
		t.Run(fmt.Sprintf("kill-d%d", victim+1), func(t *testing.T) {
			ds := startCluster(t, 3, defaults())
			nstest.WaitFor(t, 10*time.Second, "converge", func() error { return settled(ds, testBuckets) })
			before := ds[0].n.Status().Epoch
			ds[victim].n.Stop() // no leave: failure detection must notice
			rest := slices.Delete(slices.Clone(ds), victim, victim+1)
			nstest.WaitFor(t, 5*time.Second, "survivors own every bucket", func() error { return converged(rest, testBuckets) })
			for _, d := range rest {
				st := d.n.Status()
				if st.Leader != rest[0].id || st.Epoch <= before {
					t.Errorf("%s: %+v, want leader %s and an epoch after %d", d.id, st, rest[0].id, before)
				}
			}
		})
	}
}

func TestDrainUndrain(t *testing.T) {
	ds := startCluster(t, 3, defaults())
	nstest.WaitFor(t, 10*time.Second, "converge", func() error { return settled(ds, testBuckets) })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c := client(t, ds[0].n.Addr()) // d1 forwards to d2

	if _, err := c.Drain(ctx, &sarupb.DrainRequest{NodeId: "d2"}); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("drain without token: %v, want Unauthenticated", err)
	}
	if _, err := c.Drain(withToken(ctx, "wrong"), &sarupb.DrainRequest{NodeId: "d2"}); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("drain with a wrong token: %v, want PermissionDenied", err)
	}
	if _, err := c.Drain(withToken(ctx, testToken), &sarupb.DrainRequest{NodeId: "d9"}); status.Code(err) != codes.NotFound {
		t.Fatalf("drain of an unknown director: %v, want NotFound", err)
	}
	if _, err := c.Undrain(withToken(ctx, testToken), &sarupb.UndrainRequest{NodeId: "d2"}); status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("undrain of an active director: %v, want FailedPrecondition", err)
	}
	epoch := ds[0].n.Status().Epoch
	if e := ds[1].n.Status().Epoch; e != epoch {
		t.Fatalf("refused calls changed the assignment: epoch %d -> %d", epoch, e)
	}

	resp, err := c.Drain(withToken(ctx, testToken), &sarupb.DrainRequest{NodeId: "d2"})
	if err != nil {
		t.Fatal(err)
	}
	if resp.State != sarupb.MemberState_MEMBER_STATE_DRAINING || resp.Epoch <= epoch {
		t.Fatalf("drain: %v", resp)
	}
	if owned, _ := ds[1].filter.get(); len(owned) != 0 {
		t.Fatalf("drained d2 still owns %d buckets", len(owned))
	}
	nstest.WaitFor(t, 5*time.Second, "d1 and d3 own every bucket", func() error { return covered([]*director{ds[0], ds[2]}, testBuckets) })

	// The last but one cannot drain while d2 is drained.
	if _, err := client(t, ds[2].n.Addr()).Drain(withToken(ctx, testToken), &sarupb.DrainRequest{NodeId: "d1"}); err != nil {
		t.Fatalf("drain d1 with d3 active: %v", err)
	}
	if _, err := c.Drain(withToken(ctx, testToken), &sarupb.DrainRequest{NodeId: "d3"}); status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("drain of the last active director: %v, want FailedPrecondition", err)
	}
	for _, id := range []string{"d1", "d2"} {
		u, err := c.Undrain(withToken(ctx, testToken), &sarupb.UndrainRequest{NodeId: id})
		if err != nil {
			t.Fatalf("undrain %s: %v", id, err)
		}
		if u.State != sarupb.MemberState_MEMBER_STATE_ACTIVE {
			t.Fatalf("undrain %s: %v", id, u)
		}
	}
	nstest.WaitFor(t, 5*time.Second, "back to three", func() error {
		if err := converged(ds, testBuckets); err != nil {
			return err
		}
		if owned, _ := ds[1].filter.get(); len(owned) == 0 {
			return fmt.Errorf("d2 owns nothing")
		}
		return nil
	})
}

func TestJoinAfterSyncSnapshot(t *testing.T) {
	ds := startCluster(t, 3, defaults())
	nstest.WaitFor(t, 10*time.Second, "converge", func() error { return settled(ds, testBuckets) })
	o := defaults()
	o.syncReady = false
	d4 := startDirector(t, "d4", []string{ds[1].n.GossipAddr()}, o)
	all := append(slices.Clone(ds), d4)
	nstest.WaitFor(t, 5*time.Second, "d4 seen as joining", func() error {
		if err := converged(all, testBuckets); err != nil {
			return err
		}
		if st := d4.n.Status(); st.State != partition.Joining || st.Owned != 0 {
			return fmt.Errorf("d4: %+v", st)
		}
		return nil
	})
	time.Sleep(500 * time.Millisecond)
	if st := d4.n.Status(); st.State != partition.Joining || st.Owned != 0 {
		t.Fatalf("d4 took buckets before its snapshot: %+v", st)
	}
	d4.sync.ready.Store(true)
	nstest.WaitFor(t, 5*time.Second, "d4 active with its share", func() error {
		if err := converged(all, testBuckets); err != nil {
			return err
		}
		if owned, _ := d4.filter.get(); len(owned) != testBuckets/4 {
			return fmt.Errorf("d4 owns %d", len(owned))
		}
		return nil
	})
}

func TestForeignPeerRefused(t *testing.T) {
	ds := startCluster(t, 2, defaults())
	nstest.WaitFor(t, 10*time.Second, "converge", func() error { return settled(ds, testBuckets) })
	epoch := ds[0].n.Status().Epoch
	for _, o := range []testOpts{
		{fast: true, seed: 0xbad, buckets: testBuckets, syncReady: true, joinDelay: time.Second, probe: 200 * time.Millisecond},
		{fast: true, seed: 0x5eed, buckets: 2 * testBuckets, syncReady: true, joinDelay: time.Second, probe: 200 * time.Millisecond},
	} {
		x := startDirector(t, "x9", []string{ds[0].n.GossipAddr()}, o)
		time.Sleep(time.Second)
		for _, d := range ds {
			if st := d.n.Status(); st.Live != 2 || st.Epoch != epoch {
				t.Errorf("%s after a foreign peer (seed %#x, %d buckets): %+v, want 2 live at epoch %d", d.id, o.seed, o.buckets, st, epoch)
			}
		}
		if st := x.n.Status(); st.Live != 1 {
			t.Errorf("foreign peer sees %d live", st.Live)
		}
		x.n.Stop()
	}
	if err := converged(ds, testBuckets); err != nil {
		t.Fatal(err)
	}
}

// TestDrainSurvivesRestart: a director an operator drained restarts
// drained (owning nothing, without taking buckets even for a moment) until
// it is undrained.
func TestDrainSurvivesRestart(t *testing.T) {
	marker := filepath.Join(t.TempDir(), "drained")
	o := defaults()
	o.marker = marker
	ds := startCluster(t, 3, o)
	nstest.WaitFor(t, 10*time.Second, "converge", func() error { return settled(ds, testBuckets) })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c := client(t, ds[0].n.Addr())
	if _, err := c.Drain(withToken(ctx, testToken), &sarupb.DrainRequest{NodeId: "d2"}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(marker); err != nil {
		t.Fatalf("drain not recorded: %v", err)
	}
	ds[1].n.Leave(time.Second)
	ds[1].n.Stop()
	ds[1] = startDirector(t, "d2", []string{ds[0].n.GossipAddr()}, o)
	nstest.WaitFor(t, 10*time.Second, "d2 back, drained", func() error {
		if err := converged(ds, testBuckets); err != nil {
			return err
		}
		if st := ds[1].n.Status(); st.State != partition.Draining {
			return fmt.Errorf("d2: %+v", st)
		}
		return nil
	})
	if _, at := ds[1].filter.get(); !at.IsZero() {
		t.Fatalf("the restarted drained director installed buckets at %s", at)
	}
	if _, err := c.Undrain(withToken(ctx, testToken), &sarupb.UndrainRequest{NodeId: "d2"}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(marker); !os.IsNotExist(err) {
		t.Fatalf("undrain not recorded: %v", err)
	}
	nstest.WaitFor(t, 10*time.Second, "d2 back in service", func() error { return settled(ds, testBuckets) })
}
