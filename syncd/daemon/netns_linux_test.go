package daemon

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// lab is a set of network namespaces joined by a bridge with multicast
// snooping off (a hub: every node sees every multicast frame).
type lab struct {
	t     *testing.T
	hub   string
	nodes []string
}

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("skipping, requires root")
	}
}

func sh(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func shIn(t *testing.T, ns string, args ...string) string {
	t.Helper()
	return sh(t, append([]string{"ip", "netns", "exec", ns}, args...)...)
}

// newLab creates n namespaces named <prefix><pid>-<i> with address
// 10.77.0.<i+1>/24 and an IPv6 link-local address on "sync0", bridged.
func newLab(t *testing.T, prefix string, n int) *lab {
	requireRoot(t)
	l := &lab{t: t, hub: fmt.Sprintf("%s%d-hub", prefix, os.Getpid())}
	t.Cleanup(l.destroy)
	sh(t, "ip", "netns", "add", l.hub)
	shIn(t, l.hub, "ip", "link", "add", "br0", "type", "bridge", "mcast_snooping", "0")
	shIn(t, l.hub, "ip", "link", "set", "br0", "up")
	for i := 0; i < n; i++ {
		ns := fmt.Sprintf("%s%d-%d", prefix, os.Getpid(), i)
		sh(t, "ip", "netns", "add", ns)
		l.nodes = append(l.nodes, ns)
		shIn(t, ns, "sysctl", "-qw", "net.ipv6.conf.all.accept_dad=0", "net.ipv6.conf.default.accept_dad=0")
		sh(t, "ip", "link", "add", "sync0", "netns", ns, "type", "veth", "peer", "name", fmt.Sprintf("p%d", i), "netns", l.hub)
		shIn(t, l.hub, "ip", "link", "set", fmt.Sprintf("p%d", i), "master", "br0", "up")
		shIn(t, ns, "ip", "addr", "add", fmt.Sprintf("10.77.0.%d/24", i+1), "dev", "sync0")
		shIn(t, ns, "ip", "link", "set", "sync0", "up")
		shIn(t, ns, "ip", "link", "set", "lo", "up")
	}
	return l
}

func (l *lab) destroy() {
	for _, ns := range append(l.nodes, l.hub) {
		_ = exec.Command("ip", "netns", "del", ns).Run()
	}
}

// in runs fn with the calling goroutine's thread in namespace ns: sockets
// fn opens belong to ns for their lifetime.
func (l *lab) in(ns string, fn func() error) error {
	runtime.LockOSThread()
	orig, err := unix.Open(fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid()), unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		runtime.UnlockOSThread()
		return err
	}
	defer unix.Close(orig)
	target, err := unix.Open("/run/netns/"+ns, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		runtime.UnlockOSThread()
		return err
	}
	defer unix.Close(target)
	if err := unix.Setns(target, unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		return err
	}
	ferr := fn()
	if err := unix.Setns(orig, unix.CLONE_NEWNET); err != nil {
		// Leave the thread locked: it dies with the goroutine.
		return fmt.Errorf("return to the original namespace: %w", err)
	}
	runtime.UnlockOSThread()
	return ferr
}

// dropRandom installs an nftables rule in ns dropping pct percent of the
// incoming UDP datagrams to port, at random.
func (l *lab) dropRandom(ns string, port uint16, pct int) {
	rules := fmt.Sprintf(`table inet syncdloss {
	chain input {
		type filter hook input priority -300; policy accept;
		udp dport %d numgen random mod 100 < %d counter drop
	}
}
`, port, pct)
	cmd := exec.Command("ip", "netns", "exec", ns, "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(rules)
	if out, err := cmd.CombinedOutput(); err != nil {
		l.t.Fatalf("nft in %s: %v\n%s", ns, err, out)
	}
}

// dropped returns the loss rule's packet counter in ns.
func (l *lab) dropped(ns string) string {
	out := shIn(l.t, ns, "nft", "list", "chain", "inet", "syncdloss", "input")
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, "counter packets") {
			f := strings.Fields(line[strings.Index(line, "counter packets"):])
			if len(f) >= 3 {
				return f[2]
			}
		}
	}
	return "?"
}
