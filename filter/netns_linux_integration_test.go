package filter

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// requireRoot skips a test that needs CAP_NET_ADMIN and namespaces.
func requireRoot(tb testing.TB) {
	tb.Helper()
	if os.Geteuid() != 0 {
		tb.Skip("skipping, requires root")
	}
}

// netNS is a named network namespace created for one test run.
type netNS struct {
	name string
	fd   int
}

// newNetNS creates the namespace saru<pid>-<suffix> and removes it when the
// test ends, pass or fail.
func newNetNS(tb testing.TB, suffix string) *netNS {
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
	n := &netNS{name: name, fd: fd}
	tb.Cleanup(func() {
		_ = unix.Close(fd)
		if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
			tb.Errorf("ip netns del %s: %v: %s", name, err, out)
		}
	})
	n.sh(tb, "ip link set lo up")
	return n
}

// sh runs a command line (split on spaces) inside the namespace.
func (n *netNS) sh(tb testing.TB, cmdline string) string {
	tb.Helper()
	out, err := n.try(cmdline)
	if err != nil {
		tb.Fatalf("%s: %s: %v: %s", n.name, cmdline, err, out)
	}
	return out
}

func (n *netNS) try(cmdline string) (string, error) {
	args := append([]string{"netns", "exec", n.name}, strings.Fields(cmdline)...)
	out, err := exec.Command("ip", args...).CombinedOutput()
	return string(out), err
}

// do runs fn on an OS thread switched into the namespace; sockets fn creates
// live in the namespace for good.
func (n *netNS) do(fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			errc <- err
			return
		}
		defer unix.Close(orig)
		if err := unix.Setns(n.fd, unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("setns %s: %w", n.name, err)
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

// ipBatch runs `ip -batch -` inside the namespace with one command per line.
func (n *netNS) ipBatch(tb testing.TB, lines []string) {
	tb.Helper()
	cmd := exec.Command("ip", "netns", "exec", n.name, "ip", "-batch", "-")
	cmd.Stdin = strings.NewReader(strings.Join(lines, "\n") + "\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		tb.Fatalf("%s: ip -batch: %v: %s", n.name, err, out)
	}
}

// sysctl sets key=value (e.g. net.ipv4.conf.all.rp_filter=0) in the namespace.
func (n *netNS) sysctl(tb testing.TB, kv ...string) {
	tb.Helper()
	for _, s := range kv {
		n.sh(tb, "sysctl -q -w "+s)
	}
}

// vethTo creates a veth pair: `dev` inside n, `peer` inside other.
func (n *netNS) vethTo(tb testing.TB, dev string, other *netNS, peer string) {
	tb.Helper()
	const tmp = "saru-tmp-peer" // lives in n only until moved
	n.sh(tb, fmt.Sprintf("ip link add %s type veth peer name %s", dev, tmp))
	n.sh(tb, fmt.Sprintf("ip link set %s netns %s", tmp, other.name))
	other.sh(tb, fmt.Sprintf("ip link set %s name %s", tmp, peer))
}
