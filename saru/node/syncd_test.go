package node_test

import (
	"context"
	"net"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	syncdpb "github.com/saru-lb/saru/proto/syncd/v1"
	"github.com/saru-lb/saru/saru/node"
)

type syncdServer struct {
	syncdpb.UnimplementedSyncServer
	ready bool
	peers []*syncdpb.PeerStats
}

func (s *syncdServer) GetStatus(context.Context, *syncdpb.GetStatusRequest) (*syncdpb.GetStatusResponse, error) {
	return &syncdpb.GetStatusResponse{NodeId: "d1", Ready: s.ready}, nil
}

func (s *syncdServer) GetStats(_ context.Context, r *syncdpb.GetStatsRequest) (*syncdpb.GetStatsResponse, error) {
	return &syncdpb.GetStatsResponse{Peers: s.peers}, nil
}

func TestSyncdClient(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	fake := &syncdServer{peers: []*syncdpb.PeerStats{
		{PeerId: "d2", CaughtUp: true, LagSeconds: 0.1},
		{PeerId: "d3", CaughtUp: false, LagSeconds: 0.1, Missing: 4},
		{PeerId: "d4", CaughtUp: true, LagSeconds: 5},
	}}
	s := grpc.NewServer()
	syncdpb.RegisterSyncServer(s, fake)
	go s.Serve(lis)
	defer s.Stop()
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	c := node.NewSyncdClient(conn, time.Second)
	ctx := context.Background()
	if ok, err := c.Ready(ctx); err != nil || ok {
		t.Fatalf("Ready = %v, %v; want false", ok, err)
	}
	fake.ready = true
	if ok, err := c.Ready(ctx); err != nil || !ok {
		t.Fatalf("Ready = %v, %v; want true", ok, err)
	}
	for peer, want := range map[string]bool{"d2": true, "d3": false, "d4": false, "d9": false} {
		if ok, err := c.Holds(ctx, peer); err != nil || ok != want {
			t.Errorf("Holds(%s) = %v, %v; want %v", peer, ok, err, want)
		}
	}
	s.Stop()
	if _, err := c.Ready(ctx); err == nil {
		t.Error("Ready with syncd down: no error")
	}
}
