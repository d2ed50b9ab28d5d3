package server

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"testing"

	"google.golang.org/grpc"

	syncdpb "github.com/saru-lb/saru/proto/syncd/v1"
	"github.com/saru-lb/saru/syncd/conn"
	"github.com/saru-lb/saru/syncd/table"
)

// fakeSource serves a fixed list of entries.
type fakeSource struct{ es []conn.Entry }

func (f *fakeSource) Status() *syncdpb.GetStatusResponse                    { return &syncdpb.GetStatusResponse{} }
func (f *fakeSource) Stats(string) *syncdpb.GetStatsResponse                { return &syncdpb.GetStatsResponse{} }
func (f *fakeSource) List(table.Filter, uint32, int) ([]conn.Entry, uint32) { return nil, 0 }
func (f *fakeSource) Snapshot(_ context.Context, origin string, send func([]conn.Entry, uint64) error) error {
	var sel []conn.Entry
	for _, e := range f.es {
		if origin == "" || e.Origin == origin {
			sel = append(sel, e)
		}
	}
	for len(sel) > 0 {
		k := min(len(sel), 1000)
		if err := send(sel[:k], uint64(len(f.es))); err != nil {
			return err
		}
		sel = sel[k:]
	}
	return nil
}

func serve(t *testing.T, src Source) string {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	syncdpb.RegisterSyncServer(gs, New(src))
	go func() { _ = gs.Serve(lis) }()
	t.Cleanup(gs.Stop)
	return lis.Addr().String()
}

func mixed(n int) []conn.Entry {
	var es []conn.Entry
	for i := 0; i < n; i++ {
		e := conn.Entry{
			Protocol: conn.ProtoTCP, ClientPort: uint16(i), VirtualPort: 80, DestPort: 8080, Timeout: 100,
			Origin: fmt.Sprintf("d%d", i%3), Version: uint64(1000 + i),
		}
		if i%2 == 0 {
			e.ClientAddr = netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)})
			e.VirtualAddr, e.DestAddr = netip.MustParseAddr("198.51.100.1"), netip.MustParseAddr("10.1.1.1")
		} else {
			e.ClientAddr = netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 14: byte(i >> 8), 15: byte(i)})
			e.VirtualAddr, e.DestAddr = netip.MustParseAddr("2001:db8::1"), netip.MustParseAddr("2001:db8::2")
		}
		if i%7 == 0 {
			e.Flags = conn.FlagTemplate
			e.PEName, e.PEData = "sip", []byte(fmt.Sprintf("call-%d", i))
			e.HasSeq, e.Seq.In.Delta = true, uint32(i)
		}
		es = append(es, e)
	}
	return es
}

func TestSnapshotPullMixedFamilies(t *testing.T) {
	src := &fakeSource{es: mixed(50000)}
	addr := serve(t, src)
	got := map[conn.Key]conn.Entry{}
	n, err := Pull(context.Background(), addr, "", func(es []conn.Entry, _ uint64) error {
		for _, e := range es {
			got[e.Key()] = e
		}
		return nil
	})
	if err != nil || n != 50000 || len(got) != 50000 {
		t.Fatalf("pulled %d (%d distinct), err %v", n, len(got), err)
	}
	for _, e := range src.es {
		g := got[e.Key()]
		if g.Origin != e.Origin || g.Version != e.Version || g.DestAddr != e.DestAddr || g.PEName != e.PEName ||
			string(g.PEData) != string(e.PEData) || g.Seq != e.Seq {
			t.Fatalf("entry %v: got %+v, want %+v", e.Key(), g, e)
		}
	}
	// Filtered by origin.
	n, err = Pull(context.Background(), addr, "d1", func(es []conn.Entry, _ uint64) error {
		for _, e := range es {
			if e.Origin != "d1" {
				return fmt.Errorf("origin %s in a d1 snapshot", e.Origin)
			}
		}
		return nil
	})
	if err != nil || n != 16667 {
		t.Fatalf("origin snapshot: %d entries, %v", n, err)
	}
}

func TestSnapshotEmpty(t *testing.T) {
	addr := serve(t, &fakeSource{})
	n, err := Pull(context.Background(), addr, "", func([]conn.Entry, uint64) error { return nil })
	if err != nil || n != 0 {
		t.Fatalf("%d, %v", n, err)
	}
}

func TestParseProtocol(t *testing.T) {
	for in, want := range map[string]uint8{"": 0, "tcp": 6, "UDP": 17, "sctp": 132, "47": 47} {
		if got, err := ParseProtocol(in); err != nil || got != want {
			t.Errorf("%q: %d %v", in, got, err)
		}
	}
	for _, bad := range []string{"icmpx", "0", "300"} {
		if _, err := ParseProtocol(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
