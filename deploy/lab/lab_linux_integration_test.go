package lab

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/saru-lb/saru/deploy/kernellab"
)

// guestBin is where the lab test puts the daemons in the guest.
const guestBin = "/usr/local/bin"

// tlog writes narrative lines to t.Log.
type tlog struct {
	t  *testing.T
	mu sync.Mutex
	b  []byte
}

func (w *tlog) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.b = append(w.b, p...)
	for {
		i := strings.IndexByte(string(w.b), '\n')
		if i < 0 {
			return len(p), nil
		}
		w.t.Log(string(w.b[:i]))
		w.b = w.b[i+1:]
	}
}

// grpcurlPath is the grpcurl `make tools` installs.
func grpcurlPath() string {
	gopath := os.Getenv("GOPATH")
	if gopath == "" {
		if out, err := exec.Command("go", "env", "GOPATH").Output(); err == nil {
			gopath = strings.TrimSpace(string(out))
		}
	}
	return filepath.Join(gopath, "bin", "grpcurl")
}

// labOptions boots the kernel lab with the daemons and grpcurl.
func labOptions(t *testing.T) []kernellab.Option {
	opts := []kernellab.Option{
		kernellab.WithGoBinary(guestBin+"/saru", "github.com/saru-lb/saru/cmd/saru"),
		kernellab.WithGoBinary(guestBin+"/syncd", "github.com/saru-lb/saru/cmd/syncd"),
		kernellab.WithGoBinary(guestBin+"/saructl", "github.com/saru-lb/saru/cmd/saructl"),
		kernellab.WithGoBinary(guestBin+"/sarulab", "github.com/saru-lb/saru/cmd/sarulab"),
		kernellab.WithMemory(2048),
		kernellab.WithTimeout(20 * time.Minute),
	}
	if g := grpcurlPath(); !kernellab.Inside() {
		if _, err := os.Stat(g); err != nil {
			t.Fatalf("grpcurl not installed at %s (make tools)", g)
		}
		opts = append(opts, kernellab.WithHostBinary(g), kernellab.WithEnv("SARULAB_GRPCURL", g))
	}
	return opts
}

// runScenario runs one scenario in the guest, logs its JSON line and
// returns the line decoded back. A run whose membership flapped before the
// scenario acted (the host starved the emulated guest; the line says so)
// is repeated, at most three runs in all.
func runScenario(t *testing.T, name string, so ScenarioOptions) Result {
	t.Helper()
	var r Result
	for attempt := 1; attempt <= 3; attempt++ {
		if r = runScenarioOnce(t, name, so); !r.Flapped {
			return r
		}
		t.Logf("run %d of %s: saru's membership flapped before the scenario acted; running it again", attempt, name)
	}
	return r
}

func runScenarioOnce(t *testing.T, name string, so ScenarioOptions) Result {
	t.Helper()
	so.BinDir = guestBin
	so.Out = &tlog{t: t}
	if g := os.Getenv("SARULAB_GRPCURL"); g != "" {
		os.Setenv("PATH", filepath.Dir(g)+":"+os.Getenv("PATH"))
	}
	line := RunScenario(context.Background(), name, so).JSON()
	t.Log(line)
	var r Result
	if err := json.Unmarshal([]byte(line), &r); err != nil {
		t.Fatalf("scenario line %q is not JSON: %v", line, err)
	}
	for _, k := range []string{`"scenario"`, `"mode"`, `"connections"`, `"lost"`, `"stall_ms_p50"`, `"stall_ms_p99"`, `"failover_ms"`, `"moved"`} {
		if !strings.Contains(line, k+":") {
			t.Errorf("scenario line lacks %s", k)
		}
	}
	if r.Scenario != name || r.Mode != so.Mode {
		t.Errorf("line is for %s/%s, want %s/%s", r.Scenario, r.Mode, name, so.Mode)
	}
	return r
}

// TestIntegrationSarulabWithIPVS runs the sarulab command as on a host
// whose kernel has IPVS (--kernel-lab never: the guest's kernel has it),
// the path `make lab` takes there, and checks its scenario line.
func TestIntegrationSarulabWithIPVS(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("skipping, requires root")
	}
	kernellab.Run(t, func(t *testing.T) {
		cmd := exec.Command(guestBin+"/sarulab", "scenarios", "--kernel-lab", "never", "--only", "spread", "--bin-dir", guestBin)
		cmd.Stderr = &tlog{t: t}
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("sarulab scenarios: %v\n%s", err, out)
		}
		var r Result
		if err := json.Unmarshal(out, &r); err != nil {
			t.Fatalf("sarulab printed %q, not one JSON line: %v", out, err)
		}
		if r.Scenario != "spread" || r.Mode != ModeDR || r.Error != "" || r.Lost != 0 || r.Connections != 300 {
			t.Fatalf("scenario line %s", out)
		}
	}, labOptions(t)...)
}

// TestIntegrationScenarios runs the lab's scenarios inside the kernel lab
// (real IPVS, real saru and syncd) and asserts on their JSON lines.
func TestIntegrationScenarios(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("skipping, requires root")
	}
	kernellab.Run(t, func(t *testing.T) {
		// Without syncd a crash must break exactly the connections whose
		// director changed: the baseline, and proof that the measurement
		// sees losses.
		t.Run("crash-nosync-dr", func(t *testing.T) {
			r := runScenario(t, "crash", ScenarioOptions{Mode: ModeDR, NoSync: true, Streams: 150})
			if r.Error != "" {
				t.Fatalf("crash: %s", r.Error)
			}
			if r.Connections != 150 || r.Moved == 0 || r.Lost != r.Moved {
				t.Errorf("without sync, a crash should break exactly the connections that changed director: lost %d, moved %d, of %d", r.Lost, r.Moved, r.Connections)
			}
		})
		for _, tc := range []struct {
			name string
			mode Mode
			min  int  // connections at least
			fo   bool // failover_ms is measured
		}{
			{"spread", ModeDR, 300, false},
			{"crash", ModeDR, 500, true},
			{"rolling-maintenance", ModeDR, 200, true},
			{"join", ModeDR, 200, true},
			{"inspection", ModeDR, 50, false},
			{"lossy-sync", ModeDR, 500, true},
			{"spread", ModeNAT, 300, false},
			{"crash", ModeNAT, 500, true},
			{"rolling-maintenance", ModeNAT, 200, true},
			{"inspection", ModeNAT, 50, false},
			{"join", ModeNAT, 200, true},
			{"lossy-sync", ModeNAT, 500, true},
		} {
			t.Run(tc.name+"-"+string(tc.mode), func(t *testing.T) {
				r := runScenario(t, tc.name, ScenarioOptions{Mode: tc.mode})
				if r.Error != "" {
					t.Errorf("%s: %s", tc.name, r.Error)
				}
				if r.Connections < tc.min {
					t.Errorf("%s: %d connections, want at least %d", tc.name, r.Connections, tc.min)
				}
				if r.Lost != 0 {
					t.Errorf("%s: lost %d of %d connections", tc.name, r.Lost, r.Connections)
				}
				if tc.fo && r.FailoverMS <= 0 {
					t.Errorf("%s: failover_ms %v not measured", tc.name, r.FailoverMS)
				}
				if tc.fo && r.Moved == 0 {
					t.Errorf("%s: no connection changed director, so nothing was proven", tc.name)
				}
			})
		}
	}, labOptions(t)...)
}
