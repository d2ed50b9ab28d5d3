package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strconv"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	syncdpb "github.com/saru-lb/saru/proto/syncd/v1"
	"github.com/saru-lb/saru/syncd/conn"
	"github.com/saru-lb/saru/syncd/table"
	"github.com/saru-lb/saru/syncd/wire"
)

// Source is what the server reads: the daemon.
type Source interface {
	Status() *syncdpb.GetStatusResponse
	// Stats returns the counters; peer narrows to one peer ("" for all).
	Stats(peer string) *syncdpb.GetStatsResponse
	// List returns up to n entries matching f from cursor, and the cursor
	// to continue from (0 at the end).
	List(f table.Filter, cursor uint32, n int) ([]conn.Entry, uint32)
	// Snapshot calls send with successive chunks of the table (entries of
	// origin only, when not empty) and the total on the first call.
	Snapshot(ctx context.Context, origin string, send func(entries []conn.Entry, total uint64) error) error
}

// Server implements syncdpb.SyncServer.
type Server struct {
	syncdpb.UnimplementedSyncServer
	src Source
}

// New returns a server over src.
func New(src Source) *Server { return &Server{src: src} }

// DefaultPageSize and MaxPageSize bound ListConnections pages.
const (
	DefaultPageSize = 1000
	MaxPageSize     = 10000
	// SnapshotBudget bounds one snapshot chunk's encoded batches.
	SnapshotBudget = 1 << 20
)

// GetStatus implements syncdpb.SyncServer.
func (s *Server) GetStatus(context.Context, *syncdpb.GetStatusRequest) (*syncdpb.GetStatusResponse, error) {
	return s.src.Status(), nil
}

// GetStats implements syncdpb.SyncServer.
func (s *Server) GetStats(_ context.Context, req *syncdpb.GetStatsRequest) (*syncdpb.GetStatsResponse, error) {
	resp := s.src.Stats(req.GetPeerId())
	if req.GetPeerId() != "" && len(resp.Peers) == 0 {
		return nil, status.Errorf(codes.NotFound, "peer_id %q: not heard from", req.GetPeerId())
	}
	return resp, nil
}

// ParseProtocol maps "tcp", "udp", "sctp" or a number to an IP protocol.
func ParseProtocol(s string) (uint8, error) {
	switch strings.ToLower(s) {
	case "":
		return 0, nil
	case "tcp":
		return conn.ProtoTCP, nil
	case "udp":
		return conn.ProtoUDP, nil
	case "sctp":
		return conn.ProtoSCTP, nil
	}
	n, err := strconv.ParseUint(s, 10, 8)
	if err != nil || n == 0 {
		return 0, fmt.Errorf("protocol %q: want tcp, udp, sctp or 1-255", s)
	}
	return uint8(n), nil
}

func parseAddr(field, s string) (netip.Addr, error) {
	if s == "" {
		return netip.Addr{}, nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return a, status.Errorf(codes.InvalidArgument, "%s: %q is not an IP address", field, s)
	}
	return a.Unmap(), nil
}

// ListConnections implements syncdpb.SyncServer.
func (s *Server) ListConnections(_ context.Context, req *syncdpb.ListConnectionsRequest) (*syncdpb.ListConnectionsResponse, error) {
	var f table.Filter
	var err error
	if f.Virtual, err = parseAddr("vip", req.GetVip()); err != nil {
		return nil, err
	}
	if f.Dest, err = parseAddr("real_server", req.GetRealServer()); err != nil {
		return nil, err
	}
	if f.Protocol, err = ParseProtocol(req.GetProtocol()); err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "protocol: %v", err)
	}
	f.Origin = req.GetOrigin()
	n := int(req.GetPageSize())
	if n == 0 {
		n = DefaultPageSize
	}
	if n > MaxPageSize {
		return nil, status.Errorf(codes.InvalidArgument, "page_size: %d exceeds %d", n, MaxPageSize)
	}
	var cursor uint64
	if t := req.GetPageToken(); t != "" {
		if cursor, err = strconv.ParseUint(t, 10, 32); err != nil || cursor == 0 {
			return nil, status.Errorf(codes.InvalidArgument, "page_token: %q is not a token this server issued", t)
		}
	}
	es, next := s.src.List(f, uint32(cursor), n)
	resp := &syncdpb.ListConnectionsResponse{Connections: make([]*syncdpb.Connection, len(es))}
	for i := range es {
		resp.Connections[i] = ToProto(&es[i])
	}
	if next != 0 {
		resp.NextPageToken = strconv.FormatUint(uint64(next), 10)
	}
	return resp, nil
}

// ToProto converts an entry to its API form.
func ToProto(e *conn.Entry) *syncdpb.Connection {
	c := &syncdpb.Connection{
		Protocol:           uint32(e.Protocol),
		ClientAddress:      e.ClientAddr.AsSlice(),
		ClientPort:         uint32(e.ClientPort),
		VirtualAddress:     e.VirtualAddr.AsSlice(),
		VirtualPort:        uint32(e.VirtualPort),
		DestinationAddress: e.DestAddr.AsSlice(),
		DestinationPort:    uint32(e.DestPort),
		Fwmark:             e.FWMark,
		Flags:              uint32(e.Flags),
		State:              uint32(e.State),
		TimeoutSeconds:     e.Timeout,
		Origin:             e.Origin,
		Version:            e.Version,
		PeName:             e.PEName,
		PeData:             e.PEData,
	}
	if e.HasSeq {
		c.Seq = &syncdpb.SeqAdjust{
			InInitSeq: e.Seq.In.InitSeq, InDelta: e.Seq.In.Delta, InPreviousDelta: e.Seq.In.PreviousDelta,
			OutInitSeq: e.Seq.Out.InitSeq, OutDelta: e.Seq.Out.Delta, OutPreviousDelta: e.Seq.Out.PreviousDelta,
		}
	}
	return c
}

// Snapshot implements syncdpb.SyncServer.
func (s *Server) Snapshot(req *syncdpb.SnapshotRequest, stream grpc.ServerStreamingServer[syncdpb.SnapshotResponse]) error {
	p := &wire.Packer{Budget: SnapshotBudget, WithOrigins: true}
	first := true
	var total uint64
	flush := func() error {
		if p.Len() == 0 && !first {
			return nil
		}
		resp := &syncdpb.SnapshotResponse{}
		if bs := p.Batches(); len(bs) > 0 {
			resp.Batch = bs[0]
			if len(bs) > 1 {
				// One batch per message: send the IPv4 part, then the IPv6 part.
				if err := stream.Send(&syncdpb.SnapshotResponse{Batch: bs[0], Total: total}); err != nil {
					return err
				}
				resp = &syncdpb.SnapshotResponse{Batch: bs[1]}
				first = false
			}
		}
		if first {
			resp.Total = total
			first = false
		}
		err := stream.Send(resp)
		p.Reset()
		return err
	}
	err := s.src.Snapshot(stream.Context(), req.GetOrigin(), func(es []conn.Entry, tot uint64) error {
		if first {
			total = tot
		}
		for i := range es {
			if !p.Fits(&es[i]) {
				if err := flush(); err != nil {
					return err
				}
			}
			p.Add(&es[i])
		}
		return nil
	})
	if err == nil {
		err = flush()
	}
	if err != nil {
		if st, ok := status.FromError(err); ok && st.Code() != codes.Unknown {
			return err
		}
		if errors.Is(err, context.Canceled) {
			return status.Error(codes.Canceled, "snapshot: cancelled")
		}
		return status.Errorf(codes.Unavailable, "snapshot: %v", err)
	}
	return nil
}

// Pull streams a snapshot from the peer at addr (origin "" for all
// entries) and calls apply with each decoded chunk (the slice is reused
// after apply returns) and the snapshot's announced total (with the first
// chunk; 0 after). It returns the number of entries received.
func Pull(ctx context.Context, addr, origin string, apply func(es []conn.Entry, total uint64) error) (uint64, error) {
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(8<<20)),
		// Large windows let the peer encode the next chunks while this
		// side applies the current one.
		grpc.WithInitialWindowSize(8<<20), grpc.WithInitialConnWindowSize(16<<20))
	if err != nil {
		return 0, fmt.Errorf("snapshot from %s: %w", addr, err)
	}
	defer cc.Close()
	stream, err := syncdpb.NewSyncClient(cc).Snapshot(ctx, &syncdpb.SnapshotRequest{Origin: origin})
	if err != nil {
		return 0, fmt.Errorf("snapshot from %s: %w", addr, err)
	}
	var n uint64
	var es []conn.Entry
	for {
		chunk, err := stream.Recv()
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			return n, fmt.Errorf("snapshot from %s after %d entries: %w", addr, n, err)
		}
		if chunk.Batch == nil {
			continue
		}
		es, err = wire.AppendEntries(es[:0], chunk.Batch, "")
		if err != nil {
			return n, fmt.Errorf("snapshot from %s: chunk after %d entries: %w", addr, n, err)
		}
		for i := range es {
			if es[i].Origin == "" {
				return n, fmt.Errorf("snapshot from %s: entry without origin", addr)
			}
		}
		if err := apply(es, chunk.Total); err != nil {
			return n, err
		}
		n += uint64(len(es))
	}
}
