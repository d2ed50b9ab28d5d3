package wire

import (
	"math/rand/v2"
	"net/netip"
	"testing"

	syncdpb "github.com/saru-lb/saru/proto/syncd/v1"
	"github.com/saru-lb/saru/syncd/conn"
)

// kernelV1BytesPerEntry is the IPVS sync protocol v1's struct ip_vs_sync_v4.
const kernelV1BytesPerEntry = 36

// realisticV4 returns IPv4 entries as a director sees them: random
// clients on ephemeral ports, a few VIPs and real servers, TCP states and
// timeouts, versions a few microseconds apart.
func realisticV4(n int) []conn.Entry {
	rng := rand.New(rand.NewPCG(1, 2))
	vips := []netip.Addr{netip.MustParseAddr("198.51.100.10"), netip.MustParseAddr("198.51.100.11")}
	version := uint64(1_790_000_000_000_000_000)
	es := make([]conn.Entry, n)
	for i := range es {
		var c [4]byte
		for j := range c {
			c[j] = byte(rng.UintN(256))
		}
		version += uint64(1000 + rng.IntN(20000))
		es[i] = conn.Entry{
			Protocol:   conn.ProtoTCP,
			ClientAddr: netip.AddrFrom4(c), ClientPort: uint16(32768 + rng.IntN(28232)),
			VirtualAddr: vips[rng.IntN(len(vips))], VirtualPort: 443,
			DestAddr: netip.AddrFrom4([4]byte{10, 0, 1, byte(1 + rng.IntN(20))}), DestPort: 8443,
			Flags: conn.FlagMasq, State: uint16(1 + rng.IntN(3)), Timeout: []uint32{900, 120, 60}[rng.IntN(3)],
			Origin: "dir1", Version: version,
		}
	}
	return es
}

// BenchmarkWireBytes reports wire-bytes/entry: whole authenticated
// datagrams (header, packet, tag) for IPv4 entries packed to a 1500-byte
// path MTU, beside the kernel v1 format's 36 bytes per entry.
func BenchmarkWireBytes(b *testing.B) {
	es := realisticV4(100000)
	kr, _ := NewKeyring([]Key{{ID: 1, Secret: []byte("0123456789abcdef0123456789abcdef")}})
	s := NewSealer(kr)
	budget := 1500 - 20 - 8 - Overhead - PacketHeaderBound(len("dir1")) - 2
	var total, packets int
	b.ResetTimer()
	for range b.N {
		total, packets = 0, 0
		p := &Packer{Budget: budget}
		var seq uint64
		var dg []byte
		flush := func() {
			seq++
			var err error
			dg, err = s.SealPacket(dg[:0], &syncdpb.Packet{Sender: "dir1", Incarnation: 1_790_000_000_000_000_000, Sequence: seq, Batches: p.Batches()})
			if err != nil {
				b.Fatal(err)
			}
			if len(dg) > 1500-28 {
				b.Fatalf("datagram of %d bytes exceeds the MTU", len(dg))
			}
			total += len(dg)
			packets++
			p.Reset()
		}
		for i := range es {
			if !p.Fits(&es[i]) {
				flush()
			}
			p.Add(&es[i])
		}
		flush()
	}
	per := float64(total) / float64(len(es))
	b.ReportMetric(per, "wire-bytes/entry")
	b.ReportMetric(kernelV1BytesPerEntry, "kernel-v1-bytes/entry")
	b.ReportMetric(per/kernelV1BytesPerEntry, "wire/kernel-v1")
	b.ReportMetric(float64(len(es))/float64(packets), "entries/datagram")
}

// BenchmarkSealOpen measures encoding, signing, verifying and decoding
// of full datagrams (per entry).
func BenchmarkSealOpen(b *testing.B) {
	es := realisticV4(40)
	kr, _ := NewKeyring([]Key{{ID: 1, Secret: []byte("0123456789abcdef0123456789abcdef")}})
	s := NewSealer(kr)
	p := &Packer{Budget: 1400}
	for i := range es {
		p.Add(&es[i])
	}
	pkt := &syncdpb.Packet{Sender: "dir1", Incarnation: 1, Sequence: 1, Batches: p.Batches()}
	var dg []byte
	var out []conn.Entry
	var got syncdpb.Packet
	const rounds = 1000 // per iteration, so one iteration (make bench) is meaningful
	b.ResetTimer()
	for range b.N {
		for range rounds {
			dg, _ = s.SealPacket(dg[:0], pkt)
			got.Reset()
			if r, err := s.OpenPacket(dg, t0, &got); r != OK {
				b.Fatal(r, err)
			}
			out, _ = AppendEntries(out[:0], got.Batches[0], "dir1")
		}
	}
	b.ReportMetric(float64(b.N*rounds*len(es))/b.Elapsed().Seconds(), "codec-entries/s")
}
