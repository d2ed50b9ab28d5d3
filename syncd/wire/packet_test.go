package wire

import (
	"net/netip"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	syncdpb "github.com/saru-lb/saru/proto/syncd/v1"
	"github.com/saru-lb/saru/syncd/conn"
)

func packetEntry(i int) conn.Entry {
	return conn.Entry{
		Protocol:    conn.ProtoTCP,
		ClientAddr:  netip.AddrFrom4([4]byte{10, 1, byte(i >> 8), byte(i)}),
		ClientPort:  uint16(40000 + i),
		VirtualAddr: netip.MustParseAddr("198.51.100.10"), VirtualPort: 443,
		DestAddr: netip.MustParseAddr("10.0.1.1"), DestPort: 8443,
		Flags: conn.FlagMasq, State: 1, Timeout: 900, Origin: "dir1", Version: uint64(1000 + i),
	}
}

// A data packet sealed by SealData and resent by SealRetransmit opens on
// the fast path with the same header and entries, the resend marked.
func TestSealDataAndRetransmit(t *testing.T) {
	s := NewSealer(keyring(t, keyA))
	var p Packer
	p.Budget = BatchBudget(1500, false, len("dir1"))
	for i := range 10 {
		e := packetEntry(i)
		p.Add(&e)
	}
	dg, body, err := s.SealData(nil, &syncdpb.Packet{Sender: "dir1", Incarnation: 7, Sequence: 3, Batches: p.Batches()})
	if err != nil {
		t.Fatal(err)
	}
	if !IsFrom(dg, SenderPrefix("dir1")) || IsFrom(dg, SenderPrefix("dir2")) || IsFrom(dg, SenderPrefix("dir")) {
		t.Fatal("IsFrom does not tell the sender")
	}
	if len(dg) > 1500-20-8 {
		t.Fatalf("%d bytes: over the MTU budget", len(dg))
	}
	body = append([]byte(nil), body...)
	for _, tc := range []struct {
		dg   []byte
		retx bool
	}{{dg, false}, {s.SealRetransmit(nil, body), true}} {
		h, es, handled, r := s.OpenData(tc.dg, t0, nil)
		if r != OK || !handled {
			t.Fatalf("retransmit=%v: reason %v, handled %v", tc.retx, r, handled)
		}
		if h.Sender != "dir1" || h.Incarnation != 7 || h.Sequence != 3 || h.Retransmit != tc.retx || len(es) != 10 {
			t.Fatalf("retransmit=%v: header %+v, %d entries", tc.retx, h, len(es))
		}
		var pkt syncdpb.Packet
		if r, err := s.OpenPacket(tc.dg, t0, &pkt); r != OK || pkt.Retransmit != tc.retx {
			t.Fatalf("retransmit=%v: generic path %v %v, retransmit %v", tc.retx, r, err, pkt.Retransmit)
		}
	}
}

// NackSize bounds what a Nack with the largest values encodes to.
func TestNackSizeBounds(t *testing.T) {
	target := strings.Repeat("d", MaxSenderLen)
	nk := &syncdpb.Nack{Target: target, Incarnation: ^uint64(0)}
	for range MaxNackRanges {
		nk.Ranges = append(nk.Ranges, &syncdpb.SequenceRange{First: ^uint64(0), Count: ^uint32(0)})
	}
	pkt := &syncdpb.Packet{Nacks: []*syncdpb.Nack{nk}}
	if got, bound := proto.Size(pkt), NackSize(target, MaxNackRanges); got > bound {
		t.Fatalf("a Nack encodes to %d bytes, NackSize says at most %d", got, bound)
	}
}

// BatchBudget leaves room for the IP and UDP headers, the framing and the
// packet's own fields.
func TestBatchBudget(t *testing.T) {
	if got, want := BatchBudget(1500, false, 4), 1500-20-8-Overhead-PacketHeaderBound(4)-2; got != want {
		t.Fatalf("IPv4: %d, want %d", got, want)
	}
	if v4, v6 := BatchBudget(1500, false, 4), BatchBudget(1500, true, 4); v4-v6 != 20 {
		t.Fatalf("IPv6 headers are 20 bytes longer: %d vs %d", v4, v6)
	}
}
