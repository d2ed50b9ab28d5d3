package ipvssync

import (
	"net/netip"
	"testing"

	"github.com/saru-lb/saru/syncd/conn"
)

func benchEntries() []conn.Entry {
	es := make([]conn.Entry, 1000)
	for i := range es {
		es[i] = conn.Entry{Protocol: conn.ProtoTCP, Flags: conn.FlagDRoute, State: TCPEstablished,
			ClientAddr: netip.AddrFrom4([4]byte{10, 1, byte(i >> 8), byte(i)}), ClientPort: uint16(1024 + i),
			VirtualAddr: netip.MustParseAddr("10.0.0.254"), VirtualPort: 80,
			DestAddr: netip.MustParseAddr("10.0.1.1"), DestPort: 80, Timeout: 900}
	}
	return es
}

// BenchmarkPack is the bridge's import path: peers' entries into the
// backup's datagrams.
func BenchmarkPack(b *testing.B) {
	es := benchEntries()
	b.ReportAllocs()
	for b.Loop() {
		if _, refused := Pack(0, es, 0); refused != nil {
			b.Fatal(refused)
		}
	}
	b.ReportMetric(float64(b.N*len(es))/b.Elapsed().Seconds(), "entries/s")
}

// BenchmarkDecode is the bridge's export path: the master's datagrams into
// checked entries.
func BenchmarkDecode(b *testing.B) {
	msgs, _ := Pack(0, benchEntries(), 0)
	b.ReportAllocs()
	n := 0
	for b.Loop() {
		for _, msg := range msgs {
			m, err := Decode(msg)
			if err != nil {
				b.Fatal(err)
			}
			n += len(m.Entries)
		}
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "entries/s")
}
