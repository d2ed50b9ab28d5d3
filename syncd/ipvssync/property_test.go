package ipvssync

import (
	"net/netip"
	"reflect"
	"testing"

	"pgregory.net/rapid"

	"github.com/saru-lb/saru/syncd/conn"
)

func genAddr(t *rapid.T, v6 bool, label string) netip.Addr {
	if v6 {
		return netip.AddrFrom16([16]byte(rapid.SliceOfN(rapid.Byte(), 16, 16).Draw(t, label)))
	}
	return netip.AddrFrom4([4]byte(rapid.SliceOfN(rapid.Byte(), 4, 4).Draw(t, label)))
}

// genConn draws a record the kernel's backup would accept. syncd refuses
// some of them (fwmark templates, protocol 0).
func genConn(t *rapid.T) conn.Entry {
	v6 := rapid.Bool().Draw(t, "v6")
	c := conn.Entry{
		ClientPort:  rapid.Uint16().Draw(t, "cport"),
		VirtualPort: rapid.Uint16().Draw(t, "vport"),
		DestPort:    rapid.Uint16().Draw(t, "dport"),
		FWMark:      rapid.Uint32().Draw(t, "fwmark"),
		Timeout:     rapid.Uint32().Draw(t, "timeout"),
		ClientAddr:  genAddr(t, v6, "caddr"),
		VirtualAddr: genAddr(t, v6, "vaddr"),
		DestAddr:    genAddr(t, v6, "daddr"),
		Flags:       conn.Flags(rapid.Uint32().Draw(t, "flags")),
	}
	if c.Flags.Template() {
		c.Protocol = rapid.Uint8().Draw(t, "protocol")
		c.State = uint16(rapid.IntRange(0, TemplateStateLast-1).Draw(t, "state"))
	} else {
		c.Protocol = rapid.SampledFrom([]uint8{conn.ProtoTCP, conn.ProtoUDP, conn.ProtoSCTP, ProtoAH, ProtoESP}).Draw(t, "protocol")
		n, _ := NumStates(c.Protocol)
		c.State = uint16(rapid.IntRange(0, n-1).Draw(t, "state"))
	}
	if rapid.Bool().Draw(t, "seq") {
		u := func(l string) uint32 { return rapid.Uint32().Draw(t, l) }
		c.HasSeq = true
		c.Seq = conn.SeqAdjust{In: conn.SeqInfo{InitSeq: u("i1"), Delta: u("i2"), PreviousDelta: u("i3")}, Out: conn.SeqInfo{InitSeq: u("o1"), Delta: u("o2"), PreviousDelta: u("o3")}}
	}
	if rapid.Bool().Draw(t, "pe") {
		c.PEData = rapid.SliceOfN(rapid.Byte(), 1, conn.MaxPEDataLen).Draw(t, "pedata")
		c.PEName = rapid.StringMatching(`[a-z]{1,16}`).Draw(t, "pename")
	}
	return c
}

// Every record that validates survives Pack and Decode unchanged, in order,
// and every datagram respects the limits the kernel's backup enforces.
func TestPropertyPackDecodeRoundTrip(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		conns := rapid.SliceOfN(rapid.Custom(genConn), 0, 60).Draw(t, "conns")
		maxLen := rapid.IntRange(MinBackupMaxLen, 9000).Draw(t, "maxlen")
		syncID := rapid.Uint8().Draw(t, "syncid")
		msgs, refused := Pack(syncID, conns, maxLen)
		if refused != nil {
			t.Fatalf("Pack: %v", refused)
		}
		var got []conn.Entry
		var refusedOnDecode []DecodeError
		for i, b := range msgs {
			if len(b) > maxLen {
				t.Fatalf("message %d: %d bytes > maxlen %d", i, len(b), maxLen)
			}
			if int(b[2])<<8|int(b[3]) != len(b) {
				t.Fatalf("message %d: header size differs from datagram", i)
			}
			if b[4] == 0 || b[4] > MaxConnsPerMessage {
				t.Fatalf("message %d: nr_conns %d", i, b[4])
			}
			m, err := Decode(b)
			if err != nil {
				t.Fatalf("message %d: %v", i, err)
			}
			if m.SyncID != syncID || m.Version != ProtoVersion {
				t.Fatalf("message %d header %+v", i, m)
			}
			got = append(got, m.Entries...)
			refusedOnDecode = append(refusedOnDecode, m.Refused...)
		}
		if len(conns) == 0 {
			if len(msgs) != 0 {
				t.Fatalf("%d messages for no records", len(msgs))
			}
			return
		}
		// Decode takes back what syncd can carry and refuses the rest.
		var want []conn.Entry
		for i := range conns {
			if conns[i].Validate() == nil {
				want = append(want, conns[i])
			}
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("round trip differs:\n got %+v\nwant %+v", got, want)
		}
		if len(refusedOnDecode) != len(conns)-len(want) {
			t.Fatalf("%d refused on decode, want %d: %v", len(refusedOnDecode), len(conns)-len(want), refusedOnDecode)
		}
	})
}
