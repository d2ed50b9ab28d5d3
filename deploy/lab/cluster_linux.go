package lab

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	sarupb "github.com/saru-lb/saru/proto/saru/v1"
	syncdpb "github.com/saru-lb/saru/proto/syncd/v1"
)

// grpcIn opens a gRPC client that dials from inside the director's
// namespace.
func grpcIn(d *Director, addr string) (*grpc.ClientConn, error) {
	return grpc.NewClient("passthrough:///"+addr,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithContextDialer(func(ctx context.Context, a string) (net.Conn, error) {
			return dialIn(ctx, d.NS, a, 2*time.Second)
		}))
}

// cluster is a saru.v1.Cluster and syncd.v1.Sync client per director.
type cluster struct {
	saru  map[string]sarupb.ClusterClient
	syncd map[string]syncdpb.SyncClient
	conns []*grpc.ClientConn
}

func (l *Lab) clusterClients() (*cluster, error) {
	c := &cluster{saru: map[string]sarupb.ClusterClient{}, syncd: map[string]syncdpb.SyncClient{}}
	for _, d := range l.Directors {
		sc, err := grpcIn(d, d.SaruAddr())
		if err != nil {
			c.close()
			return nil, err
		}
		yc, err := grpcIn(d, d.SyncdAddr())
		if err != nil {
			c.close()
			return nil, err
		}
		c.conns = append(c.conns, sc, yc)
		c.saru[d.ID] = sarupb.NewClusterClient(sc)
		c.syncd[d.ID] = syncdpb.NewSyncClient(yc)
	}
	return c, nil
}

func (c *cluster) close() {
	for _, cc := range c.conns {
		cc.Close()
	}
}

// view is one director's view: its status and assignment.
type view struct {
	status *sarupb.GetStatusResponse
	asg    *sarupb.Assignment
}

func (c *cluster) view(ctx context.Context, id string) (view, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	st, err := c.saru[id].GetStatus(ctx, &sarupb.GetStatusRequest{})
	if err != nil {
		return view{}, fmt.Errorf("%s GetStatus: %w", id, err)
	}
	a, err := c.saru[id].GetAssignment(ctx, &sarupb.GetAssignmentRequest{})
	if err != nil {
		return view{}, fmt.Errorf("%s GetAssignment: %w", id, err)
	}
	return view{status: st, asg: a.GetAssignment()}, nil
}

// owners counts buckets per owner in an assignment.
func owners(a *sarupb.Assignment) map[string]int {
	out := map[string]int{}
	for _, r := range a.GetRanges() {
		out[r.GetOwner()] += int(r.GetLast()-r.GetFirst()) + 1
	}
	return out
}

// ownerOf returns the owner of bucket b.
func ownerOf(a *sarupb.Assignment, b uint32) string {
	for _, r := range a.GetRanges() {
		if b >= r.GetFirst() && b <= r.GetLast() {
			return r.GetOwner()
		}
	}
	return ""
}

// settled reports whether every listed director has applied the same
// newest assignment, that assignment covers every bucket, and its owners
// are exactly want (nil: any).
func (c *cluster) settled(ctx context.Context, ids []string, want []string) (bool, *sarupb.Assignment, error) {
	// Statuses first (one call each), the assignment only once they agree:
	// the kernel lab's emulated CPUs are scarce.
	if len(ids) == 0 {
		return false, nil, errors.New("settled: no directors to ask")
	}
	var epoch uint64
	for i, id := range ids {
		ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		st, err := c.saru[id].GetStatus(ctx, &sarupb.GetStatusRequest{})
		cancel()
		if err != nil {
			return false, nil, fmt.Errorf("%s GetStatus: %w", id, err)
		}
		if st.GetAppliedEpoch() != st.GetEpoch() || (i > 0 && st.GetEpoch() != epoch) {
			return false, nil, nil
		}
		epoch = st.GetEpoch()
	}
	v, err := c.view(ctx, ids[len(ids)-1])
	if err != nil {
		return false, nil, err
	}
	asg := v.asg
	if asg.GetEpoch() != epoch {
		return false, asg, nil
	}
	own := owners(asg)
	total := 0
	for _, n := range own {
		total += n
	}
	if total != int(asg.GetBucketCount()) || asg.GetBucketCount() == 0 {
		return false, asg, nil
	}
	if want != nil {
		if len(own) != len(want) {
			return false, asg, nil
		}
		for _, w := range want {
			if own[w] == 0 {
				return false, asg, nil
			}
		}
	}
	return true, asg, nil
}

// waitSettled polls until settled or timeout; it returns the time it took
// and the assignment.
func (c *cluster) waitSettled(ctx context.Context, ids, want []string, timeout time.Duration) (time.Duration, *sarupb.Assignment, error) {
	start := time.Now()
	var lastErr error
	var last *sarupb.Assignment
	for time.Since(start) < timeout {
		ok, a, err := c.settled(ctx, ids, want)
		if ok {
			return time.Since(start), a, nil
		}
		lastErr = err
		if a != nil {
			last = a
		}
		select {
		case <-ctx.Done():
			return 0, nil, ctx.Err()
		case <-time.After(pollEvery):
		}
	}
	if lastErr != nil {
		return 0, last, fmt.Errorf("cluster did not settle within %v: %w", timeout, lastErr)
	}
	return 0, last, fmt.Errorf("cluster did not settle within %v on owners %v (last assignment: epoch %d, owners %v)", timeout, want, last.GetEpoch(), owners(last))
}

// pollEvery is how often failover and settling are polled.
const pollEvery = 50 * time.Millisecond

// syncReady reports whether the director's syncd says it is ready.
func (c *cluster) syncStatus(ctx context.Context, id string) (*syncdpb.GetStatusResponse, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	return c.syncd[id].GetStatus(ctx, &syncdpb.GetStatusRequest{})
}
