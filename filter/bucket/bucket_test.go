package bucket

import (
	"net/netip"
	"strings"
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
	if got, want := Of(SrcPort, B, seed, src, dst), uint32(40001&4095); got != want {
		t.Errorf("src-port: %d, want %d", got, want)
	}
	if got, want := Of(DstPort, B, seed, src, dst), uint32(80); got != want {
		t.Errorf("dst-port: %d, want %d", got, want)
	}
	if got, want := Of(SrcAddr, B, seed, src, dst), Scale(Jhash([]byte{192, 0, 2, 7}, seed), B); got != want {
		t.Errorf("src-addr: %d, want %d", got, want)
	}
	if got, want := Of(DstAddr, B, seed, src, dst), Scale(Jhash([]byte{203, 0, 113, 10}, seed), B); got != want {
		t.Errorf("dst-addr: %d, want %d", got, want)
	}
	key := []byte{192, 0, 2, 7, 40001 >> 8, 40001 & 0xff, 0, 0}
	if got, want := Of(SrcAddrPort, B, seed, src, dst), Scale(Jhash(key, seed), B); got != want {
		t.Errorf("src-addr+src-port: %d, want %d", got, want)
	}
	v6 := netip.MustParseAddrPort("[2001:db8::7]:40001")
	a16 := v6.Addr().As16()
	if got, want := Of(SrcAddr, B, seed, v6, dst), Scale(Jhash(a16[:], seed), B); got != want {
		t.Errorf("src-addr v6: %d, want %d", got, want)
	}
	// The seed matters: a cluster-wide seed is what keeps directors agreeing.
	if Of(SrcAddr, B, 1, src, dst) == Of(SrcAddr, B, 2, src, dst) &&
		Of(SrcAddr, B, 1, v6, dst) == Of(SrcAddr, B, 2, v6, dst) {
		t.Error("seed does not change the bucket")
	}
}

func TestBucketSpread(t *testing.T) {
	const B = 64
	seen := make([]int, B)
	for i := range 64 * 200 {
		a := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
		seen[OfAddr(a, B, 0x1234)]++
	}
	for b, n := range seen {
		if n < 100 || n > 300 {
			t.Errorf("bucket %d got %d of 12800 addresses; jhash should spread them evenly", b, n)
		}
	}
}

func TestParseSense(t *testing.T) {
	for _, s := range Senses() {
		got, err := ParseSense(s.String())
		if err != nil || got != s {
			t.Errorf("ParseSense(%q) = %v, %v", s.String(), got, err)
		}
	}
	if s, err := ParseSense(""); err != nil || s != SrcPort {
		t.Errorf("default sense = %v, %v; want src-port", s, err)
	}
	var zero Sense
	if zero != SrcPort {
		t.Errorf("zero Sense is %v, want the seed's default src-port", zero)
	}
	if _, err := ParseSense("dst-addr+dst-port"); err == nil {
		t.Error("ParseSense accepted an unknown sense")
	}
	if _, err := ParseSense("src-mac"); err == nil || !strings.Contains(err.Error(), `sense "src-mac"`) {
		t.Errorf("ParseSense(\"src-mac\"): %v, want an error naming the sense", err)
	}
	if Sense(len(Senses())).Valid() {
		t.Error("a sense past the last is valid")
	}
	if got, want := SenseNames(), "src-port, dst-port, src-addr, dst-addr or src-addr+src-port"; got != want {
		t.Errorf("SenseNames() = %q, want %q", got, want)
	}
}

func TestParseProtocol(t *testing.T) {
	for _, p := range []Protocol{TCP, UDP, SCTP, ICMP, ICMPv6} {
		got, err := ParseProtocol(p.String())
		if err != nil || got != p {
			t.Errorf("ParseProtocol(%q) = %v, %v", p, got, err)
		}
	}
	if p, err := ParseProtocol("TCP"); err != nil || p != TCP {
		t.Errorf("ParseProtocol(\"TCP\") = %v, %v", p, err)
	}
	if _, err := ParseProtocol("both"); err == nil {
		t.Error("ParseProtocol accepted both")
	}
	if TCP != 6 || UDP != 17 || SCTP != 132 || ICMP != 1 || ICMPv6 != 58 {
		t.Error("protocols are not the IP protocol numbers")
	}
}

func TestCheckCount(t *testing.T) {
	for _, n := range []int{Min, Default, Max} {
		if err := CheckCount(n); err != nil {
			t.Errorf("CheckCount(%d): %v", n, err)
		}
	}
	for _, n := range []int{0, 8, 1000, 2 * Max} {
		if err := CheckCount(n); err == nil {
			t.Errorf("CheckCount(%d) accepted", n)
		}
	}
}

func BenchmarkBucketSrcAddrPort(b *testing.B) {
	src := netip.MustParseAddrPort("192.0.2.7:40001")
	dst := netip.MustParseAddrPort("203.0.113.10:80")
	for b.Loop() {
		Of(SrcAddrPort, 4096, 7, src, dst)
	}
}
