package partition

import (
	"encoding/json"
	"net/netip"
	"os"
	"testing"
)

// TestBucketMatchesKernel checks Bucket against buckets the Linux kernel
// computed for real packets (recorded by package filter's kernel test), so
// that what `saructl who-owns` says is what the directors' filters do.
func TestBucketMatchesKernel(t *testing.T) {
	raw, err := os.ReadFile("../../filter/testdata/kernel_jhash_vectors.json")
	if err != nil {
		t.Fatalf("kernel vectors: %v", err)
	}
	var file struct {
		Vectors []struct {
			Sense   string `json:"sense"`
			Addr    string `json:"addr"`
			Port    uint16 `json:"port"`
			Seed    uint32 `json:"seed"`
			Buckets int    `json:"buckets"`
			Bucket  uint32 `json:"bucket"`
		} `json:"vectors"`
	}
	if err := json.Unmarshal(raw, &file); err != nil {
		t.Fatal(err)
	}
	if len(file.Vectors) < 100 {
		t.Fatalf("only %d kernel vectors", len(file.Vectors))
	}
	dst := netip.MustParseAddrPort("192.0.2.1:80")
	for _, v := range file.Vectors {
		s, err := ParseSense(v.Sense)
		if err != nil {
			t.Fatal(err)
		}
		src := netip.AddrPortFrom(netip.MustParseAddr(v.Addr), v.Port)
		if got := Bucket(s, v.Buckets, v.Seed, src, dst); got != v.Bucket {
			t.Errorf("%s %s seed %d B %d: Bucket = %d, kernel said %d", v.Sense, src, v.Seed, v.Buckets, got, v.Bucket)
		}
	}
}
