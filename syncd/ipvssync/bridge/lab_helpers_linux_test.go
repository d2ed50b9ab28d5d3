package bridge

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/saru-lb/saru/deploy/nstest"
	"github.com/saru-lb/saru/syncd/ipvssync"
)

// ipvsadmDaemons drives the kernel's sync threads with Debian's ipvsadm in
// a network namespace: an independent SyncDaemons for the lab.
type ipvsadmDaemons struct{ ns string }

func (d ipvsadmDaemons) StartDaemon(ctx context.Context, c DaemonConfig) error {
	args := []string{"netns", "exec", d.ns, "ipvsadm", "--start-daemon", c.State.String(),
		"--mcast-interface", c.Interface, "--syncid", strconv.Itoa(int(c.SyncID))}
	if c.MaxLen > 0 {
		args = append(args, "--sync-maxlen", strconv.Itoa(c.MaxLen))
	}
	if c.Group.IsValid() {
		args = append(args, "--mcast-group", c.Group.String())
	}
	if c.Port != 0 {
		args = append(args, "--mcast-port", strconv.Itoa(int(c.Port)))
	}
	if c.TTL != 0 {
		args = append(args, "--mcast-ttl", strconv.Itoa(int(c.TTL)))
	}
	if out, err := exec.CommandContext(ctx, "/usr/sbin/ip", args...).CombinedOutput(); err != nil {
		return fmt.Errorf("ipvsadm --start-daemon: %w: %s", err, out)
	}
	return nil
}

func (d ipvsadmDaemons) StopDaemon(ctx context.Context, s DaemonState) error {
	if out, err := exec.CommandContext(ctx, "/usr/sbin/ip", "netns", "exec", d.ns, "ipvsadm", "--stop-daemon", s.String()).CombinedOutput(); err != nil {
		return fmt.Errorf("ipvsadm --stop-daemon: %w: %s", err, out)
	}
	return nil
}

// sh runs a shell command and fails the test on error.
func sh(t testing.TB, cmd string) string {
	t.Helper()
	// Busybox's sh prefers its own applets (it has a small "ip"), so name
	// iproute2 by path.
	cmd = ipRe.ReplaceAllString(cmd, "${1}/usr/sbin/ip ")
	out, err := exec.Command("sh", "-c", cmd).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", cmd, err, out)
	}
	return string(out)
}

var ipRe = regexp.MustCompile(`(^|&&\s*|;\s*|\n)ip `)

// goInNetns starts f on its own OS thread in namespace ns.
func goInNetns(ns string, f func()) {
	go func() {
		runtime.LockOSThread()
		fd, err := unix.Open("/run/netns/"+ns, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			panic(err)
		}
		if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
			panic(err)
		}
		unix.Close(fd)
		f()
	}()
}

// readConns reads a namespace's IPVS connection table through the
// namespace's own /proc (a thread in it reads /proc/thread-self/net).
func readConns(ns string) ([]ipvssync.ProcConn, error) {
	var out []ipvssync.ProcConn
	err := nstest.In(ns, func() error {
		f, err := os.Open("/proc/thread-self/net/ip_vs_conn")
		if err != nil {
			return err
		}
		defer f.Close()
		out, err = ipvssync.ParseConnTable(f)
		return err
	})
	return out, err
}

// findConn returns the entry for a client port, and whether it is there.
func findConn(pcs []ipvssync.ProcConn, caddr netip.Addr, cport uint16, template bool) (ipvssync.ProcConn, bool) {
	for _, p := range pcs {
		if p.CAddr == caddr && p.CPort == cport && p.Template == template {
			return p, true
		}
	}
	return ipvssync.ProcConn{}, false
}

// waitConn polls ns's table every millisecond, from one thread inside
// ns, until the entry appears or the deadline passes; it returns the entry
// and when it was first seen.
func waitConn(ns string, caddr netip.Addr, cport uint16, template bool, within time.Duration) (ipvssync.ProcConn, time.Time, error) {
	var got ipvssync.ProcConn
	var seen time.Time
	err := nstest.In(ns, func() error {
		deadline := time.Now().Add(within)
		for {
			f, err := os.Open("/proc/thread-self/net/ip_vs_conn")
			if err != nil {
				return err
			}
			pcs, err := ipvssync.ParseConnTable(f)
			f.Close()
			if err != nil {
				return err
			}
			if p, ok := findConn(pcs, caddr, cport, template); ok {
				got, seen = p, time.Now()
				return nil
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("no entry for %s:%d (template %v) in %s after %v", caddr, cport, template, ns, within)
			}
			time.Sleep(time.Millisecond)
		}
	})
	return got, seen, err
}

// dialFrom connects from namespace ns, from a fixed local port.
func dialFrom(ns string, local netip.AddrPort, remote string) (net.Conn, error) {
	var c net.Conn
	network := "tcp4"
	if local.Addr().Is6() {
		network = "tcp6"
	}
	err := nstest.In(ns, func() error {
		d := net.Dialer{LocalAddr: net.TCPAddrFromAddrPort(local), Timeout: 5 * time.Second}
		var err error
		c, err = d.Dial(network, remote)
		return err
	})
	return c, err
}

// echoServer listens in ns on addr and echoes every connection.
func echoServer(t *testing.T, ns, network, addr string) {
	t.Helper()
	var l net.Listener
	if err := nstest.In(ns, func() error {
		var err error
		l, err = net.Listen(network, addr)
		return err
	}); err != nil {
		t.Fatalf("listen %s in %s: %v", addr, ns, err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				buf := make([]byte, 4096)
				for {
					n, err := c.Read(buf)
					if err != nil {
						return
					}
					if _, err := c.Write(buf[:n]); err != nil {
						return
					}
				}
			}()
		}
	}()
}

// lab is two directors with the same DR services and two real servers on a
// hub, and a client. Names carry the pid.
type lab struct {
	cli, dirA, dirB, rs1, rs2, hub string
	vip, client                    netip.Addr
	dirAddr                        map[string]string
}

func newLab(t *testing.T) *lab {
	t.Helper()
	id := strconv.Itoa(os.Getpid())
	l := &lab{cli: "cli" + id, dirA: "dirA" + id, dirB: "dirB" + id, rs1: "rs1" + id, rs2: "rs2" + id, hub: "hub" + id,
		vip: netip.MustParseAddr("10.0.0.100"), client: netip.MustParseAddr("10.0.0.1"),
		dirAddr: map[string]string{}}
	t.Cleanup(func() {
		for _, ns := range []string{l.cli, l.dirA, l.dirB, l.rs1, l.rs2} {
			exec.Command("/usr/sbin/ip", "netns", "del", ns).Run()
		}
		exec.Command("/usr/sbin/ip", "link", "del", l.hub).Run()
	})
	sh(t, fmt.Sprintf("ip link add %s type bridge ageing_time 0 && ip link set %s up", l.hub, l.hub))
	addrs := []struct {
		ns, ip string
	}{{l.cli, "10.0.0.1"}, {l.dirA, "10.0.0.2"}, {l.dirB, "10.0.0.3"}, {l.rs1, "10.0.0.11"}, {l.rs2, "10.0.0.12"}}
	for i, a := range addrs {
		l.dirAddr[a.ns] = a.ip
		v := fmt.Sprintf("v%d-%s", i, id)
		sh(t, fmt.Sprintf(`ip netns add %[1]s && ip link add %[2]s type veth peer name eth0 netns %[1]s &&
ip link set %[2]s master %[3]s up && ip -n %[1]s link set lo up && ip -n %[1]s link set eth0 up &&
ip -n %[1]s addr add %[4]s/24 dev eth0 &&
ip -n %[1]s addr add fd00::%[5]s/64 dev eth0 nodad`, a.ns, v, l.hub, a.ip, strings.TrimPrefix(a.ip, "10.0.0.")))
	}
	for _, rs := range []string{l.rs1, l.rs2} {
		sh(t, fmt.Sprintf(`ip -n %[1]s addr add 10.0.0.100/32 dev lo && ip -n %[1]s addr add fd00::100/128 dev lo &&
ip netns exec %[1]s sh -c 'echo 1 > /proc/sys/net/ipv4/conf/all/arp_ignore; echo 2 > /proc/sys/net/ipv4/conf/all/arp_announce'`, rs))
		echoServer(t, rs, "tcp4", "0.0.0.0:80")
		echoServer(t, rs, "tcp4", "0.0.0.0:8080")
		echoServer(t, rs, "tcp6", "[::]:80")
	}
	for _, d := range []string{l.dirA, l.dirB} {
		sh(t, fmt.Sprintf(`ip -n %[1]s addr add 10.0.0.100/32 dev lo &&
ip netns exec %[1]s ipvsadm -A -t 10.0.0.100:80 -s rr &&
ip netns exec %[1]s ipvsadm -a -t 10.0.0.100:80 -r 10.0.0.11:80 -g &&
ip netns exec %[1]s ipvsadm -a -t 10.0.0.100:80 -r 10.0.0.12:80 -g &&
ip netns exec %[1]s ipvsadm -A -t 10.0.0.100:8080 -s rr -p 300 &&
ip netns exec %[1]s ipvsadm -a -t 10.0.0.100:8080 -r 10.0.0.11:8080 -g &&
ip netns exec %[1]s ipvsadm -a -t 10.0.0.100:8080 -r 10.0.0.12:8080 -g &&
ip -n %[1]s addr add fd00::100/128 dev lo &&
ip netns exec %[1]s ipvsadm -A -t [fd00::100]:80 -s rr &&
ip netns exec %[1]s ipvsadm -a -t [fd00::100]:80 -r [fd00::11]:80 -g &&
ip netns exec %[1]s ipvsadm -a -t [fd00::100]:80 -r [fd00::12]:80 -g`, d))
	}
	l.via(t, l.dirA)
	return l
}

// via routes the client's traffic for the VIP through director dir.
func (l *lab) via(t *testing.T, dir string) {
	t.Helper()
	sh(t, fmt.Sprintf("ip -n %s route replace 10.0.0.100/32 via %s && ip -n %s -6 route replace fd00::100/128 via fd00::%s",
		l.cli, l.dirAddr[dir], l.cli, strings.TrimPrefix(l.dirAddr[dir], "10.0.0.")))
}

// connect opens a connection to the VIP from cport and sends and reads
// back one message (SYN, ACK, data: the director's third packet, the
// default sync_threshold). It returns the connection and when the third
// packet was sent.
func (l *lab) connect(t *testing.T, cport uint16, vport int) (net.Conn, time.Time) {
	t.Helper()
	return l.connectFrom(t, l.client, l.vip, cport, vport)
}

func (l *lab) connectFrom(t *testing.T, client, vip netip.Addr, cport uint16, vport int) (net.Conn, time.Time) {
	t.Helper()
	c, err := dialFrom(l.cli, netip.AddrPortFrom(client, cport), netip.AddrPortFrom(vip, uint16(vport)).String())
	if err != nil {
		t.Fatalf("dial VIP:%d from port %d: %v", vport, cport, err)
	}
	t.Cleanup(func() { c.Close() })
	sent := time.Now()
	if _, err := c.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 5)
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Read(buf); err != nil || string(buf) != "hello" {
		t.Fatalf("echo through the director: %q %v", buf, err)
	}
	return c, sent
}

// percentile of sorted durations.
func percentile(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	i := int(p*float64(len(d))+0.5) - 1
	return d[min(max(i, 0), len(d)-1)]
}

func ms(d time.Duration) string {
	return strconv.FormatFloat(float64(d)/float64(time.Millisecond), 'f', 2, 64)
}

var _ = strings.TrimSpace
