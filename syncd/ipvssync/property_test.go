package ipvssync

import (
	"net/netip"
	"reflect"
	"testing"

	"pgregory.net/rapid"
)

func genAddr(t *rapid.T, v6 bool, label string) netip.Addr {
	if v6 {
		return netip.AddrFrom16([16]byte(rapid.SliceOfN(rapid.Byte(), 16, 16).Draw(t, label)))
	}
	return netip.AddrFrom4([4]byte(rapid.SliceOfN(rapid.Byte(), 4, 4).Draw(t, label)))
}

// genConn draws a record the kernel's backup would accept.
func genConn(t *rapid.T) Conn {
	v6 := rapid.Bool().Draw(t, "v6")
	c := Conn{
		CPort:   rapid.Uint16().Draw(t, "cport"),
		VPort:   rapid.Uint16().Draw(t, "vport"),
		DPort:   rapid.Uint16().Draw(t, "dport"),
		FWMark:  rapid.Uint32().Draw(t, "fwmark"),
		Timeout: rapid.Uint32().Draw(t, "timeout"),
		CAddr:   genAddr(t, v6, "caddr"),
		VAddr:   genAddr(t, v6, "vaddr"),
		DAddr:   genAddr(t, v6, "daddr"),
		Flags:   rapid.Uint32().Draw(t, "flags"),
	}
	if c.Template() {
		c.Protocol = rapid.Uint8().Draw(t, "protocol")
		c.State = uint16(rapid.IntRange(0, TemplateStateLast-1).Draw(t, "state"))
	} else {
		c.Protocol = rapid.SampledFrom([]uint8{ProtoTCP, ProtoUDP, ProtoSCTP, ProtoAH, ProtoESP}).Draw(t, "protocol")
		n, _ := NumStates(c.Protocol)
		c.State = uint16(rapid.IntRange(0, n-1).Draw(t, "state"))
	}
	if rapid.Bool().Draw(t, "seq") {
		u := func(l string) uint32 { return rapid.Uint32().Draw(t, l) }
		c.Seq = &SeqData{In: SeqInfo{u("i1"), u("i2"), u("i3")}, Out: SeqInfo{u("o1"), u("o2"), u("o3")}}
	}
	if rapid.Bool().Draw(t, "pe") {
		c.PEData = rapid.SliceOfN(rapid.Byte(), 1, MaxPEDataLen).Draw(t, "pedata")
		c.PEName = rapid.StringMatching(`[a-z]{1,16}`).Draw(t, "pename")
	}
	for i, n := 0, rapid.IntRange(0, 2).Draw(t, "nextra"); i < n; i++ {
		c.Extra = append(c.Extra, RawOption{
			Type: OptFParam | uint8(rapid.IntRange(4, 63).Draw(t, "xtype")),
			Data: rapid.SliceOfN(rapid.Byte(), 1, 40).Draw(t, "xdata"),
		})
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
		msgs, err := Pack(syncID, conns, maxLen)
		if err != nil {
			t.Fatalf("Pack: %v", err)
		}
		var got []Conn
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
			got = append(got, m.Conns...)
		}
		if len(conns) == 0 {
			if len(msgs) != 0 {
				t.Fatalf("%d messages for no records", len(msgs))
			}
			return
		}
		if !reflect.DeepEqual(got, conns) {
			t.Fatalf("round trip differs:\n got %+v\nwant %+v", got, conns)
		}
	})
}

// Records without unknown options survive the trip through syncd's entry.
func TestPropertyEntryRoundTrip(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		c := genConn(t)
		c.Extra = nil
		c.Flags &^= FlagHashed
		if c.Protocol == 0 {
			// conn.Entry.Validate wants a protocol; the kernel's fwmark
			// templates carry 0 (IPPROTO_IP).
			c.Protocol = ProtoTCP
		}
		e := ToEntry(&c)
		if err := e.Validate(); err != nil {
			t.Fatalf("entry of a valid record does not validate: %v", err)
		}
		back := FromEntry(&e)
		if !reflect.DeepEqual(back, c) {
			t.Fatalf("round trip differs:\n got %+v\nwant %+v", back, c)
		}
	})
}
