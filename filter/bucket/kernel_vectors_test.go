package bucket

import (
	"encoding/hex"
	"encoding/json"
	"net/netip"
	"os"
	"testing"
)

// kernelVectors are buckets the Linux kernel computed for real packets,
// recorded by package filter's TestIntegrationKernelJhash.
type kernelVectors struct {
	Vectors []struct {
		Sense   string `json:"sense"`
		Addr    string `json:"addr"`
		Port    uint16 `json:"port"`
		Key     string `json:"key_hex"`
		Seed    uint32 `json:"seed"`
		Buckets int    `json:"buckets"`
		Bucket  uint32 `json:"bucket"`
	} `json:"vectors"`
}

func readKernelVectors(t *testing.T) kernelVectors {
	t.Helper()
	raw, err := os.ReadFile("testdata/kernel_jhash_vectors.json")
	if err != nil {
		t.Fatalf("kernel vectors: %v", err)
	}
	var file kernelVectors
	if err := json.Unmarshal(raw, &file); err != nil {
		t.Fatal(err)
	}
	if len(file.Vectors) < 100 {
		t.Fatalf("only %d kernel vectors", len(file.Vectors))
	}
	return file
}

// TestBucketMatchesKernel checks Of against the kernel, so that what
// `saructl who-owns` says is what the directors' filters do.
func TestBucketMatchesKernel(t *testing.T) {
	dst := netip.MustParseAddrPort("192.0.2.1:80")
	for _, v := range readKernelVectors(t).Vectors {
		s, err := ParseSense(v.Sense)
		if err != nil {
			t.Fatal(err)
		}
		src := netip.AddrPortFrom(netip.MustParseAddr(v.Addr), v.Port)
		if got := Of(s, v.Buckets, v.Seed, src, dst); got != v.Bucket {
			t.Errorf("%s %s seed %d B %d: Of = %d, kernel said %d", v.Sense, src, v.Seed, v.Buckets, got, v.Bucket)
		}
	}
}

// TestJhashKernelVectors checks Jhash on the exact register contents the
// kernel hashed, for every key length the filter uses.
func TestJhashKernelVectors(t *testing.T) {
	seen := map[int]bool{}
	for _, v := range readKernelVectors(t).Vectors {
		key, err := hex.DecodeString(v.Key)
		if err != nil {
			t.Fatal(err)
		}
		seen[len(key)] = true
		if got := Scale(Jhash(key, v.Seed), uint32(v.Buckets)); got != v.Bucket {
			t.Errorf("jhash(%s, seed %#x) mod %d = %d, kernel said %d", v.Key, v.Seed, v.Buckets, got, v.Bucket)
		}
	}
	for _, n := range []int{4, 8, 16, 20} {
		if !seen[n] {
			t.Errorf("no vector with a %d-byte key", n)
		}
	}
}
