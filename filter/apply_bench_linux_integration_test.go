package filter

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/saru-lb/saru/filter/bucket"
)

// benchAssignments: 65536 buckets spread over 4 directors, then director 4
// leaves and its buckets move to the other three.
func benchAssignments() (before, after [][]uint32) {
	rng := rand.New(rand.NewPCG(3, 4))
	before, after = make([][]uint32, 4), make([][]uint32, 4)
	for b := range uint32(bucket.Max) {
		d := rng.IntN(4)
		before[d] = append(before[d], b)
		if d == 3 {
			d = rng.IntN(3)
		}
		after[d] = append(after[d], b)
	}
	return before, after
}

func mustBuckets(tb testing.TB, bs []uint32) *BucketSet {
	s, err := NewBucketSet(bucket.Max, bs...)
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

// nftElements writes `<verb> element inet <table> owned { ... }`.
func nftElements(sb *strings.Builder, verb, table string, bs []uint32) {
	if len(bs) == 0 {
		return
	}
	fmt.Fprintf(sb, "%s element inet %s %s { ", verb, table, SetOwned)
	for i, b := range bs {
		if i > 0 {
			sb.WriteString(", ")
		}
		fmt.Fprint(sb, b)
	}
	sb.WriteString(" }\n")
}

// nftDelta is the change Apply sends, for `nft -f`: delete the buckets given
// up, add the buckets gained.
func nftDelta(table string, from, to *BucketSet) string {
	add, del := diffBuckets(from, to)
	var sb strings.Builder
	nftElements(&sb, "delete", table, del)
	nftElements(&sb, "add", table, add)
	return sb.String()
}

// nftReplace is the full replacement (drift repair), for `nft -f`.
func nftReplace(table string, to *BucketSet) string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "flush set inet %s %s\n", table, SetOwned)
	nftElements(&sb, "add", table, to.Buckets())
	return sb.String()
}

// BenchmarkApply reassigns 65536 buckets among 4 directors (one leaves) on
// the three survivors, each in its own namespace, through Apply and through
// Debian's `nft -f` applying the same change (delete the buckets given up,
// add the buckets gained): apply-ms, nft-cli-ms, apply/nft-cli. It also
// measures the full replacement (flush the set, add every owned bucket) that
// drift repair uses: apply-full-ms, nft-cli-full-ms. Times are
// medians per director change.
func BenchmarkApply(b *testing.B) {
	requireRoot(b)
	if _, err := exec.LookPath("nft"); err != nil {
		b.Fatalf("nft (Debian package nftables) is required: %v", err)
	}
	before, after := benchAssignments()
	cfg := Config{Buckets: bucket.Max, Seed: 0x51, Services: []Service{
		{VIP: netip.MustParseAddr("10.96.0.1"), Protocols: []bucket.Protocol{bucket.TCP, bucket.UDP}, Sense: bucket.SrcPort},
		{VIP: netip.MustParseAddr("fd00:96::1"), Protocols: []bucket.Protocol{bucket.TCP, bucket.UDP}, Sense: bucket.SrcAddrPort},
	}}
	ctx := context.Background()
	dirs := make([]*netNS, 3)
	filters := make([]*Filter, 3)
	beforeSets, afterSets := make([]*BucketSet, 3), make([]*BucketSet, 3)
	deltaScripts, fullScripts := make([]string, 3), make([]string, 3)
	tmp := b.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(tmp, name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			b.Fatal(err)
		}
		return p
	}
	for d := range dirs {
		dirs[d] = newNetNS(b, fmt.Sprintf("bench%d", d))
		f, err := Open(ctx, cfg, WithNetNS(dirs[d].FD))
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = f.Close(ctx) })
		filters[d] = f
		beforeSets[d], afterSets[d] = mustBuckets(b, before[d]), mustBuckets(b, after[d])
		deltaScripts[d] = write(fmt.Sprintf("delta%d.nft", d), nftDelta(cfg.TableName(), beforeSets[d], afterSets[d]))
		fullScripts[d] = write(fmt.Sprintf("full%d.nft", d), nftReplace(cfg.TableName(), afterSets[d]))
	}
	reset := func() {
		for d, f := range filters {
			if err := f.Apply(ctx, beforeSets[d]); err != nil {
				b.Fatal(err)
			}
		}
	}
	checkAfter := func(how string) {
		for d, f := range filters {
			if got, want := kernelBuckets(b, f), afterSets[d].Buckets(); !slices.Equal(got, want) {
				b.Fatalf("%s on d%d: kernel set differs from the assignment: %d buckets, want %d", how, d+1, len(got), len(want))
			}
		}
	}
	nft := func(d int, script string) time.Duration {
		var took time.Duration
		err := dirs[d].Do(func() error {
			// A child forked from this locked thread starts in the
			// director's namespace.
			start := time.Now()
			out, err := exec.Command("nft", "-f", script).CombinedOutput()
			took = time.Since(start)
			if err != nil {
				return fmt.Errorf("nft -f: %v: %s", err, out)
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
		return took
	}
	// Each path applies the change once per director per round; medians
	// over rounds keep a noisy machine from deciding the ratio.
	const rounds = 5
	var applyT, nftT, fullT, nftFullT []time.Duration
	for b.Loop() {
		for range rounds {
			b.StopTimer()
			reset()
			b.StartTimer()
			for d, f := range filters {
				start := time.Now()
				if err := f.Apply(ctx, afterSets[d]); err != nil {
					b.Fatal(err)
				}
				applyT = append(applyT, time.Since(start))
			}
			b.StopTimer()
			checkAfter("Apply")
			reset()
			for d := range filters {
				nftT = append(nftT, nft(d, deltaScripts[d]))
				filters[d].applied = copyBuckets(afterSets[d])
			}
			checkAfter("nft -f delta")
			reset()
			for d, f := range filters {
				start := time.Now()
				if err := f.replace(afterSets[d]); err != nil {
					b.Fatal(err)
				}
				fullT = append(fullT, time.Since(start))
				f.applied = copyBuckets(afterSets[d])
			}
			checkAfter("full replace")
			reset()
			for d := range filters {
				nftFullT = append(nftFullT, nft(d, fullScripts[d]))
				filters[d].applied = copyBuckets(afterSets[d])
			}
			checkAfter("nft -f full")
			b.StartTimer()
		}
	}
	b.StopTimer()
	ms := func(ds []time.Duration) float64 {
		slices.Sort(ds)
		return float64(ds[len(ds)/2].Microseconds()) / 1000
	}
	b.ReportMetric(ms(applyT), "apply-ms")
	b.ReportMetric(ms(nftT), "nft-cli-ms")
	b.ReportMetric(ms(applyT)/ms(nftT), "apply/nft-cli")
	b.ReportMetric(ms(fullT), "apply-full-ms")
	b.ReportMetric(ms(nftFullT), "nft-cli-full-ms")
	b.ReportMetric(ms(fullT)/ms(nftFullT), "apply-full/nft-cli-full")
	moved := 0
	for d := range filters {
		a, r := diffBuckets(beforeSets[d], afterSets[d])
		moved += len(a) + len(r)
	}
	b.ReportMetric(float64(moved)/float64(len(filters)), "changed-elements")
}
