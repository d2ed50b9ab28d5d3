package node

import (
	"context"
	"fmt"
	"time"

	"google.golang.org/grpc"

	syncdpb "github.com/saru-lb/saru/proto/syncd/v1"
)

// SyncdClient is the Sync the coordinator uses: the local syncd over its
// syncd.v1.Sync gRPC API.
type SyncdClient struct {
	c      syncdpb.SyncClient
	maxLag time.Duration
}

// NewSyncdClient wraps a connection to the local syncd. A peer's
// connections count as held when syncd reports it caught up (nothing
// missing) and heard from within maxLag.
func NewSyncdClient(conn grpc.ClientConnInterface, maxLag time.Duration) *SyncdClient {
	return &SyncdClient{c: syncdpb.NewSyncClient(conn), maxLag: maxLag}
}

// Ready reports syncd's snapshot completion (GetStatus ready).
func (s *SyncdClient) Ready(ctx context.Context) (bool, error) {
	st, err := s.c.GetStatus(ctx, &syncdpb.GetStatusRequest{})
	if err != nil {
		return false, fmt.Errorf("syncd status: %w", err)
	}
	return st.GetReady(), nil
}

// Holds reports whether syncd is caught up with peer.
func (s *SyncdClient) Holds(ctx context.Context, peer string) (bool, error) {
	st, err := s.c.GetStats(ctx, &syncdpb.GetStatsRequest{PeerId: peer})
	if err != nil {
		return false, fmt.Errorf("syncd stats for %s: %w", peer, err)
	}
	for _, p := range st.GetPeers() {
		if p.GetPeerId() == peer {
			return p.GetCaughtUp() && p.GetLagSeconds() <= s.maxLag.Seconds(), nil
		}
	}
	return false, nil
}
