package node

import (
	"context"
	"crypto/subtle"
	"errors"
	"net/netip"
	"slices"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/saru-lb/saru/filter/bucket"
	sarupb "github.com/saru-lb/saru/proto/saru/v1"
	"github.com/saru-lb/saru/saru/coord"
)

func (n *Node) newServer() *grpc.Server {
	var opts []grpc.ServerOption
	if n.opts.ServerCreds != nil {
		opts = append(opts, grpc.Creds(n.opts.ServerCreds))
	}
	s := grpc.NewServer(opts...)
	sarupb.RegisterClusterServer(s, &server{n: n})
	hs := health.NewServer()
	hs.SetServingStatus(sarupb.Cluster_ServiceDesc.ServiceName, healthpb.HealthCheckResponse_SERVING)
	healthpb.RegisterHealthServer(s, hs)
	if err := registerReflection(s); err != nil {
		n.log.Warn("reflection without comments", "err", err)
	}
	return s
}

type server struct {
	sarupb.UnimplementedClusterServer
	n *Node
}

func (s *server) snap() (*snapshot, error) {
	sn := s.n.snap.Load()
	if sn == nil {
		return nil, status.Error(codes.Unavailable, "director is starting")
	}
	return sn, nil
}

func (s *server) GetStatus(ctx context.Context, _ *sarupb.GetStatusRequest) (*sarupb.GetStatusResponse, error) {
	sn, err := s.snap()
	if err != nil {
		return nil, err
	}
	live := uint32(1)
	for _, p := range sn.peers {
		if p.Alive {
			live++
		}
	}
	return &sarupb.GetStatusResponse{
		NodeId: sn.self.ID, LeaderId: sn.leader, Epoch: sn.assignment.Epoch, AppliedEpoch: sn.self.Applied,
		State: stateToProto(sn.self.State), LiveMembers: live, OwnedBuckets: uint32(sn.owned),
		BucketCount: uint32(s.n.cfg.Buckets), HashSeed: s.n.cfg.Seed, UptimeSeconds: time.Since(s.n.start).Seconds(),
		SyncReady: s.n.syncReady.Load(), Version: s.n.opts.Version,
	}, nil
}

func (s *server) ListMembers(ctx context.Context, _ *sarupb.ListMembersRequest) (*sarupb.ListMembersResponse, error) {
	sn, err := s.snap()
	if err != nil {
		return nil, err
	}
	counts := sn.assignment.Counts()
	member := func(m coord.Meta, alive bool) *sarupb.Member {
		st := stateToProto(m.State)
		if !alive {
			st = sarupb.MemberState_MEMBER_STATE_DEAD
		}
		return &sarupb.Member{Id: m.ID, GrpcAddress: m.GRPC, Weight: uint32(m.Weight), State: st, Alive: alive,
			AppliedEpoch: m.Applied, Epoch: m.Epoch, OwnedBuckets: uint32(counts[m.ID]), Leader: m.ID == sn.leader, GossipAddress: sn.gossip[m.ID]}
	}
	out := &sarupb.ListMembersResponse{}
	self := member(sn.self, true)
	self.OwnedBuckets = uint32(sn.owned)
	added := false
	for _, p := range sn.peers {
		if !added && p.Meta.ID > sn.self.ID {
			out.Members, added = append(out.Members, self), true
		}
		out.Members = append(out.Members, member(p.Meta, p.Alive))
	}
	if !added {
		out.Members = append(out.Members, self)
	}
	return out, nil
}

func (s *server) GetAssignment(ctx context.Context, _ *sarupb.GetAssignmentRequest) (*sarupb.GetAssignmentResponse, error) {
	s.n.pubMu.Lock()
	a := s.n.pub
	s.n.pubMu.Unlock()
	if a == nil {
		return nil, status.Error(codes.Unavailable, "director is starting")
	}
	return &sarupb.GetAssignmentResponse{Assignment: a}, nil
}

func (s *server) WatchAssignment(req *sarupb.WatchAssignmentRequest, stream grpc.ServerStreamingServer[sarupb.WatchAssignmentResponse]) error {
	var sent uint64
	first := true
	for {
		s.n.pubMu.Lock()
		a, ch := s.n.pub, s.n.pubCh
		s.n.pubMu.Unlock()
		if a != nil && ((first && a.Epoch >= req.MinEpoch) || a.Epoch > sent) {
			if err := stream.Send(&sarupb.WatchAssignmentResponse{Assignment: a}); err != nil {
				return err
			}
			sent = a.Epoch
		}
		if a != nil {
			first = false
			if sent == 0 {
				sent = a.Epoch // below min_epoch: start after it
			}
		}
		select {
		case <-stream.Context().Done():
			return stream.Context().Err()
		case <-s.n.ctx.Done():
			return status.Error(codes.Unavailable, "director is stopping")
		case <-ch:
		}
	}
}

func (s *server) WhoOwns(ctx context.Context, req *sarupb.WhoOwnsRequest) (*sarupb.WhoOwnsResponse, error) {
	sn, err := s.snap()
	if err != nil {
		return nil, err
	}
	src, err := netip.ParseAddr(req.SrcAddr)
	if err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "src_addr %q: %v", clip(req.SrcAddr), err)
	}
	dst, err := netip.ParseAddr(req.DstAddr)
	if err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "dst_addr %q: %v", clip(req.DstAddr), err)
	}
	if src.Is4() != dst.Is4() {
		return nil, status.Errorf(codes.InvalidArgument, "src_addr %s and dst_addr %s: different address families", src, dst)
	}
	if req.SrcPort > 65535 || req.DstPort > 65535 {
		return nil, status.Errorf(codes.InvalidArgument, "ports %d and %d: must be at most 65535", req.SrcPort, req.DstPort)
	}
	proto := bucket.TCP
	if req.Protocol != "" {
		p, err := bucket.ParseProtocol(req.Protocol)
		if err != nil || (p != bucket.TCP && p != bucket.UDP && p != bucket.ICMP) {
			return nil, status.Errorf(codes.InvalidArgument, "protocol %q: want tcp, udp or icmp", clip(req.Protocol))
		}
		proto = p
	}
	for _, svc := range s.n.cfg.Services {
		if svc.VIP != dst.Unmap() {
			continue
		}
		sense, name := svc.Sense, svc.String()
		if proto == bucket.ICMP {
			sense = bucket.EchoSense
			name = svc.VIP.String() + "/icmp"
		} else if (svc.Port != 0 && uint32(svc.Port) != req.DstPort) || !slices.Contains(svc.Protocols, proto) {
			continue
		}
		b := bucket.Of(sense, s.n.cfg.Buckets, s.n.cfg.Seed,
			netip.AddrPortFrom(src.Unmap(), uint16(req.SrcPort)), netip.AddrPortFrom(dst.Unmap(), uint16(req.DstPort)))
		return &sarupb.WhoOwnsResponse{Bucket: b, Owner: sn.owners[b], Standby: sn.assignment.Standbys[b],
			Epoch: sn.assignment.Epoch, Sense: SenseToProto(sense), Service: name}, nil
	}
	return nil, status.Errorf(codes.NotFound, "no virtual service matches %s %s port %d", proto, dst, req.DstPort)
}

// authorize checks a mutating call: a verified client certificate (mTLS)
// or the bearer token.
func (s *server) authorize(ctx context.Context) error {
	if p, ok := peer.FromContext(ctx); ok {
		if ti, ok := p.AuthInfo.(credentials.TLSInfo); ok && len(ti.State.VerifiedChains) > 0 {
			return nil
		}
	}
	md, _ := metadata.FromIncomingContext(ctx)
	vals := md.Get("authorization")
	if len(vals) == 0 {
		return status.Error(codes.Unauthenticated, "drain and undrain need credentials: a bearer token (authorization: Bearer <token>) or a client certificate")
	}
	if s.n.opts.Token == "" {
		return status.Error(codes.PermissionDenied, "this director accepts no token (grpc.token_file is not configured)")
	}
	tok, ok := strings.CutPrefix(vals[0], "Bearer ")
	if !ok || subtle.ConstantTimeCompare([]byte(tok), []byte(s.n.opts.Token)) != 1 {
		return status.Error(codes.PermissionDenied, "invalid bearer token")
	}
	return nil
}

// target finds the director a mutating call names: this one, or a live
// peer the call is forwarded to.
func (s *server) target(id string) (self bool, addr string, err error) {
	sn, err := s.snap()
	if err != nil {
		return false, "", err
	}
	if id == "" {
		return false, "", status.Error(codes.InvalidArgument, "node_id: required")
	}
	if id == sn.self.ID {
		return true, "", nil
	}
	for _, p := range sn.peers {
		if p.Meta.ID == id {
			if !p.Alive {
				return false, "", status.Errorf(codes.FailedPrecondition, "director %q is not alive", id)
			}
			return false, p.Meta.GRPC, nil
		}
	}
	return false, "", status.Errorf(codes.NotFound, "no director %q in the cluster", id)
}

func (s *server) forwardCtx(ctx context.Context) context.Context {
	md, _ := metadata.FromIncomingContext(ctx)
	out := metadata.MD{}
	if v := md.Get("authorization"); len(v) > 0 {
		out.Set("authorization", v[0])
	} else if s.n.opts.Token != "" {
		out.Set("authorization", "Bearer "+s.n.opts.Token) // authorised here by certificate
	}
	return metadata.NewOutgoingContext(ctx, out)
}

func (s *server) drainCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, s.n.cfg.DrainTimeout)
}

func (s *server) Drain(ctx context.Context, req *sarupb.DrainRequest) (*sarupb.DrainResponse, error) {
	return mutate(s, ctx, "drain", req.NodeId,
		func(ctx context.Context, c sarupb.ClusterClient) (*sarupb.DrainResponse, error) {
			return c.Drain(ctx, req)
		},
		func(ctx context.Context) (*sarupb.DrainResponse, error) {
			e, err := s.n.drainSelf(ctx, true)
			if err != nil {
				return nil, err
			}
			s.n.log.Info("drained", "epoch", e)
			return &sarupb.DrainResponse{Epoch: e, State: sarupb.MemberState_MEMBER_STATE_DRAINING}, nil
		})
}

func (s *server) Undrain(ctx context.Context, req *sarupb.UndrainRequest) (*sarupb.UndrainResponse, error) {
	return mutate(s, ctx, "undrain", req.NodeId,
		func(ctx context.Context, c sarupb.ClusterClient) (*sarupb.UndrainResponse, error) {
			return c.Undrain(ctx, req)
		},
		func(ctx context.Context) (*sarupb.UndrainResponse, error) {
			e, err := s.n.undrainSelf(ctx, true)
			if err != nil {
				return nil, err
			}
			return &sarupb.UndrainResponse{Epoch: e, State: sarupb.MemberState_MEMBER_STATE_ACTIVE}, nil
		})
}

// maxIDLen is the longest director id: package config refuses a longer
// node.id, so a longer one in a request names no director.
const maxIDLen = 64

// mutate authorises a drain or undrain of node id, then runs it here when
// id is this director, or forwards the request to the director it names.
func mutate[R any](s *server, ctx context.Context, op, id string,
	forward func(context.Context, sarupb.ClusterClient) (R, error),
	local func(context.Context) (R, error)) (R, error) {
	var none R
	if len(id) > maxIDLen {
		err := status.Errorf(codes.InvalidArgument, "node_id: %d bytes, at most %d", len(id), maxIDLen)
		s.refuse(ctx, op, "invalid-argument", id, err)
		return none, err
	}
	if err := s.authorize(ctx); err != nil {
		reason := "permission-denied"
		if status.Code(err) == codes.Unauthenticated {
			reason = "unauthenticated"
		}
		s.refuse(ctx, op, reason, id, err)
		return none, err
	}
	self, addr, err := s.target(id)
	if err != nil {
		return none, err
	}
	if !self {
		conn, err := s.n.dial(addr)
		if err != nil {
			return none, status.Errorf(codes.Unavailable, "%s %s: %v", op, id, err)
		}
		return forward(s.forwardCtx(ctx), sarupb.NewClusterClient(conn))
	}
	s.n.log.Info(op + " requested")
	ctx, cancel := s.drainCtx(ctx)
	defer cancel()
	r, err := local(ctx)
	if err != nil {
		return none, mutateErr(op, id, err)
	}
	return r, nil
}

// refuse counts a call refused before any work and logs it, rarely: the
// caller controls the id and the rate.
func (s *server) refuse(ctx context.Context, op, reason, id string, err error) {
	s.n.metrics.refusedCalls.WithLabelValues(op, reason).Inc()
	from := ""
	if p, ok := peer.FromContext(ctx); ok {
		from = p.Addr.String()
	}
	s.n.refusals.warn(op+"-"+reason, op+" refused", "node", clip(id), "from", from, "err", status.Convert(err).Message())
}

func mutateErr(op, id string, err error) error {
	switch {
	case errors.Is(err, coord.ErrLastActive), errors.Is(err, coord.ErrNotDraining), errors.Is(err, coord.ErrNotActive):
		return status.Errorf(codes.FailedPrecondition, "%s %s: %v", op, id, err)
	case errors.Is(err, context.DeadlineExceeded):
		return status.Errorf(codes.DeadlineExceeded, "%s %s: not complete before the deadline; it continues in the background", op, id)
	case errors.Is(err, context.Canceled):
		return status.Errorf(codes.Canceled, "%s %s: %v", op, id, err)
	}
	return status.Errorf(codes.Unavailable, "%s %s: %v", op, id, err)
}

func (s *server) GetFilterCounters(ctx context.Context, _ *sarupb.GetFilterCountersRequest) (*sarupb.GetFilterCountersResponse, error) {
	rules, err := s.n.opts.Filter.Counters(ctx)
	if err != nil {
		return nil, status.Errorf(codes.Unavailable, "read filter counters: %v", err)
	}
	return &sarupb.GetFilterCountersResponse{Table: s.n.opts.FilterTable, Rules: rules}, nil
}

func (s *server) ListServices(ctx context.Context, _ *sarupb.ListServicesRequest) (*sarupb.ListServicesResponse, error) {
	if s.n.opts.Services == nil {
		return nil, status.Error(codes.Unimplemented, "IPVS service listing is not available on this director")
	}
	svcs, err := s.n.opts.Services.ListServices(ctx)
	if err != nil {
		return nil, status.Errorf(codes.Unavailable, "list IPVS services: %v", err)
	}
	return &sarupb.ListServicesResponse{Services: svcs}, nil
}
