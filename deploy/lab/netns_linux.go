package lab

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/jsimonetti/rtnetlink/v2"
	"golang.org/x/sys/unix"
)

// netnsPath is where `ip netns add` keeps named namespaces.
const netnsDir = "/run/netns"

// inNS runs fn on an OS thread switched into the named network namespace.
// Sockets created by fn stay in that namespace for their lifetime, whatever
// thread later uses them.
func inNS(ns string, fn func() error) error {
	runtime.LockOSThread()
	orig, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("open own netns: %w", err)
	}
	defer orig.Close()
	target, err := os.Open(netnsDir + "/" + ns)
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("open netns %s: %w", ns, err)
	}
	defer target.Close()
	if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("enter netns %s: %w", ns, err)
	}
	ferr := fn()
	if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err != nil {
		// Leave the thread locked: the runtime ends it with the goroutine
		// rather than reuse a thread in the wrong namespace.
		return fmt.Errorf("leave netns %s: %w", ns, err)
	}
	runtime.UnlockOSThread()
	return ferr
}

// run runs a command and returns its error with its output.
func run(ctx context.Context, name string, args ...string) error {
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// output runs a command and returns its standard output.
func output(ctx context.Context, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return string(out), fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return string(out), nil
}

// nsRun runs a command inside the namespace (ip netns exec).
func nsRun(ctx context.Context, ns string, name string, args ...string) error {
	return run(ctx, "ip", append([]string{"netns", "exec", ns, name}, args...)...)
}

// nsOutput runs a command inside the namespace and returns its output.
func nsOutput(ctx context.Context, ns string, name string, args ...string) (string, error) {
	return output(ctx, "ip", append([]string{"netns", "exec", ns, name}, args...)...)
}

// ipBatch runs `ip -n ns -batch -` with the given lines, so a namespace's
// links and addresses are set in one command.
func ipBatch(ctx context.Context, ns string, lines []string) error {
	args := []string{"-batch", "-"}
	if ns != "" {
		args = append([]string{"-n", ns}, args...)
	}
	cmd := exec.CommandContext(ctx, "ip", args...)
	cmd.Stdin = strings.NewReader(strings.Join(lines, "\n") + "\n")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip -n %s -batch: %w: %s", ns, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// setLinks sets the namespace's named links up or down over rtnetlink from
// this process: a crash takes effect at once, not after an `ip` command
// has started (which takes a while on the kernel lab's emulated CPUs).
func setLinks(ns string, names []string, up bool) error {
	return inNS(ns, func() error {
		c, err := rtnetlink.Dial(nil)
		if err != nil {
			return fmt.Errorf("rtnetlink in %s: %w", ns, err)
		}
		defer c.Close()
		var flags uint32
		if up {
			flags = unix.IFF_UP
		}
		for _, name := range names {
			ifi, err := net.InterfaceByName(name)
			if err != nil {
				return fmt.Errorf("link %s in %s: %w", name, ns, err)
			}
			if err := c.Link.Set(&rtnetlink.LinkMessage{Index: uint32(ifi.Index), Flags: flags, Change: unix.IFF_UP}); err != nil {
				return fmt.Errorf("set link %s up=%v in %s: %w", name, up, ns, err)
			}
		}
		return nil
	})
}

// sysctl writes /proc/sys values inside the namespace.
func sysctl(ns string, kv map[string]string) error {
	return inNS(ns, func() error {
		for k, v := range kv {
			p := "/proc/sys/" + strings.ReplaceAll(k, ".", "/")
			if err := os.WriteFile(p, []byte(v), 0o644); err != nil {
				return fmt.Errorf("sysctl %s=%s in %s: %w", k, v, ns, err)
			}
		}
		return nil
	})
}

// HasIPVS reports whether this kernel offers IPVS: built in, already
// loaded, or loadable with modprobe.
func HasIPVS(ctx context.Context) bool {
	if _, err := os.Stat("/proc/net/ip_vs"); err == nil {
		return true
	}
	if exec.CommandContext(ctx, "modprobe", "ip_vs").Run() == nil {
		_, err := os.Stat("/proc/net/ip_vs")
		return err == nil
	}
	return false
}

// softirqNice is the kernel lab's priority for ksoftirqd.
//
// In the emulated guest every packet of the lab (through the hub's
// bridges, the directors and the real servers) is forwarded in softirq, and
// on slow emulated CPUs the kernel soon hands that work to ksoftirqd, at
// nice 0. The directors' saru processes run at nice -10 (as
// deploy/saru/saru.service asks), so a starting saru's burst of CPU stopped
// the whole lab's data plane for hundreds of milliseconds: every stream
// stalled, memberlist saw its probes time out, and false deaths moved
// buckets on top. A director's NIC is not starved by its own userspace;
// above saru, ksoftirqd keeps it so here.
const softirqNice = -20

// raiseSoftirqThreads gives every ksoftirqd thread softirqNice. Only for
// the kernel lab's own VM: it changes the whole machine.
func raiseSoftirqThreads() error {
	comms, err := filepath.Glob("/proc/[0-9]*/comm")
	if err != nil {
		return err
	}
	n := 0
	for _, path := range comms {
		b, err := os.ReadFile(path)
		if err != nil || !strings.HasPrefix(string(b), "ksoftirqd/") {
			continue
		}
		var pid int
		if _, err := fmt.Sscanf(path, "/proc/%d/comm", &pid); err != nil {
			continue
		}
		if err := unix.Setpriority(unix.PRIO_PROCESS, pid, softirqNice); err != nil {
			return fmt.Errorf("nice %d for %s (pid %d): %w", softirqNice, strings.TrimSpace(string(b)), pid, err)
		}
		n++
	}
	if n == 0 {
		return errors.New("nice for ksoftirqd: no ksoftirqd thread found")
	}
	return nil
}
