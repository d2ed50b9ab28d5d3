package nstest

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// RequireRoot skips a test that needs CAP_NET_ADMIN and namespaces when
// it does not run as root.
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

// New creates the namespace saru<pid>-<suffix> with lo up; it is deleted
// when the test ends.
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
// live in the namespace for good, and children it starts begin there. fn
// runs on its own goroutine, so it must not call t.Fatal.
func (n *NetNS) Do(fn func() error) error {
	return do(n.FD, n.Name, fn)
}

// In is Do for the namespace named name (/run/netns/<name>), one this
// package did not create.
func In(name string, fn func() error) error {
	fd, err := unix.Open("/run/netns/"+name, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open netns %s: %w", name, err)
	}
	defer unix.Close(fd)
	return do(fd, name, fn)
}

func do(fd int, name string, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			errc <- err
			return
		}
		defer unix.Close(orig)
		if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("setns %s: %w", name, err)
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

// Run runs a command (not through a shell) and fails the test if it
// fails, with its output. It returns the combined output.
func Run(tb testing.TB, args ...string) string {
	tb.Helper()
	return RunWithInput(tb, "", args...)
}

// RunWithInput is Run with stdin as the command's standard input.
func RunWithInput(tb testing.TB, stdin string, args ...string) string {
	tb.Helper()
	cmd := exec.Command(args[0], args[1:]...)
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		tb.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// WaitFor calls cond every 10ms until it returns nil, and fails the test
// with cond's last error if that takes longer than timeout. cond says in
// its error what it is still waiting for.
func WaitFor(tb testing.TB, timeout time.Duration, what string, cond func() error) {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("%s: not within %s: %v", what, timeout, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// LastLines returns the last n lines of s, for a log in a failure message.
func LastLines(s string, n int) string {
	lines := strings.Split(s, "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
