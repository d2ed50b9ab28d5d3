package daemon

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/saru-lb/saru/deploy/nstest"
)

// lab is a set of network namespaces joined by a bridge with multicast
// snooping off (a hub: every node sees every multicast frame).
type lab struct {
	t     *testing.T
	hub   string
	nodes []string
}

func shIn(t *testing.T, ns string, args ...string) string {
	t.Helper()
	return nstest.Run(t, append([]string{"ip", "netns", "exec", ns}, args...)...)
}

// newLab creates n namespaces named <prefix><pid>-<i> with address
// 10.77.0.<i+1>/24 and an IPv6 link-local address on "sync0", bridged.
func newLab(t *testing.T, prefix string, n int) *lab {
	nstest.RequireRoot(t)
	l := &lab{t: t, hub: fmt.Sprintf("%s%d-hub", prefix, os.Getpid())}
	t.Cleanup(l.destroy)
	nstest.Run(t, "ip", "netns", "add", l.hub)
	shIn(t, l.hub, "ip", "link", "add", "br0", "type", "bridge", "mcast_snooping", "0")
	shIn(t, l.hub, "ip", "link", "set", "br0", "up")
	for i := 0; i < n; i++ {
		ns := fmt.Sprintf("%s%d-%d", prefix, os.Getpid(), i)
		nstest.Run(t, "ip", "netns", "add", ns)
		l.nodes = append(l.nodes, ns)
		shIn(t, ns, "sysctl", "-qw", "net.ipv6.conf.all.accept_dad=0", "net.ipv6.conf.default.accept_dad=0")
		nstest.Run(t, "ip", "link", "add", "sync0", "netns", ns, "type", "veth", "peer", "name", fmt.Sprintf("p%d", i), "netns", l.hub)
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
	nstest.RunWithInput(l.t, rules, "ip", "netns", "exec", ns, "nft", "-f", "-")
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
