package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"os"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	sarupb "github.com/saru-lb/saru/proto/saru/v1"
	syncdpb "github.com/saru-lb/saru/proto/syncd/v1"
)

type fakeCluster struct {
	sarupb.UnimplementedClusterServer
	lastToken string
}

func (f *fakeCluster) GetStatus(context.Context, *sarupb.GetStatusRequest) (*sarupb.GetStatusResponse, error) {
	return &sarupb.GetStatusResponse{NodeId: "dir1", LeaderId: "dir1", Epoch: 7, AppliedEpoch: 7, State: sarupb.MemberState_MEMBER_STATE_ACTIVE, LiveMembers: 2, OwnedBuckets: 32, BucketCount: 64, HashSeed: 0x5eed}, nil
}

func (f *fakeCluster) ListMembers(context.Context, *sarupb.ListMembersRequest) (*sarupb.ListMembersResponse, error) {
	return &sarupb.ListMembersResponse{Members: []*sarupb.Member{
		{Id: "dir1", Leader: true, State: sarupb.MemberState_MEMBER_STATE_ACTIVE, Weight: 1, OwnedBuckets: 32, Alive: true},
		{Id: "dir2", State: sarupb.MemberState_MEMBER_STATE_DRAINING, Weight: 1, OwnedBuckets: 32, Alive: true},
	}}, nil
}

func (f *fakeCluster) GetAssignment(context.Context, *sarupb.GetAssignmentRequest) (*sarupb.GetAssignmentResponse, error) {
	return &sarupb.GetAssignmentResponse{Assignment: &sarupb.Assignment{Epoch: 7, BucketCount: 64, Ranges: []*sarupb.BucketRange{
		{First: 0, Last: 31, Owner: "dir1", Standby: "dir2"}, {First: 32, Last: 63, Owner: "dir2", Standby: "dir1"}}}}, nil
}

func (f *fakeCluster) WhoOwns(_ context.Context, r *sarupb.WhoOwnsRequest) (*sarupb.WhoOwnsResponse, error) {
	if r.DstAddr != "192.0.2.10" || r.DstPort != 80 || r.SrcPort != 40001 || r.SrcAddr != "198.51.100.7" {
		return nil, status.Errorf(codes.InvalidArgument, "unexpected %v", r)
	}
	return &sarupb.WhoOwnsResponse{Bucket: 40001 & 63, Owner: "dir2", Standby: "dir1", Epoch: 7, Sense: sarupb.Sense_SENSE_SRC_PORT, Service: "192.0.2.10:80/tcp"}, nil
}

func (f *fakeCluster) Drain(ctx context.Context, r *sarupb.DrainRequest) (*sarupb.DrainResponse, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	if v := md.Get("authorization"); len(v) == 0 || v[0] != "Bearer tok" {
		return nil, status.Error(codes.Unauthenticated, "no token")
	}
	if r.NodeId != "dir2" {
		return nil, status.Errorf(codes.NotFound, "no director %q", r.NodeId)
	}
	return &sarupb.DrainResponse{Epoch: 8, State: sarupb.MemberState_MEMBER_STATE_DRAINING}, nil
}

func (f *fakeCluster) GetFilterCounters(context.Context, *sarupb.GetFilterCountersRequest) (*sarupb.GetFilterCountersResponse, error) {
	return &sarupb.GetFilterCountersResponse{Table: "inet saru", Rules: []*sarupb.RuleCounter{{Chain: "prerouting", Handle: 4, Description: "tcp 192.0.2.10:80 owned src-port -> accept", Packets: 12, Bytes: 720}}}, nil
}

type fakeSync struct {
	syncdpb.UnimplementedSyncServer
}

func (fakeSync) GetStats(context.Context, *syncdpb.GetStatsRequest) (*syncdpb.GetStatsResponse, error) {
	return &syncdpb.GetStatsResponse{Peers: []*syncdpb.PeerStats{{PeerId: "dir2", Entries: 1500, ReceivedPackets: 90, LagSeconds: 0.02, CaughtUp: true}}}, nil
}

func (fakeSync) ListConnections(context.Context, *syncdpb.ListConnectionsRequest) (*syncdpb.ListConnectionsResponse, error) {
	return &syncdpb.ListConnectionsResponse{Connections: []*syncdpb.Connection{{Protocol: 6, ClientAddress: []byte{198, 51, 100, 7}, ClientPort: 40001,
		VirtualAddress: []byte{192, 0, 2, 10}, VirtualPort: 80, DestinationAddress: []byte{10, 1, 0, 5}, DestinationPort: 8080, Origin: "dir2"}}}, nil
}

func serve(t *testing.T) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := grpc.NewServer()
	sarupb.RegisterClusterServer(s, &fakeCluster{})
	syncdpb.RegisterSyncServer(s, fakeSync{})
	go s.Serve(lis)
	t.Cleanup(s.Stop)
	return lis.Addr().String()
}

func run(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	c := &cli{out: &out}
	root := c.root()
	root.SetArgs(args)
	root.SetOut(&out)
	root.SetErr(&out)
	err := root.Execute()
	return out.String(), err
}

func TestCommands(t *testing.T) {
	addr := serve(t)
	tok := t.TempDir() + "/token"
	if err := writeFile(tok, "tok\n"); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"status"}, []string{"leader", "dir1", "32 of 64", "0x5eed"}},
		{[]string{"members"}, []string{"ID", "dir1  *", "draining"}},
		{[]string{"buckets"}, []string{"epoch 7, 64 buckets", "0-31", "32-63    32     dir2"}},
		{[]string{"who-owns", "198.51.100.7:40001", "--dst", "192.0.2.10:80"}, []string{"BUCKET", "dir2", "src-port", "192.0.2.10:80/tcp"}},
		{[]string{"drain", "dir2", "--token-file", tok}, []string{"dir2 draining at epoch 8"}},
		{[]string{"counters"}, []string{"table inet saru", "prerouting", "owned src-port -> accept"}},
		{[]string{"sync-stats", "--syncd-addr", addr}, []string{"dir2", "1500", "true"}},
		{[]string{"conns", "--syncd-addr", addr}, []string{"198.51.100.7:40001", "192.0.2.10:80", "10.1.0.5:8080", "dir2"}},
	} {
		out, err := run(t, append([]string{"--addr", addr}, tc.args...)...)
		if err != nil {
			t.Errorf("%v: %v", tc.args, err)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(out, w) {
				t.Errorf("%v: output lacks %q:\n%s", tc.args, w, out)
			}
		}
	}
}

func TestJSONAndErrors(t *testing.T) {
	addr := serve(t)
	out, err := run(t, "--addr", addr, "-o", "json", "status")
	if err != nil {
		t.Fatal(err)
	}
	var s map[string]any
	if err := json.Unmarshal([]byte(out), &s); err != nil || s["nodeId"] != "dir1" || s["epoch"] != "7" {
		t.Fatalf("json status: %v %v\n%s", s, err, out)
	}
	if _, err := run(t, "--addr", addr, "drain", "dir2"); status.Code(err) != codes.Unauthenticated {
		t.Errorf("drain without token: %v", err)
	}
	tok := t.TempDir() + "/token"
	writeFile(tok, "tok")
	if _, err := run(t, "--addr", addr, "--token-file", tok, "drain", "dir9"); status.Code(err) != codes.NotFound {
		t.Errorf("drain unknown: %v", err)
	}
	if _, err := run(t, "--addr", addr, "-o", "yaml", "status"); err == nil || !strings.Contains(err.Error(), "want table or json") {
		t.Errorf("-o yaml: %v", err)
	}
	if _, err := run(t, "--addr", addr, "who-owns", "198.51.100.7:40001"); err == nil || !strings.Contains(err.Error(), "--dst") {
		t.Errorf("who-owns without --dst: %v", err)
	}
	if _, err := run(t, "--addr", addr, "who-owns", "nonsense", "--dst", "192.0.2.10:80"); err == nil {
		t.Error("who-owns with a bad client address succeeded")
	}
}

func writeFile(path, s string) error { return os.WriteFile(path, []byte(s), 0o600) }
