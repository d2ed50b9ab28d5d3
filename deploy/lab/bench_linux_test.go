package lab

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/saru-lb/saru/deploy/kernellab"
)

// BenchmarkCrashFailover runs the crash scenario (kill -9 of a director
// under 500 long-lived streams) several times in each mode in the kernel
// lab and reports the metrics over the trials: failover_ms (kill
// to every survivor applying an assignment without the victim) at p50 and
// p99, the worst stall_ms_p99, and, as the anchor measured in the same
// runs, detect_ms (kill to memberlist declaring the victim dead) with
// failover/detect, saru's own share of the failover. Trials whose
// membership flapped before the kill are left out and counted.
func BenchmarkCrashFailover(b *testing.B) {
	if kernellab.Inside() {
		b.Skip("benchmarks run on the host")
	}
	if os.Geteuid() != 0 {
		b.Skip("skipping, requires root")
	}
	if _, err := exec.LookPath("qemu-system-x86_64"); err != nil {
		b.Skip("skipping: qemu-system-x86_64 not installed")
	}
	const trials = 5
	bin := b.TempDir()
	for _, c := range []string{"saru", "syncd", "saructl", "sarulab"} {
		cmd := exec.Command("go", "build", "-o", filepath.Join(bin, c), "github.com/saru-lb/saru/cmd/"+c)
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("build %s: %v\n%s", c, err, out)
		}
	}
	for _, mode := range []Mode{ModeDR, ModeNAT} {
		b.Run(string(mode), func(b *testing.B) {
			only := strings.TrimSuffix(strings.Repeat("crash,", trials), ",")
			var out bytes.Buffer
			b.ResetTimer()
			_, err := RunInKernelLab(context.Background(), KernelLabOptions{
				Sarulab: filepath.Join(bin, "sarulab"), BinDir: bin, Out: &out, Timeout: 20 * time.Minute,
				Args: []string{"scenarios", "--mode", string(mode), "--only", only},
			})
			b.StopTimer()
			if err != nil {
				b.Fatalf("kernel lab: %v\n%s", err, out.String())
			}
			var fo, det, stall []time.Duration
			flapped := 0
			sc := bufio.NewScanner(&out)
			for sc.Scan() {
				line := sc.Text()
				if !strings.HasPrefix(line, `{"scenario"`) {
					continue
				}
				var r Result
				if err := json.Unmarshal([]byte(line), &r); err != nil {
					b.Fatalf("scenario line %q: %v", line, err)
				}
				switch {
				case r.Flapped:
					flapped++
				case r.Error != "" || r.Lost > 0:
					b.Fatalf("trial failed: %s", line)
				default:
					fo = append(fo, msDur(r.FailoverMS))
					det = append(det, msDur(r.DetectMS))
					stall = append(stall, msDur(r.StallP99))
				}
			}
			if len(fo) == 0 {
				b.Fatalf("no trial without a membership flap (%d flapped)\n%s", flapped, out.String())
			}
			b.ReportMetric(ms(Percentile(fo, 50)), "failover_ms-p50")
			b.ReportMetric(ms(Percentile(fo, 99)), "failover_ms-p99")
			b.ReportMetric(ms(Percentile(stall, 100)), "stall_ms_p99")
			b.ReportMetric(ms(Percentile(det, 50)), "detect_ms-p50")
			b.ReportMetric(float64(Percentile(fo, 50))/float64(Percentile(det, 50)), "failover/detect")
			b.ReportMetric(float64(flapped), "flapped-trials")
			b.Logf("%d trials measured, %d flapped", len(fo), flapped)
		})
	}
}

func msDur(v float64) time.Duration { return time.Duration(v * float64(time.Millisecond)) }
