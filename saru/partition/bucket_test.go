package partition

import (
	"net/netip"
	"testing"
)

// Published lookup3 vectors (Bob Jenkins' driver5): the kernel's jhash is
// lookup3's hashlittle.
func TestJhashKnownAnswers(t *testing.T) {
	for _, tc := range []struct {
		key  string
		seed uint32
		want uint32
	}{
		{"", 0, 0xdeadbeef},
		{"Four score and seven years ago", 0, 0x17770551},
		{"Four score and seven years ago", 1, 0xcd628161},
	} {
		if got := Jhash([]byte(tc.key), tc.seed); got != tc.want {
			t.Errorf("Jhash(%q, %d) = %#08x, want %#08x", tc.key, tc.seed, got, tc.want)
		}
	}
}

func TestScale(t *testing.T) {
	for _, tc := range []struct{ h, n, want uint32 }{
		{0, 4096, 0},
		{0xffffffff, 4096, 4095},
		{0x80000000, 4096, 2048},
		{0x00100000, 4096, 1},
		{0x000fffff, 4096, 0},
	} {
		if got := Scale(tc.h, tc.n); got != tc.want {
			t.Errorf("Scale(%#x, %d) = %d, want %d", tc.h, tc.n, got, tc.want)
		}
	}
}

func TestBucketSenses(t *testing.T) {
	src := netip.MustParseAddrPort("192.0.2.7:40001")
	dst := netip.MustParseAddrPort("203.0.113.10:80")
	const B, seed = 4096, 0x5a5a5a5a
	if got, want := Bucket(SrcPort, B, seed, src, dst), uint32(40001&4095); got != want {
		t.Errorf("src-port: %d, want %d", got, want)
	}
	if got, want := Bucket(DstPort, B, seed, src, dst), uint32(80); got != want {
		t.Errorf("dst-port: %d, want %d", got, want)
	}
	if got, want := Bucket(SrcAddr, B, seed, src, dst), Scale(Jhash([]byte{192, 0, 2, 7}, seed), B); got != want {
		t.Errorf("src-addr: %d, want %d", got, want)
	}
	if got, want := Bucket(DstAddr, B, seed, src, dst), Scale(Jhash([]byte{203, 0, 113, 10}, seed), B); got != want {
		t.Errorf("dst-addr: %d, want %d", got, want)
	}
	key := []byte{192, 0, 2, 7, 40001 >> 8, 40001 & 0xff, 0, 0}
	if got, want := Bucket(SrcAddrPort, B, seed, src, dst), Scale(Jhash(key, seed), B); got != want {
		t.Errorf("src-addr+src-port: %d, want %d", got, want)
	}
	v6 := netip.MustParseAddrPort("[2001:db8::7]:40001")
	a16 := v6.Addr().As16()
	if got, want := Bucket(SrcAddr, B, seed, v6, dst), Scale(Jhash(a16[:], seed), B); got != want {
		t.Errorf("src-addr v6: %d, want %d", got, want)
	}
	// The seed matters: a cluster-wide seed is what keeps directors agreeing.
	if Bucket(SrcAddr, B, 1, src, dst) == Bucket(SrcAddr, B, 2, src, dst) &&
		Bucket(SrcAddr, B, 1, v6, dst) == Bucket(SrcAddr, B, 2, v6, dst) {
		t.Error("seed does not change the bucket")
	}
}

func TestBucketSpread(t *testing.T) {
	const B = 64
	seen := make([]int, B)
	for i := range 64 * 200 {
		a := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
		seen[AddrBucket(a, B, 0x1234)]++
	}
	for b, n := range seen {
		if n < 100 || n > 300 {
			t.Errorf("bucket %d got %d of 12800 addresses; jhash should spread them evenly", b, n)
		}
	}
}

func TestParseSense(t *testing.T) {
	for _, s := range []Sense{SrcPort, DstPort, SrcAddr, DstAddr, SrcAddrPort} {
		got, err := ParseSense(s.String())
		if err != nil || got != s {
			t.Errorf("ParseSense(%q) = %v, %v", s.String(), got, err)
		}
	}
	if s, err := ParseSense(""); err != nil || s != SrcPort {
		t.Errorf("default sense = %v, %v; want src-port", s, err)
	}
}

func BenchmarkBucketSrcAddrPort(b *testing.B) {
	src := netip.MustParseAddrPort("192.0.2.7:40001")
	dst := netip.MustParseAddrPort("203.0.113.10:80")
	for b.Loop() {
		Bucket(SrcAddrPort, 4096, 7, src, dst)
	}
}
