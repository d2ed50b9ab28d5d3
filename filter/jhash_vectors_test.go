package filter

import (
	"encoding/hex"
	"encoding/json"
	"os"
	"testing"
)

// TestJhashKernelVectors checks the Go jhash against buckets the kernel
// computed for real packets (recorded by TestIntegrationKernelJhash).
func TestJhashKernelVectors(t *testing.T) {
	b, err := os.ReadFile(vectorsFile)
	if err != nil {
		t.Fatal(err)
	}
	var f vectorFile
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatal(err)
	}
	if len(f.Vectors) < 100 {
		t.Fatalf("%d vectors, want at least 100", len(f.Vectors))
	}
	seen := map[int]bool{}
	for _, v := range f.Vectors {
		key, err := hex.DecodeString(v.Key)
		if err != nil {
			t.Fatal(err)
		}
		seen[len(key)] = true
		if got := reciprocalScale(jhash(key, v.Seed), v.Buckets); got != v.Bucket {
			t.Errorf("jhash(%s, seed %#x) mod %d = %d, kernel said %d", v.Key, v.Seed, v.Buckets, got, v.Bucket)
		}
	}
	for _, n := range []int{4, 8, 16, 20} {
		if !seen[n] {
			t.Errorf("no vector with a %d-byte key", n)
		}
	}
}
