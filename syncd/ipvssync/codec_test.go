package ipvssync

import (
	"bytes"
	"encoding/hex"
	"errors"
	"net/netip"
	"reflect"
	"strings"
	"testing"

	"github.com/saru-lb/saru/syncd/conn"
)

// hexb turns a hex dump with spaces and newlines into bytes.
func hexb(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.Join(strings.Fields(s), ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// A v1 message with one IPv4 TCP record laid out by hand from
// struct ip_vs_sync_mesg + struct ip_vs_sync_v4.
const v4OneHex = `
00 07 002c 01 01 0000
00 06 0024 00000003 0001 c350 0050 1f90 00000000 00000384
0a000001 0a0000fe c0a80102`

func TestDecodeV4HandBuilt(t *testing.T) {
	m, err := Decode(hexb(t, v4OneHex))
	if err != nil {
		t.Fatal(err)
	}
	want := &Message{Version: 1, SyncID: 7, Entries: []conn.Entry{{
		Protocol: conn.ProtoTCP, Flags: conn.FlagDRoute, State: TCPEstablished,
		ClientPort: 50000, VirtualPort: 80, DestPort: 8080, Timeout: 900,
		ClientAddr: netip.MustParseAddr("10.0.0.1"), VirtualAddr: netip.MustParseAddr("10.0.0.254"),
		DestAddr: netip.MustParseAddr("192.168.1.2"),
	}}}
	if !reflect.DeepEqual(m, want) {
		t.Fatalf("got %+v\nwant %+v", m, want)
	}
	// Encoding it again gives the same bytes.
	b, err := AppendMessage(nil, 7, m.Entries, 0)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b, hexb(t, v4OneHex)) {
		t.Fatalf("re-encoded\n%x\nwant\n%x", b, hexb(t, v4OneHex))
	}
}

func TestDecodeV6WithOptionsAndPadding(t *testing.T) {
	// Record 1: IPv6 template with PE data "abc" and name "sip" ->
	// 72 + 5 + 5 = 82 bytes, padded to 84. Record 2: IPv6 with seq data
	// -> 72 + 26 = 98, last record, not padded. Total 8+84+98 = 190.
	s := `
00 01 00be 02 01 0000
01 11 0052 00001000 0000 0000 13c4 13c4 00000000 0000000a
20010db8000000000000000000000001
20010db80000000000000000000000fe
20010db8000000000000000000000a02
02 03 616263 03 03 736970 0000
01 06 0062 00000600 0001 d431 0050 0050 0000002a 00000000
20010db8000000000000000000000002
20010db80000000000000000000000fe
20010db8000000000000000000000a03
01 18 00000001 00000002 00000003 00000004 00000005 00000006`
	b := hexb(t, s)
	if len(b) != 190 {
		t.Fatalf("test vector is %d bytes", len(b))
	}
	m, err := Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Entries) != 2 {
		t.Fatalf("%d conns", len(m.Entries))
	}
	c0, c1 := m.Entries[0], m.Entries[1]
	if !c0.IPv6() || !c0.Flags.Template() || c0.PEName != "sip" || string(c0.PEData) != "abc" || c0.Timeout != 10 || c0.Protocol != conn.ProtoUDP {
		t.Fatalf("conn 0: %+v", c0)
	}
	if !c1.HasSeq || c1.Seq.In != (conn.SeqInfo{InitSeq: 1, Delta: 2, PreviousDelta: 3}) || c1.Seq.Out != (conn.SeqInfo{InitSeq: 4, Delta: 5, PreviousDelta: 6}) || c1.FWMark != 42 || c1.ClientPort != 54321 {
		t.Fatalf("conn 1: %+v", c1)
	}
	if c1.DestAddr != netip.MustParseAddr("2001:db8::a03") {
		t.Fatalf("conn 1 daddr %s", c1.DestAddr)
	}
	re, err := AppendMessage(nil, 1, m.Entries, 0)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(re, b) {
		t.Fatalf("re-encoded\n%x\nwant\n%x", re, b)
	}
}

func TestDecodeOptionalUnknownOptionSkipped(t *testing.T) {
	// IPv4 record with an unknown optional option (type 5|F_PARAM, 2
	// bytes): the kernel skips the option and takes the record.
	s := `00 00 0030 01 01 0000
00 06 0028 00000000 0001 0001 0002 0003 00000000 00000000
01020304 05060708 090a0b0c 45 02 beef`
	m, err := Decode(hexb(t, s))
	if err != nil {
		t.Fatal(err)
	}
	want := []conn.Entry{{Protocol: conn.ProtoTCP, State: 1, ClientPort: 1, VirtualPort: 2, DestPort: 3,
		ClientAddr: netip.MustParseAddr("1.2.3.4"), VirtualAddr: netip.MustParseAddr("5.6.7.8"), DestAddr: netip.MustParseAddr("9.10.11.12")}}
	if !reflect.DeepEqual(m.Entries, want) || len(m.Refused) != 0 {
		t.Fatalf("entries %+v refused %v", m.Entries, m.Refused)
	}
}

// A well-formed record the kernel's backup would skip, or syncd could not
// carry, is refused with its field and offset; the others are kept.
func TestDecodeRefusesRecords(t *testing.T) {
	good := v4Conn(1)
	badState := v4Conn(2)
	fwmarkTemplate := v4Conn(3)
	fwmarkTemplate.Protocol, fwmarkTemplate.Flags, fwmarkTemplate.State = 0, conn.FlagTemplate, 1
	mixed := v4Conn(4) // an IPv4-mapped client in an IPv6 record
	mixed.ClientAddr = netip.MustParseAddr("::ffff:10.1.0.4")
	mixed.VirtualAddr, mixed.DestAddr = netip.MustParseAddr("2001:db8::1"), netip.MustParseAddr("2001:db8::2")
	msg, err := AppendMessage(nil, 0, []conn.Entry{good, badState, fwmarkTemplate, mixed}, 0)
	if err != nil {
		t.Fatal(err)
	}
	msg[8+36+9] = TCPStateLast // record 1's state, low byte
	m, err := Decode(msg)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(m.Entries, []conn.Entry{good}) {
		t.Fatalf("entries %+v", m.Entries)
	}
	want := []struct {
		conn   int
		field  string
		offset int
	}{{1, "state", 8 + 36 + 8}, {2, "protocol", 8 + 72 + 1}, {3, "vaddr", 8 + 108 + 40}}
	if len(m.Refused) != len(want) {
		t.Fatalf("refused %v", m.Refused)
	}
	for i, w := range want {
		if r := m.Refused[i]; r.Conn != w.conn || r.Field != w.field || r.Offset != w.offset {
			t.Errorf("refusal %d: %v, want conn %d field %s offset %d", i, &r, w.conn, w.field, w.offset)
		}
	}
}

func TestDecodeV0(t *testing.T) {
	// v0 header: nr_conns 2, syncid 3, size 4+24+48 = 76; the second
	// record carries sequence options (flags has IN_SEQ), host order.
	s := `02 03 004c
00 06 c350 0050 0050 0a000001 0a0000fe 0a000002 0003 0001
00 11 1234 0035 0035 0a000003 0a0000fe 0a000004 0400 0000
01000000 02000000 03000000 04000000 05000000 06000000`
	m, err := Decode(hexb(t, s))
	if err != nil {
		t.Fatal(err)
	}
	if m.Version != 0 || m.SyncID != 3 || len(m.Entries) != 2 {
		t.Fatalf("%+v", m)
	}
	if c := m.Entries[0]; c.Protocol != conn.ProtoTCP || c.Flags != conn.FlagDRoute || c.State != 1 || c.ClientPort != 50000 || c.HasSeq {
		t.Fatalf("conn 0 %+v", c)
	}
	if c := m.Entries[1]; c.Protocol != conn.ProtoUDP || !c.HasSeq || c.Seq.In != (conn.SeqInfo{InitSeq: 1, Delta: 2, PreviousDelta: 3}) || c.Seq.Out != (conn.SeqInfo{InitSeq: 4, Delta: 5, PreviousDelta: 6}) {
		t.Fatalf("conn 1 %+v", c)
	}
	if _, err := AppendMessage(nil, 0, m.Entries, 0); err != nil {
		t.Fatalf("v0 records re-encode as v1: %v", err)
	}
}

func TestDecodeErrors(t *testing.T) {
	v4 := hexb(t, v4OneHex)
	mod := func(f func(b []byte) []byte) []byte {
		c := append([]byte(nil), v4...)
		return f(c)
	}
	tests := []struct {
		name   string
		b      []byte
		field  string
		offset int
	}{
		{"short", []byte{0, 1}, "size", 0},
		{"size mismatch", mod(func(b []byte) []byte { return append(b, 0) }), "size", 2},
		{"truncated record", mod(func(b []byte) []byte { b[3] = 20; return b[:20] }), "nr_conns", 4},
		{"record version", mod(func(b []byte) []byte { b[10] = 0x10; return b }), "ver_size", 10},
		{"record size past end", mod(func(b []byte) []byte { b[11] = 0x30; return b }), "ver_size", 10},
		{"record too small for v4", mod(func(b []byte) []byte { b[11] = 0x20; return b }), "ver_size", 10},
		{"unknown type", mod(func(b []byte) []byte { b[8] = 2; return b }), "type", 8},
		{"v6 too short", mod(func(b []byte) []byte { b[8] = 1; return b }), "ver_size", 10},
		{"count past end", mod(func(b []byte) []byte { b[4] = 2; return b }), "nr_conns", 4},
		{"trailing", mod(func(b []byte) []byte {
			b = append(b, 0, 0, 0, 0)
			b[3] = byte(len(b))
			return b
		}), "size", 44},
		{"option zero length", mod(func(b []byte) []byte {
			b = append(b, 0x41, 0)
			b[3], b[11] = byte(len(b)), 38
			return b
		}), "option length", 45},
		{"option past end", mod(func(b []byte) []byte {
			b = append(b, 0x41, 4, 1)
			b[3], b[11] = byte(len(b)), 39
			return b
		}), "option length", 45},
		{"half option header", mod(func(b []byte) []byte {
			b = append(b, 0x41)
			b[3], b[11] = byte(len(b)), 37
			return b
		}), "option", 44},
		{"unknown mandatory", mod(func(b []byte) []byte {
			b = append(b, 5, 1, 0)
			b[3], b[11] = byte(len(b)), 39
			return b
		}), "option", 44},
		{"seq wrong length", mod(func(b []byte) []byte {
			b = append(b, 1, 1, 0)
			b[3], b[11] = byte(len(b)), 39
			return b
		}), "seq_data", 45},
		{"pe name too long", mod(func(b []byte) []byte {
			b = append(b, 3, 17)
			b = append(b, make([]byte, 17)...)
			b[3], b[11] = byte(len(b)), byte(36+19)
			return b
		}), "pe_name", 45},
		{"pe data twice", mod(func(b []byte) []byte {
			b = append(b, 2, 1, 'a', 2, 1, 'b')
			b[3], b[11] = byte(len(b)), byte(36+6)
			return b
		}), "pe_data", 47},
		{"v0 truncated", []byte{1, 0, 0, 4}, "nr_conns", 0},
		{"v0 seq truncated", func() []byte {
			b := make([]byte, 28)
			b[0], b[3], b[24] = 1, 28, 0x04
			return b
		}(), "seq_data", 28},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Decode(tt.b)
			var de *DecodeError
			if !errors.As(err, &de) {
				t.Fatalf("err = %v, want *DecodeError", err)
			}
			if de.Field != tt.field || de.Offset != tt.offset {
				t.Fatalf("field %q offset %d, want %q %d (%v)", de.Field, de.Offset, tt.field, tt.offset, err)
			}
			if !strings.Contains(err.Error(), tt.field) {
				t.Fatalf("message %q does not name the field", err)
			}
		})
	}
}

func v4Conn(i int) conn.Entry {
	return conn.Entry{
		Protocol: conn.ProtoTCP, Flags: conn.FlagMasq, State: TCPEstablished,
		ClientPort: uint16(1024 + i), VirtualPort: 80, DestPort: 80, Timeout: 900,
		ClientAddr:  netip.AddrFrom4([4]byte{10, 1, byte(i >> 8), byte(i)}),
		VirtualAddr: netip.MustParseAddr("10.0.0.254"), DestAddr: netip.MustParseAddr("10.0.1.1"),
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name string
		f    func(c *conn.Entry)
		ok   bool
	}{
		{"ok", func(c *conn.Entry) {}, true},
		{"tcp state 10 ok", func(c *conn.Entry) { c.State = TCPSynAck }, true},
		{"tcp state 11", func(c *conn.Entry) { c.State = TCPStateLast }, false},
		{"udp state 1", func(c *conn.Entry) { c.Protocol, c.State = conn.ProtoUDP, 1 }, false},
		{"sctp state 13 ok", func(c *conn.Entry) { c.Protocol, c.State = conn.ProtoSCTP, 13 }, true},
		{"sctp state 14", func(c *conn.Entry) { c.Protocol, c.State = conn.ProtoSCTP, 14 }, false},
		{"unknown protocol", func(c *conn.Entry) { c.Protocol = 1 }, false},
		{"template any protocol", func(c *conn.Entry) { c.Protocol, c.Flags, c.State = 0, conn.FlagTemplate, 1 }, true},
		{"template state 2", func(c *conn.Entry) { c.Flags, c.State = conn.FlagTemplate, 2 }, false},
		{"mixed family", func(c *conn.Entry) { c.DestAddr = netip.MustParseAddr("2001:db8::1") }, false},
		{"missing addr", func(c *conn.Entry) { c.VirtualAddr = netip.Addr{} }, false},
		{"pe data no name", func(c *conn.Entry) { c.PEData = []byte("x") }, false},
		{"pe name no data", func(c *conn.Entry) { c.PEName = "sip" }, false},
		{"pe name too long", func(c *conn.Entry) { c.PEData, c.PEName = []byte("x"), strings.Repeat("n", 17) }, false},
		{"pe data too long", func(c *conn.Entry) { c.PEData, c.PEName = make([]byte, 256), "sip" }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := v4Conn(1)
			tt.f(&c)
			err := validate(&c)
			if (err == nil) != tt.ok {
				t.Fatalf("validate = %v, want ok=%v", err, tt.ok)
			}
			var fe *conn.FieldError
			if err != nil && (!errors.Is(err, ErrInvalid) || !errors.As(err, &fe)) {
				t.Fatalf("error %v does not wrap ErrInvalid and a field", err)
			}
		})
	}
}

func TestPackSplitsAtMaxLen(t *testing.T) {
	conns := make([]conn.Entry, 100)
	for i := range conns {
		conns[i] = v4Conn(i)
	}
	msgs, refused := Pack(9, conns, 0)
	if refused != nil {
		t.Fatal(refused)
	}
	// (1472-8)/36 = 40 records per message.
	if len(msgs) != 3 {
		t.Fatalf("%d messages, want 3", len(msgs))
	}
	var got []conn.Entry
	for i, b := range msgs {
		if len(b) > DefaultMaxLen {
			t.Fatalf("message %d is %d bytes", i, len(b))
		}
		m, err := Decode(b)
		if err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		if m.SyncID != 9 {
			t.Fatalf("syncid %d", m.SyncID)
		}
		got = append(got, m.Entries...)
	}
	if len(msgs[0]) != 8+40*36 {
		t.Fatalf("first message %d bytes, want %d", len(msgs[0]), 8+40*36)
	}
	if !reflect.DeepEqual(got, conns) {
		t.Fatal("records differ after pack and decode")
	}
}

func TestPackCapsRecordCount(t *testing.T) {
	conns := make([]conn.Entry, 300)
	for i := range conns {
		conns[i] = v4Conn(i)
	}
	msgs, refused := Pack(0, conns, 65000)
	if refused != nil {
		t.Fatal(refused)
	}
	if len(msgs) != 2 || msgs[0][4] != 255 || msgs[1][4] != 45 {
		t.Fatalf("%d messages", len(msgs))
	}
}

func TestPackRefuses(t *testing.T) {
	bad := v4Conn(0)
	bad.State = 99
	msgs, refused := Pack(0, []conn.Entry{v4Conn(1), bad}, 0)
	if len(refused) != 1 || refused[0].Conn != 1 || !errors.Is(&refused[0], ErrInvalid) {
		t.Fatalf("refused = %v", refused)
	}
	if m, err := Decode(msgs[0]); len(msgs) != 1 || err != nil || !reflect.DeepEqual(m.Entries, []conn.Entry{v4Conn(1)}) {
		t.Fatalf("the valid entry was not packed alone: %d messages, %v", len(msgs), err)
	}
	big := v4Conn(0)
	big.PEData, big.PEName = make([]byte, 255), "sip"
	if msgs, refused := Pack(0, []conn.Entry{big}, 200); len(refused) != 1 || len(msgs) != 0 {
		t.Fatalf("oversized record: refused = %v", refused)
	}
	if _, err := AppendMessage(nil, 0, []conn.Entry{v4Conn(0), v4Conn(1)}, 70); err == nil {
		t.Fatal("AppendMessage over maxlen succeeded")
	}
}

func TestIsV1Header(t *testing.T) {
	if !IsV1Header(hexb(t, v4OneHex)) {
		t.Fatal("v1 header not recognised")
	}
	// A v0 message whose first byte (nr_conns) is non-zero is v0.
	if IsV1Header([]byte{1, 0, 0, 8, 0, 1, 0, 0}) {
		t.Fatal("v0 header taken as v1")
	}
}
