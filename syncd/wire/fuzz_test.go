package wire

import (
	"net/netip"
	"testing"

	"google.golang.org/protobuf/proto"

	syncdpb "github.com/saru-lb/saru/proto/syncd/v1"
	"github.com/saru-lb/saru/syncd/conn"
)

// FuzzOpenPacket feeds arbitrary datagrams to the receive path: framing,
// authentication, packet decoding and batch decoding. Seeds include
// correctly signed packets (the fuzz key is fixed), so mutations explore
// the decoder behind the MAC too: the fuzzer re-signs its input when the
// first byte after the header is 0xff.
func FuzzOpenPacket(f *testing.F) {
	kr, err := NewKeyring([]Key{{ID: 1, Secret: []byte("0123456789abcdef")}})
	if err != nil {
		f.Fatal(err)
	}
	s := NewSealer(kr)
	p := &Packer{Budget: 1200}
	e := conn.Entry{Protocol: 6, ClientAddr: netip.MustParseAddr("192.0.2.1"), ClientPort: 1234,
		VirtualAddr: netip.MustParseAddr("198.51.100.1"), VirtualPort: 80, DestAddr: netip.MustParseAddr("10.0.0.1"),
		DestPort: 80, Timeout: 900, Version: 5, HasSeq: true, PEName: "sip", PEData: []byte("x")}
	p.Add(&e)
	e6 := e
	e6.ClientAddr, e6.VirtualAddr, e6.DestAddr = netip.MustParseAddr("2001:db8::1"), netip.MustParseAddr("2001:db8::2"), netip.MustParseAddr("2001:db8::3")
	p.Add(&e6)
	dg, _ := s.SealPacket(nil, &syncdpb.Packet{Sender: "d1", Incarnation: 9, Sequence: 1, Batches: p.Batches()})
	f.Add(dg)
	f.Add(append(append(dg[:HeaderLen:HeaderLen], 0xff), dg[HeaderLen:len(dg)-TagLen]...))
	hb, _ := s.SealPacket(nil, &syncdpb.Packet{Sender: "d1", Incarnation: 9, ControlSequence: 1,
		Heartbeat: &syncdpb.Heartbeat{HighestSequence: 3, LowestRetained: 1},
		Nacks:     []*syncdpb.Nack{{Target: "d2", Incarnation: 4, Ranges: []*syncdpb.SequenceRange{{First: 1, Count: 2}}}}})
	f.Add(hb)
	f.Add([]byte("SY\x01\x01"))
	f.Fuzz(func(t *testing.T, dg []byte) {
		if len(dg) > HeaderLen && dg[HeaderLen] == 0xff {
			// Re-sign so the decoder behind the MAC is reached.
			body := append([]byte(nil), dg[HeaderLen+1:]...)
			dg = s.Seal(append(s.AppendHeader(nil), body...))
		}
		var pkt syncdpb.Packet
		r, _ := s.OpenPacket(dg, t0, &pkt)
		if r != OK {
			return
		}
		for _, b := range pkt.Batches {
			out, err := AppendEntries(nil, b, pkt.Sender)
			if err != nil {
				if len(out) != 0 {
					t.Fatal("entries returned with an error")
				}
				continue
			}
			for i := range out {
				if err := out[i].Validate(); err != nil {
					t.Fatalf("decoded invalid entry: %v", err)
				}
				if out[i].Origin != pkt.Sender {
					t.Fatal("peer entry with a foreign origin")
				}
			}
		}
	})
}

// FuzzBatch decodes arbitrary bytes as a snapshot Batch (origins
// included): decoding never panics, and what it returns is valid.
func FuzzBatch(f *testing.F) {
	p := &Packer{Budget: 4000, WithOrigins: true}
	e := conn.Entry{Protocol: 17, ClientAddr: netip.MustParseAddr("192.0.2.1"), ClientPort: 53,
		VirtualAddr: netip.MustParseAddr("198.51.100.1"), VirtualPort: 53, DestAddr: netip.MustParseAddr("10.0.0.1"),
		Timeout: 30, Version: 9, Origin: "d2"}
	p.Add(&e)
	e.Origin, e.ClientPort = "d3", 54
	p.Add(&e)
	for _, b := range p.Batches() {
		data, _ := proto.Marshal(b)
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var b syncdpb.Batch
		if proto.Unmarshal(data, &b) != nil {
			return
		}
		out, err := AppendEntries(nil, &b, "")
		if err != nil {
			return
		}
		if len(out) != int(b.Count) {
			t.Fatalf("%d entries for count %d", len(out), b.Count)
		}
		for i := range out {
			if err := out[i].Validate(); err != nil {
				t.Fatal(err)
			}
		}
	})
}
