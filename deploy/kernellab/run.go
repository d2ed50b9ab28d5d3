package kernellab

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// Option adjusts a lab run started by [Run].
type Option func(*runConfig)

type runConfig struct {
	spec   Spec
	builds []build
}

type build struct {
	guest, pkg string
}

// WithTimeout kills the VM after d (default 10 minutes, and never later than
// the host test's deadline allows).
func WithTimeout(d time.Duration) Option { return func(c *runConfig) { c.spec.Timeout = d } }

// WithMemory sets the guest's memory in MiB (default 1024).
func WithMemory(mb int) Option { return func(c *runConfig) { c.spec.MemoryMB = mb } }

// WithCPUs sets the guest's CPU count (default 2).
func WithCPUs(n int) Option { return func(c *runConfig) { c.spec.CPUs = n } }

// WithFile copies a host file or directory to an absolute guest path.
func WithFile(guest, host string) Option {
	return func(c *runConfig) { c.spec.Files = append(c.spec.Files, File{Guest: guest, Host: host}) }
}

// WithData writes data to an absolute guest path with the given permissions.
func WithData(guest string, data []byte, perm os.FileMode) Option {
	return func(c *runConfig) {
		c.spec.Files = append(c.spec.Files, File{Guest: guest, Data: data, Mode: perm})
	}
}

// WithGoBinary builds the Go package pkg (an import path such as
// "github.com/saru-lb/saru/cmd/syncd") with CGO_ENABLED=0 and puts the static
// binary at the absolute guest path, e.g. "/usr/local/bin/syncd"
// (/usr/local/bin is on the guest's PATH).
func WithGoBinary(guest, pkg string) Option {
	return func(c *runConfig) { c.builds = append(c.builds, build{guest: guest, pkg: pkg}) }
}

// WithModules loads extra kernel modules (and their dependencies).
func WithModules(names ...string) Option {
	return func(c *runConfig) { c.spec.Modules = append(c.spec.Modules, names...) }
}

// WithHostBinary copies a host executable and its shared libraries to the
// same path in the guest.
func WithHostBinary(path string) Option {
	return func(c *runConfig) { c.spec.HostBinaries = append(c.spec.HostBinaries, path) }
}

// WithEnv adds KEY=value to the guest test's environment.
func WithEnv(key, value string) Option {
	return func(c *runConfig) { c.spec.Env = append(c.spec.Env, key+"="+value) }
}

// Run runs body inside the kernel lab. Inside the guest it simply calls
// body(t). On the host it builds this package's test binary, boots the lab and
// runs the binary there restricted to t's name; it fails t with the guest's
// exit status when the guest test fails, skips t when the guest test skipped,
// and does not call body on the host. Every line of guest output is logged
// with t.Log. It skips t only in -short mode and when qemu-system-x86_64 is
// not installed.
// Host tests that call Run may run in parallel (each boots its own VM).
func Run(t *testing.T, body func(t *testing.T), opts ...Option) {
	t.Helper()
	if Inside() {
		body(t)
		return
	}
	if testing.Short() {
		t.Skip("skipping kernel lab test in -short mode")
	}
	if _, err := exec.LookPath(qemuBinary); err != nil {
		t.Skipf("skipping: %v", ErrNoQEMU)
	}
	var c runConfig
	for _, o := range opts {
		o(&c)
	}
	ctx := context.Background()
	if dl, ok := t.Deadline(); ok {
		left := time.Until(dl) - 15*time.Second
		if left <= 0 {
			t.Fatalf("kernel lab: no time left before the test deadline")
		}
		if c.spec.Timeout <= 0 || c.spec.Timeout > left {
			c.spec.Timeout = left
		}
	}
	if c.spec.Timeout <= 0 {
		c.spec.Timeout = 10 * time.Minute
	}

	tmp := t.TempDir()
	testBin := filepath.Join(tmp, "test.bin")
	if err := goBuild(ctx, []string{"test", "-c", "-o", testBin, "."}); err != nil {
		t.Fatalf("kernel lab: build test binary: %v", err)
	}
	c.spec.Files = append(c.spec.Files, File{Guest: "/kernellab/test.bin", Host: testBin})
	if _, err := os.Stat("testdata"); err == nil {
		c.spec.Files = append(c.spec.Files, File{Guest: "/kernellab/work/testdata", Host: "testdata"})
	}
	for i, b := range c.builds {
		out := filepath.Join(tmp, fmt.Sprintf("bin%d", i))
		if err := goBuild(ctx, []string{"build", "-o", out, b.pkg}); err != nil {
			t.Fatalf("kernel lab: build %s: %v", b.pkg, err)
		}
		c.spec.Files = append(c.spec.Files, File{Guest: b.guest, Host: out})
	}

	pattern := testPattern(t.Name())
	guestTimeout := c.spec.Timeout - 30*time.Second
	if guestTimeout < 30*time.Second {
		guestTimeout = c.spec.Timeout * 3 / 4
	}
	args := []string{"/kernellab/test.bin", "-test.run", pattern, "-test.v", "-test.count=1",
		"-test.timeout", guestTimeout.String()}
	quoted := make([]string, len(args))
	for i, a := range args {
		quoted[i] = shellQuote(a)
	}
	c.spec.Script = strings.Join(quoted, " ") + "\n"

	lw := &lineLogger{t: t}
	c.spec.Output = lw
	res, err := Exec(ctx, c.spec)
	lw.flush()
	if res != nil {
		t.Logf("kernel lab: kernel %s, prepare %v, boot to ready %v (guest uptime %v), total %v",
			res.Kernel, res.Prepare.Round(time.Millisecond), res.BootToReady.Round(time.Millisecond),
			res.GuestUptimeAtReady.Round(time.Millisecond), res.Total.Round(time.Millisecond))
	}
	if errors.Is(err, ErrNoQEMU) {
		t.Skipf("skipping: %v", err)
	}
	if err != nil {
		t.Fatalf("%v", err)
	}
	switch v, msg := judge(t.Name(), pattern, res.ExitCode, lw.text()); v {
	case verdictFail:
		t.Fatal(msg)
	case verdictSkip:
		t.Skip(msg)
	}
}

type verdict int

const (
	verdictPass verdict = iota
	verdictFail
	verdictSkip
)

// judge decides the host test's outcome from the guest test binary's exit
// status and -test.v output.
func judge(name, pattern string, exit int, out string) (verdict, string) {
	top := strings.SplitN(name, "/", 2)[0]
	switch {
	case exit != 0:
		return verdictFail, fmt.Sprintf("kernel lab: guest test %s failed with exit status %d (guest output above)", name, exit)
	case strings.Contains(out, "testing: warning: no tests to run"):
		return verdictFail, fmt.Sprintf("kernel lab: guest test binary found no test matching %q", pattern)
	case regexp.MustCompile(`(?m)^--- SKIP: ` + regexp.QuoteMeta(top) + ` `).MatchString(out):
		return verdictSkip, fmt.Sprintf("kernel lab: guest test %s skipped (guest output above)", top)
	case !regexp.MustCompile(`(?m)^--- PASS: ` + regexp.QuoteMeta(top) + ` `).MatchString(out):
		return verdictFail, fmt.Sprintf("kernel lab: guest exited 0 without reporting %s as passed", top)
	}
	return verdictPass, ""
}

// testPattern turns a test name into a -test.run pattern matching exactly it.
func testPattern(name string) string {
	parts := strings.Split(name, "/")
	for i, p := range parts {
		parts[i] = "^" + regexp.QuoteMeta(p) + "$"
	}
	return strings.Join(parts, "/")
}

// goBuild runs the go command with CGO disabled, in the working directory.
func goBuild(ctx context.Context, args []string) error {
	goCmd, err := exec.LookPath("go")
	if err != nil {
		goCmd = filepath.Join(os.Getenv("GOROOT"), "bin", "go")
	}
	cmd := exec.CommandContext(ctx, goCmd, args...)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// lineLogger logs each complete line written to it with t.Log and keeps a
// copy of everything.
type lineLogger struct {
	t       *testing.T
	mu      sync.Mutex
	partial []byte
	all     strings.Builder
}

func (l *lineLogger) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.all.Write(p)
	l.partial = append(l.partial, p...)
	for {
		i := strings.IndexByte(string(l.partial), '\n')
		if i < 0 {
			break
		}
		l.t.Log("guest: " + string(l.partial[:i]))
		l.partial = l.partial[i+1:]
	}
	return len(p), nil
}

func (l *lineLogger) flush() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.partial) > 0 {
		l.t.Log("guest: " + string(l.partial))
		l.partial = nil
	}
}

func (l *lineLogger) text() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.all.String()
}
