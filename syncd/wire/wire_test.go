package wire

import (
	"bytes"
	"net/netip"
	"strings"
	"testing"
	"time"

	"pgregory.net/rapid"

	syncdpb "github.com/saru-lb/saru/proto/syncd/v1"
	"github.com/saru-lb/saru/syncd/conn"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func keyring(t testing.TB, text string) *Keyring {
	t.Helper()
	keys, err := ParseKeyFile([]byte(text))
	if err != nil {
		t.Fatal(err)
	}
	kr, err := NewKeyring(keys)
	if err != nil {
		t.Fatal(err)
	}
	return kr
}

const (
	keyA = "1 000102030405060708090a0b0c0d0e0f\n"
	keyB = "2 f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff\n"
)

func TestParseKeyFile(t *testing.T) {
	tests := []struct{ in, err string }{
		{"# c\n\n" + keyA + keyB, ""},
		{"", "no keys"},
		{"1 00", "at least 16"},
		{"300 000102030405060708090a0b0c0d0e0f", "id"},
		{"1 zz0102030405060708090a0b0c0d0e0f", "secret"},
		{keyA + keyA, "repeated"},
		{"1", "want"},
	}
	for _, tt := range tests {
		_, err := ParseKeyFile([]byte(tt.in))
		if tt.err == "" && err != nil || tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)) {
			t.Errorf("ParseKeyFile(%q) = %v, want error containing %q", tt.in, err, tt.err)
		}
	}
}

func sealed(t testing.TB, kr *Keyring, body string) []byte {
	s := NewSealer(kr)
	return s.Seal(append(s.AppendHeader(nil), body...))
}

func TestOpenRejects(t *testing.T) {
	a := keyring(t, keyA)
	good := sealed(t, a, "hello")
	flip := append([]byte(nil), good...)
	flip[5] ^= 1
	badMagic := append([]byte(nil), good...)
	badMagic[0] = 'X'
	badVer := append([]byte(nil), good...)
	badVer[2] = 9
	otherKeySameID := sealed(t, keyring(t, "1 ffffffffffffffffffffffffffffffff"), "hello")
	tests := []struct {
		name string
		dg   []byte
		want Reason
	}{
		{"good", good, OK},
		{"truncated", good[:10], Truncated},
		{"empty", nil, Truncated},
		{"cut tag", good[:len(good)-1], BadMAC},
		{"forged body", flip, BadMAC},
		{"bad magic", badMagic, BadMagic},
		{"bad version", badVer, BadVersion},
		{"unknown key id", sealed(t, keyring(t, keyB), "hello"), UnknownKey},
		{"wrong key same id", otherKeySameID, BadMAC},
	}
	s := NewSealer(a)
	for _, tt := range tests {
		body, r := s.Open(tt.dg, t0)
		if r != tt.want {
			t.Errorf("%s: reason %v, want %v", tt.name, r, tt.want)
		}
		if r == OK && string(body) != "hello" {
			t.Errorf("%s: body %q", tt.name, body)
		}
	}
}

func TestRollover(t *testing.T) {
	old := keyring(t, keyA)
	both, err := old.Rollover(mustKeys(t, keyB+keyA), t0, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if both.SendID() != 2 {
		t.Fatalf("send id %d", both.SendID())
	}
	onlyNew, err := both.Rollover(mustKeys(t, keyB), t0, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	s := NewSealer(onlyNew)
	fromOld := sealed(t, old, "x")
	if _, r := s.Open(fromOld, t0.Add(30*time.Second)); r != OK {
		t.Fatalf("old key within grace: %v", r)
	}
	if _, r := s.Open(fromOld, t0.Add(61*time.Second)); r != ExpiredKey {
		t.Fatalf("old key after grace: %v", r)
	}
	if _, r := s.Open(sealed(t, both, "x"), t0.Add(time.Hour)); r != OK {
		t.Fatalf("new key: %v", r)
	}
	// A second rollover does not extend the old key's grace.
	again, _ := onlyNew.Rollover(mustKeys(t, keyB), t0.Add(50*time.Second), time.Minute)
	if _, r := NewSealer(again).Open(fromOld, t0.Add(70*time.Second)); r != ExpiredKey {
		t.Fatalf("grace extended by a later rollover: %v", r)
	}
}

func mustKeys(t *testing.T, s string) []Key {
	k, err := ParseKeyFile([]byte(s))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func genEntry(t *rapid.T, v6 bool) conn.Entry {
	ad := func(name string) netip.Addr {
		if v6 {
			b := rapid.SliceOfN(rapid.Byte(), 16, 16).Draw(t, name)
			b[0] = 0x20
			return netip.AddrFrom16([16]byte(b))
		}
		return netip.AddrFrom4([4]byte(rapid.SliceOfN(rapid.Byte(), 4, 4).Draw(t, name)))
	}
	e := conn.Entry{
		Protocol:   rapid.SampledFrom([]uint8{6, 17, 132}).Draw(t, "proto"),
		ClientAddr: ad("c"), ClientPort: rapid.Uint16().Draw(t, "cport"),
		VirtualAddr: ad("v"), VirtualPort: rapid.Uint16().Draw(t, "vport"),
		DestAddr: ad("d"), DestPort: rapid.Uint16().Draw(t, "dport"),
		FWMark:  rapid.Uint32Range(0, 3).Draw(t, "fwmark"),
		Flags:   conn.Flags(rapid.Uint32().Draw(t, "flags")),
		State:   rapid.Uint16().Draw(t, "state"),
		Timeout: rapid.Uint32().Draw(t, "timeout"),
		Version: rapid.Uint64().Draw(t, "version"),
		Origin:  rapid.SampledFrom([]string{"d1", "d2", "director-3"}).Draw(t, "origin"),
	}
	if rapid.IntRange(0, 4).Draw(t, "extra") == 0 {
		e.HasSeq = true
		e.Seq.In.Delta = rapid.Uint32().Draw(t, "delta")
		e.Seq.Out.InitSeq = rapid.Uint32().Draw(t, "init")
		e.PEName = "sip"
		e.PEData = []byte(rapid.StringN(1, 20, 20).Draw(t, "pedata"))
	}
	return e
}

func equalEntry(a, b conn.Entry) bool {
	return a.Protocol == b.Protocol && a.ClientAddr == b.ClientAddr && a.ClientPort == b.ClientPort &&
		a.VirtualAddr == b.VirtualAddr && a.VirtualPort == b.VirtualPort && a.DestAddr == b.DestAddr &&
		a.DestPort == b.DestPort && a.FWMark == b.FWMark && a.Flags == b.Flags && a.State == b.State &&
		a.Timeout == b.Timeout && a.HasSeq == b.HasSeq && a.Seq == b.Seq && a.PEName == b.PEName &&
		bytes.Equal(a.PEData, b.PEData) && a.Origin == b.Origin && a.Version == b.Version
}

// TestPackRoundTrip: entries packed, sealed, opened and decoded come back
// equal, and the datagram respects the budget.
func TestPackRoundTrip(t *testing.T) {
	kr := keyring(t, keyA)
	rapid.Check(t, func(rt *rapid.T) {
		withOrigins := rapid.Bool().Draw(rt, "withOrigins")
		budget := rapid.IntRange(200, 1400).Draw(rt, "budget")
		p := &Packer{Budget: budget, WithOrigins: withOrigins}
		var in []conn.Entry
		n := rapid.IntRange(1, 200).Draw(rt, "n")
		for range n {
			e := genEntry(rt, rapid.Bool().Draw(rt, "v6"))
			if !withOrigins {
				e.Origin = "d1"
			}
			if !p.Fits(&e) {
				break
			}
			p.Add(&e)
			in = append(in, e)
		}
		pkt := &syncdpb.Packet{Sender: "d1", Incarnation: 1, Sequence: 7, Batches: p.Batches()}
		s := NewSealer(kr)
		dg, err := s.SealPacket(nil, pkt)
		if err != nil {
			rt.Fatal(err)
		}
		if over := len(dg) - Overhead - PacketHeaderBound(2); over > budget && len(in) > 1 {
			rt.Fatalf("packet body %d bytes over budget %d", over, budget)
		}
		var got syncdpb.Packet
		r, err := s.OpenPacket(dg, t0, &got)
		if withOrigins {
			if r != Malformed {
				rt.Fatalf("peer packet with origins accepted: %v", r)
			}
			// Snapshot path: decode batches directly.
			got.Batches = pkt.Batches
		} else if r != OK {
			rt.Fatalf("open: %v %v", r, err)
		}
		var out []conn.Entry
		for _, b := range got.Batches {
			if out, err = AppendEntries(out, b, "d1"); err != nil {
				rt.Fatal(err)
			}
		}
		if len(out) != len(in) {
			rt.Fatalf("decoded %d entries, packed %d", len(out), len(in))
		}
		// Order is v4 batch then v6 batch.
		var want []conn.Entry
		for _, e := range in {
			if !e.IPv6() {
				want = append(want, e)
			}
		}
		for _, e := range in {
			if e.IPv6() {
				want = append(want, e)
			}
		}
		for i := range want {
			if !equalEntry(want[i], out[i]) {
				rt.Fatalf("entry %d:\n got %+v\nwant %+v", i, out[i], want[i])
			}
		}
		p.Reset()
		if p.Len() != 0 || len(p.Batches()) != 0 {
			rt.Fatal("reset packer not empty")
		}
	})
}

func TestAppendEntriesRejects(t *testing.T) {
	good := func() *syncdpb.Batch {
		return &syncdpb.Batch{Count: 1, Protocol: []uint32{6}, ClientV4: []uint32{1}, VirtualV4: []uint32{2}, DestinationV4: []uint32{3}}
	}
	tests := []struct {
		name string
		mod  func(*syncdpb.Batch)
		want string
	}{
		{"ok", func(*syncdpb.Batch) {}, ""},
		{"short column", func(b *syncdpb.Batch) { b.ClientPort = []uint32{1, 2} }, "client_port"},
		{"missing address", func(b *syncdpb.Batch) { b.VirtualV4 = nil }, "virtual_v4"},
		{"port range", func(b *syncdpb.Batch) { b.ClientPort = []uint32{70000} }, "client_port"},
		{"protocol zero", func(b *syncdpb.Batch) { b.Protocol = []uint32{0} }, "protocol"},
		{"origin index", func(b *syncdpb.Batch) { b.Origins = []string{"a"}; b.OriginIndex = []uint32{3} }, "origin_index"},
		{"extra index", func(b *syncdpb.Batch) { b.Extras = []*syncdpb.EntryExtra{{Index: 5}} }, "extras"},
		{"huge count", func(b *syncdpb.Batch) { b.Count = 1 << 30 }, "count"},
		{"v6 len", func(b *syncdpb.Batch) { b.Ipv6 = true }, "client_v6"},
	}
	for _, tt := range tests {
		b := good()
		tt.mod(b)
		out, err := AppendEntries([]conn.Entry{{}}, b, "d1")
		if tt.want == "" {
			if err != nil || len(out) != 2 {
				t.Errorf("%s: %v", tt.name, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: error %v, want it to name %q", tt.name, err, tt.want)
		}
		if len(out) != 1 {
			t.Errorf("%s: half-applied: %d entries", tt.name, len(out))
		}
	}
}

func TestCheckPacket(t *testing.T) {
	tests := []struct {
		name string
		p    *syncdpb.Packet
		ok   bool
	}{
		{"data", &syncdpb.Packet{Sender: "a", Incarnation: 1, Sequence: 1}, true},
		{"control", &syncdpb.Packet{Sender: "a", Incarnation: 1, ControlSequence: 1, Heartbeat: &syncdpb.Heartbeat{}}, true},
		{"no sender", &syncdpb.Packet{Incarnation: 1, Sequence: 1}, false},
		{"no incarnation", &syncdpb.Packet{Sender: "a", Sequence: 1}, false},
		{"both sequences", &syncdpb.Packet{Sender: "a", Incarnation: 1, Sequence: 1, ControlSequence: 1}, false},
		{"no sequence", &syncdpb.Packet{Sender: "a", Incarnation: 1}, false},
		{"data with heartbeat", &syncdpb.Packet{Sender: "a", Incarnation: 1, Sequence: 1, Heartbeat: &syncdpb.Heartbeat{}}, false},
		{"control with batch", &syncdpb.Packet{Sender: "a", Incarnation: 1, ControlSequence: 1, Batches: []*syncdpb.Batch{{}}}, false},
	}
	for _, tt := range tests {
		if err := CheckPacket(tt.p); (err == nil) != tt.ok {
			t.Errorf("%s: %v", tt.name, err)
		}
	}
}
