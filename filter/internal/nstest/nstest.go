// Package nstest creates throw-away network namespaces for the kernel
// integration tests of package filter and its sub-packages. Every namespace
// is named saru<pid>-<suffix> and deleted when the test ends, pass or fail.
// It is for tests only.
package nstest

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// RequireRoot skips a test that needs CAP_NET_ADMIN and namespaces.
func RequireRoot(tb testing.TB) {
	tb.Helper()
	if os.Geteuid() != 0 {
		tb.Skip("skipping, requires root")
	}
}

// NetNS is a named network namespace created for one test.
type NetNS struct {
	Name string
	FD   int // open descriptor of /run/netns/<Name>
}

// New creates the namespace saru<pid>-<suffix> with lo up.
func New(tb testing.TB, suffix string) *NetNS {
	tb.Helper()
	name := fmt.Sprintf("saru%d-%s", os.Getpid(), suffix)
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		tb.Fatalf("ip netns add %s: %v: %s", name, err, out)
	}
	fd, err := unix.Open("/run/netns/"+name, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		_ = exec.Command("ip", "netns", "del", name).Run()
		tb.Fatalf("open netns %s: %v", name, err)
	}
	n := &NetNS{Name: name, FD: fd}
	tb.Cleanup(func() {
		_ = unix.Close(fd)
		if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
			tb.Errorf("ip netns del %s: %v: %s", name, err, out)
		}
	})
	n.Sh(tb, "ip link set lo up")
	return n
}

// Sh runs a command line (split on spaces) inside the namespace and fails
// the test on error.
func (n *NetNS) Sh(tb testing.TB, cmdline string) string {
	tb.Helper()
	out, err := n.Try(cmdline)
	if err != nil {
		tb.Fatalf("%s: %s: %v: %s", n.Name, cmdline, err, out)
	}
	return out
}

// Try runs a command line inside the namespace.
func (n *NetNS) Try(cmdline string) (string, error) {
	args := append([]string{"netns", "exec", n.Name}, strings.Fields(cmdline)...)
	out, err := exec.Command("ip", args...).CombinedOutput()
	return string(out), err
}

// IPBatch runs `ip -batch -` inside the namespace with one command per line.
func (n *NetNS) IPBatch(tb testing.TB, lines []string) {
	tb.Helper()
	cmd := exec.Command("ip", "netns", "exec", n.Name, "ip", "-batch", "-")
	cmd.Stdin = strings.NewReader(strings.Join(lines, "\n") + "\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		tb.Fatalf("%s: ip -batch: %v: %s", n.Name, err, out)
	}
}

// Sysctl sets key=value pairs (e.g. net.ipv4.ip_forward=1) in the
// namespace by writing /proc/sys from a thread inside it.
func (n *NetNS) Sysctl(tb testing.TB, kv ...string) {
	tb.Helper()
	for _, s := range kv {
		key, value, ok := strings.Cut(s, "=")
		if !ok {
			tb.Fatalf("sysctl %q: want key=value", s)
		}
		path := "/proc/sys/" + strings.ReplaceAll(key, ".", "/")
		if err := n.Do(func() error { return os.WriteFile(path, []byte(value), 0o644) }); err != nil {
			tb.Fatalf("%s: sysctl %s: %v", n.Name, s, err)
		}
	}
}

// VethTo creates a veth pair: dev inside n, peer inside other.
func (n *NetNS) VethTo(tb testing.TB, dev string, other *NetNS, peer string) {
	tb.Helper()
	const tmp = "saru-tmp-peer" // lives in n only until moved
	n.Sh(tb, fmt.Sprintf("ip link add %s type veth peer name %s", dev, tmp))
	n.Sh(tb, fmt.Sprintf("ip link set %s netns %s", tmp, other.Name))
	other.Sh(tb, fmt.Sprintf("ip link set %s name %s", tmp, peer))
}

// Do runs fn on an OS thread switched into the namespace; sockets fn creates
// live in the namespace for good, and children it starts begin there.
func (n *NetNS) Do(fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			errc <- err
			return
		}
		defer unix.Close(orig)
		if err := unix.Setns(n.FD, unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("setns %s: %w", n.Name, err)
			return
		}
		ferr := fn()
		if err := unix.Setns(orig, unix.CLONE_NEWNET); err != nil {
			// Leave the thread locked: the runtime discards it.
			errc <- fmt.Errorf("setns back: %w", err)
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}
