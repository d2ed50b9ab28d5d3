package wire

import (
	"net/netip"
	"reflect"
	"testing"

	"pgregory.net/rapid"

	syncdpb "github.com/saru-lb/saru/proto/syncd/v1"
	"github.com/saru-lb/saru/syncd/conn"
)

// generic decodes a datagram the generic way: OpenPacket, then
// AppendEntries per batch.
func generic(s *Sealer, dg []byte) ([]conn.Entry, *syncdpb.Packet, Reason, error) {
	var p syncdpb.Packet
	r, err := s.OpenPacket(dg, t0, &p)
	if r != OK {
		return nil, nil, r, err
	}
	var out []conn.Entry
	for _, b := range p.Batches {
		if out, err = AppendEntries(out, b, p.Sender); err != nil {
			return nil, &p, Malformed, err
		}
	}
	return out, &p, OK, nil
}

// checkSame asserts that when the fast path handles a datagram, the
// generic path accepts it and yields the same header and entries.
// fataler is what checkSame needs of testing.T and rapid.T.
type fataler interface {
	Fatalf(format string, args ...any)
}

func checkSame(t fataler, s *Sealer, dg []byte) bool {
	h, fast, handled, r := s.OpenData(dg, t0, nil)
	gen, p, gr, err := generic(s, dg)
	if r != OK {
		if gr != r {
			t.Fatalf("fast rejects with %v, generic with %v", r, gr)
		}
		return false
	}
	if !handled {
		return false
	}
	if gr != OK {
		t.Fatalf("fast path accepted what the generic path rejects (%v: %v)", gr, err)
	}
	if h.Sender != p.Sender || h.Incarnation != p.Incarnation || h.Sequence != p.Sequence || h.Retransmit != p.Retransmit {
		t.Fatalf("header %+v, generic %v", h, p)
	}
	if len(fast) != len(gen) {
		t.Fatalf("fast %d entries, generic %d", len(fast), len(gen))
	}
	for i := range fast {
		if !reflect.DeepEqual(fast[i], gen[i]) {
			t.Fatalf("entry %d:\nfast    %+v\ngeneric %+v", i, fast[i], gen[i])
		}
	}
	return true
}

func TestOpenDataHandlesPackedPackets(t *testing.T) {
	kr := keyring(t, keyA)
	s := NewSealer(kr)
	rapid.Check(t, func(rt *rapid.T) {
		p := &Packer{Budget: 1400}
		var in []conn.Entry
		for range rapid.IntRange(1, 60).Draw(rt, "n") {
			e := genEntry(rt, rapid.Bool().Draw(rt, "v6"))
			e.Origin = "d1"
			e.HasSeq, e.Seq, e.PEName, e.PEData = false, conn.SeqAdjust{}, "", nil
			if !p.Fits(&e) {
				break
			}
			p.Add(&e)
			in = append(in, e)
		}
		retrans := rapid.Bool().Draw(rt, "retransmit")
		dg, err := s.SealPacket(nil, &syncdpb.Packet{Sender: "d1", Incarnation: 5, Sequence: 9, Retransmit: retrans, Batches: p.Batches()})
		if err != nil {
			rt.Fatal(err)
		}
		if !checkSame(rt, s, dg) {
			rt.Fatal("the fast path did not handle a packet the packer made")
		}
	})
}

func TestOpenDataLeavesTheUnusualToTheGenericPath(t *testing.T) {
	kr := keyring(t, keyA)
	s := NewSealer(kr)
	p := &Packer{Budget: 1400}
	e := conn.Entry{Protocol: 6, ClientAddr: mustAddr("192.0.2.1"), VirtualAddr: mustAddr("198.51.100.1"), DestAddr: mustAddr("10.0.0.1"),
		PEName: "sip", PEData: []byte("x"), Flags: conn.FlagTemplate, Version: 1, Origin: "d1"}
	p.Add(&e)
	withExtras, _ := s.SealPacket(nil, &syncdpb.Packet{Sender: "d1", Incarnation: 1, Sequence: 1, Batches: p.Batches()})
	control, _ := s.SealPacket(nil, &syncdpb.Packet{Sender: "d1", Incarnation: 1, ControlSequence: 1, Heartbeat: &syncdpb.Heartbeat{}})
	for name, dg := range map[string][]byte{"extras": withExtras, "control": control} {
		if _, _, handled, r := s.OpenData(dg, t0, nil); handled || r != OK {
			t.Errorf("%s: handled %v, reason %v; want the generic path", name, handled, r)
		}
	}
	if _, _, _, r := s.OpenData(withExtras[:10], t0, nil); r != Truncated {
		t.Errorf("truncated: %v", r)
	}
}

// FuzzOpenData: the fast path never disagrees with the generic one.
func FuzzOpenData(f *testing.F) {
	kr, _ := NewKeyring([]Key{{ID: 1, Secret: []byte("0123456789abcdef")}})
	s := NewSealer(kr)
	p := &Packer{Budget: 1200}
	e := conn.Entry{Protocol: 6, ClientAddr: mustAddr("192.0.2.1"), ClientPort: 40000, VirtualAddr: mustAddr("198.51.100.1"),
		VirtualPort: 443, DestAddr: mustAddr("10.0.0.1"), DestPort: 8443, State: 1, Timeout: 900, Version: 1 << 60}
	p.Add(&e)
	e6 := e
	e6.ClientAddr, e6.VirtualAddr, e6.DestAddr = mustAddr("2001:db8::1"), mustAddr("2001:db8::2"), mustAddr("2001:db8::3")
	p.Add(&e6)
	dg, _ := s.SealPacket(nil, &syncdpb.Packet{Sender: "d1", Incarnation: 9, Sequence: 3, Batches: p.Batches()})
	f.Add(dg)
	// The same body behind the re-sign marker: mutations of it are
	// authentic, so they reach both decoders.
	body := dg[HeaderLen : len(dg)-TagLen]
	f.Add(append(append(dg[:HeaderLen:HeaderLen], 0xff), body...))
	f.Fuzz(func(t *testing.T, dg []byte) {
		if len(dg) > HeaderLen && dg[HeaderLen] == 0xff {
			body := append([]byte(nil), dg[HeaderLen+1:]...)
			dg = s.Seal(append(s.AppendHeader(nil), body...))
		}
		checkSame(t, s, dg)
	})
}

func mustAddr(s string) netip.Addr { return netip.MustParseAddr(s) }
