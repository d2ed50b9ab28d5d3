package bridge

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/saru-lb/saru/deploy/kernellab"
)

// BenchmarkExportToPeer boots the kernel lab and runs the latency part of
// TestIntegrationLabIPVSSync there (two directors, real IPVS), reporting:
//
//   - export-to-peer-ms-p50/-p99: from the kernel master's datagram, as the
//     bridge captures it, to the entry in the peer kernel's table;
//   - master-flush-ms-p50/-p99: the anchor measured in the same run, from
//     the connection's threshold packet to the master's datagram (the
//     kernel's own buffering, IPVS_SYNC_FLUSH_TIME);
//   - export-to-peer-vs-master-flush: the ratio of the p50s;
//   - threshold-to-peer-ms-p50/-p99 with the bridge reading the table every
//     200 ms.
//
// The lab runs under software emulation: absolute figures are slower than
// on hardware. One iteration is one boot; b.N is ignored beyond that.
func BenchmarkExportToPeer(b *testing.B) {
	if kernellab.Inside() {
		b.Skip("benchmarks run on the host")
	}
	if _, err := exec.LookPath("qemu-system-x86_64"); err != nil {
		b.Skip("skipping: qemu-system-x86_64 not installed")
	}
	tmp := b.TempDir()
	bin := filepath.Join(tmp, "test.bin")
	cmd := exec.Command("go", "test", "-c", "-o", bin, ".")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("build test binary: %v\n%s", err, out)
	}
	var out bytes.Buffer
	b.ResetTimer()
	res, err := kernellab.Exec(context.Background(), kernellab.Spec{
		Script:  "/kernellab/test.bin -test.run '^TestIntegrationLabIPVSSync$/^ExportToPeerLatency$' -test.v -test.timeout 6m\n",
		Files:   []kernellab.File{{Guest: "/kernellab/test.bin", Host: bin}},
		Output:  &out,
		Timeout: 8 * time.Minute,
	})
	b.StopTimer()
	if err != nil || res.ExitCode != 0 {
		b.Fatalf("lab run: %v (exit %v)\n%s", err, res, out.String())
	}
	num := func(re string) float64 {
		m := regexp.MustCompile(re).FindStringSubmatch(out.String())
		if m == nil {
			b.Fatalf("no %q in the lab output:\n%s", re, out.String())
		}
		v, err := strconv.ParseFloat(m[1], 64)
		if err != nil {
			b.Fatal(err)
		}
		return v
	}
	p50 := num(`capture path .*?export-to-peer-ms p50=([0-9.]+)`)
	p99 := num(`capture path .*?export-to-peer-ms p50=[0-9.]+ p99=([0-9.]+)`)
	f50 := num(`capture path .*?threshold-to-master-send-ms p50=([0-9.]+)`)
	f99 := num(`capture path .*?threshold-to-master-send-ms p50=[0-9.]+ p99=([0-9.]+)`)
	b.ReportMetric(p50, "export-to-peer-ms-p50")
	b.ReportMetric(p99, "export-to-peer-ms-p99")
	b.ReportMetric(f50, "master-flush-ms-p50")
	b.ReportMetric(f99, "master-flush-ms-p99")
	b.ReportMetric(p50/f50, "export-to-peer-vs-master-flush")
	b.ReportMetric(num(`table-read path .*?threshold-to-peer-ms p50=([0-9.]+)`), "threshold-to-peer-ms-p50")
	b.ReportMetric(num(`table-read path .*?threshold-to-peer-ms p50=[0-9.]+ p99=([0-9.]+)`), "threshold-to-peer-ms-p99")
	b.ReportMetric(0, "ns/op")
}
