package bridge

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/saru-lb/saru/deploy/kernellab"
	"github.com/saru-lb/saru/syncd/conn"
	"github.com/saru-lb/saru/syncd/ipvssync"
)

type exportKey struct {
	caddr    netip.Addr
	cport    uint16
	template bool
}

// director is one director's bridge in the lab and what it exported.
type director struct {
	ns     string
	b      *Bridge
	mu     sync.Mutex
	first  map[exportKey]time.Time // first export of each entry
	raw    [][]byte                // master's datagrams as captured by a second socket
	cancel context.CancelFunc
	done   chan error
}

func (d *director) exportedAt(k exportKey) (time.Time, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	t, ok := d.first[k]
	return t, ok
}

// startDirector opens a bridge in ns and runs it; export hands entries to
// peer (the in-process peer transport of this test).
func startDirector(t *testing.T, ns string, peer func() *director) *director {
	t.Helper()
	d := &director{ns: ns, first: map[exportKey]time.Time{}, done: make(chan error, 1)}
	cfg := Config{ProcConnPath: "/proc/thread-self/net/ip_vs_conn",
		Logger: slog.New(slog.NewTextHandler(os.Stderr, nil)).With("director", ns)}
	if err := inNetns(ns, func() error {
		var err error
		d.b, err = Open(context.Background(), cfg, ipvsadmDaemons{ns: ns})
		return err
	}); err != nil {
		t.Fatalf("open bridge in %s: %v", ns, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	d.cancel = cancel
	goInNetns(ns, func() {
		d.done <- d.b.Run(ctx, func(es []conn.Entry) {
			now := time.Now()
			d.mu.Lock()
			for _, e := range es {
				k := exportKey{e.ClientAddr, e.ClientPort, e.Flags.Template()}
				if _, ok := d.first[k]; !ok {
					d.first[k] = now
				}
			}
			d.mu.Unlock()
			if p := peer(); p != nil {
				if err := p.b.Import(ctx, es); err != nil && ctx.Err() == nil {
					t.Errorf("import into %s: %v", p.ns, err)
				}
			}
		})
	})
	// A second, independent capture of the master's datagrams for the
	// golden files.
	goInNetns(ns, func() {
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_DGRAM, int(htons(unix.ETH_P_ALL)))
		if err != nil {
			t.Errorf("golden capture socket: %v", err)
			return
		}
		defer unix.Close(fd)
		if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: d.b.Interface()}); err != nil {
			t.Errorf("golden capture bind: %v", err)
			return
		}
		tv := unix.Timeval{Usec: 100000}
		unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
		buf := make([]byte, 65536)
		for ctx.Err() == nil {
			n, from, err := unix.Recvfrom(fd, buf, 0)
			if err != nil {
				continue
			}
			if ll, ok := from.(*unix.SockaddrLinklayer); !ok || ll.Pkttype != unix.PACKET_OUTGOING {
				continue
			}
			if p, ok := SyncPayload(buf[:n], ipvssync.DefaultGroup, ipvssync.DefaultPort, d.b.injPort); ok {
				d.mu.Lock()
				d.raw = append(d.raw, append([]byte(nil), p...))
				d.mu.Unlock()
			}
		}
	})
	t.Cleanup(func() {
		cancel()
		if err := <-d.done; err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("bridge %s Run: %v", ns, err)
		}
		if err := inNetns(ns, func() error { return d.b.Close(context.Background()) }); err != nil {
			t.Errorf("close bridge %s: %v", ns, err)
		}
	})
	return d
}

// TestIntegrationLabIPVSSync proves the bridge on Debian's kernel: two
// directors (namespaces with the same DR services), real servers, a
// client; each director's bridge hands its exports to the other's import
// in-process.
func TestIntegrationLabIPVSSync(t *testing.T) {
	kernellab.Run(t, func(t *testing.T) {
		if os.Geteuid() != 0 {
			t.Skip("skipping, requires root")
		}
		l := newLab(t)
		var a, b *director
		a = startDirector(t, l.dirA, func() *director { return b })
		b = startDirector(t, l.dirB, func() *director { return a })

		t.Run("BothThreadsOnDummy", func(t *testing.T) {
			for _, ns := range []string{l.dirA, l.dirB} {
				out := sh(t, "ip netns exec "+ns+" ipvsadm -L --daemon")
				if !strings.Contains(out, "master sync daemon") || !strings.Contains(out, "backup sync daemon") || !strings.Contains(out, DefaultInterface) {
					t.Fatalf("%s daemons:\n%s", ns, out)
				}
				t.Logf("%s: %s", ns, strings.TrimSpace(out))
				link := sh(t, "ip -n "+ns+" -d link show "+DefaultInterface)
				if !strings.Contains(link, "MULTICAST") || !strings.Contains(link, "dummy") || strings.Contains(link, "inet ") {
					t.Fatalf("link: %s", link)
				}
			}
		})

		check := func(t *testing.T, from, to *director, cport uint16, vport int) {
			t.Helper()
			l.via(t, from.ns)
			_, sent := l.connect(t, cport, vport)
			src, _, err := waitConn(from.ns, l.client, cport, false, time.Second)
			if err != nil {
				t.Fatalf("source director: %v", err)
			}
			got, seen, err := waitConn(to.ns, l.client, cport, false, 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			exp, ok := from.exportedAt(exportKey{l.client, cport, false})
			if !ok {
				t.Fatalf("entry seen in %s but never exported by %s", to.ns, from.ns)
			}
			t.Logf("%s -> %s: threshold packet -> export %s ms, export -> peer table %s ms, threshold -> peer %s ms",
				from.ns, to.ns, ms(exp.Sub(sent)), ms(seen.Sub(exp)), ms(seen.Sub(sent)))
			if seen.Sub(exp) > time.Second {
				t.Errorf("export to peer table took %v", seen.Sub(exp))
			}
			if got.DAddr != src.DAddr || got.DPort != src.DPort || got.VAddr != l.vip || got.VPort != uint16(vport) {
				t.Errorf("peer entry %+v, source %+v", got, src)
			}
			if got.StateName != "ESTABLISHED" || src.StateName != "ESTABLISHED" {
				t.Errorf("states: peer %s, source %s", got.StateName, src.StateName)
			}
			if got.Expires+3 < src.Expires || got.Expires > 900 || got.Expires < 890 {
				t.Errorf("expiry: peer %d s, source %d s", got.Expires, src.Expires)
			}
			want := fmt.Sprintf("10.0.0.1:%d", cport)
			out := sh(t, "ip netns exec "+to.ns+" ipvsadm -L -c -n")
			var line string
			for _, ln := range strings.Split(out, "\n") {
				if strings.Contains(ln, want) {
					line = ln
				}
			}
			if !strings.Contains(line, "ESTABLISHED") || !strings.Contains(line, src.DAddr.String()) {
				t.Errorf("ipvsadm -L -c -n in %s has no ESTABLISHED %s -> %s:\n%s", to.ns, want, src.DAddr, out)
			}
			t.Logf("ipvsadm in %s: %s", to.ns, strings.Join(strings.Fields(line), " "))
		}
		t.Run("AToB", func(t *testing.T) { check(t, a, b, 40001, 80) })
		t.Run("BToA", func(t *testing.T) { check(t, b, a, 40002, 80) })

		t.Run("PersistenceTemplate", func(t *testing.T) {
			l.via(t, a.ns)
			l.connect(t, 40003, 8080)
			src, _, err := waitConn(a.ns, l.client, 0, true, time.Second)
			if err != nil {
				t.Fatalf("template on A: %v", err)
			}
			got, _, err := waitConn(b.ns, l.client, 0, true, 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			if got.DAddr != src.DAddr || got.VPort != 8080 || got.Expires < 290 {
				t.Errorf("template on B %+v, on A %+v", got, src)
			}
			conn, _, err := waitConn(b.ns, l.client, 40003, false, 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			if conn.DAddr != src.DAddr {
				t.Errorf("connection under the template went to %s on B, template says %s", conn.DAddr, src.DAddr)
			}
			t.Logf("template A %+v / B %+v", src, got)
			t.Logf("ipvsadm in B:\n%s", sh(t, "ip netns exec "+b.ns+" ipvsadm -L -c -n"))
		})

		// The kernel master holds a lone export up to 2 s
		// (IPVS_SYNC_FLUSH_TIME) and checks once a second; measure the
		// whole path as well as the bridge's part.
		t.Run("ExportToPeerLatency", func(t *testing.T) {
			l.via(t, a.ns)
			var bridgePart, whole []time.Duration
			for i := 0; i < 20; i++ {
				cport := uint16(41000 + i)
				_, sent := l.connect(t, cport, 80)
				_, seen, err := waitConn(b.ns, l.client, cport, false, 5*time.Second)
				if err != nil {
					t.Fatal(err)
				}
				exp, ok := a.exportedAt(exportKey{l.client, cport, false})
				if !ok {
					t.Fatalf("port %d not exported", cport)
				}
				bridgePart = append(bridgePart, seen.Sub(exp))
				whole = append(whole, seen.Sub(sent))
			}
			slices.Sort(bridgePart)
			slices.Sort(whole)
			t.Logf("export-to-peer-ms p50=%s p99=%s (n=%d); threshold-to-peer-ms p50=%s p99=%s",
				ms(percentile(bridgePart, 0.5)), ms(percentile(bridgePart, 0.99)), len(bridgePart),
				ms(percentile(whole, 0.5)), ms(percentile(whole, 0.99)))
		})

		t.Run("Golden", func(t *testing.T) {
			for _, d := range []*director{a, b} {
				d.mu.Lock()
				for _, r := range d.raw {
					m, err := ipvssync.Decode(r)
					if err != nil {
						t.Errorf("captured master datagram does not decode: %v\n%x", err, r)
						continue
					}
					var desc []string
					for _, c := range m.Conns {
						desc = append(desc, fmt.Sprintf("%s:%d-%s:%d-%s:%d/p%d/f%#x/s%d/t%d", c.CAddr, c.CPort, c.VAddr, c.VPort, c.DAddr, c.DPort, c.Protocol, c.Flags, c.State, c.Timeout))
					}
					t.Logf("GOLDEN %s %s", hex.EncodeToString(r), strings.Join(desc, " "))
				}
				d.mu.Unlock()
			}
		})
		t.Run("Diagnostics", func(t *testing.T) {
			for _, ns := range []string{l.dirA, l.dirB} {
				t.Logf("%s link:\n%s", ns, sh(t, "ip -n "+ns+" -s -d addr show "+DefaultInterface))
				t.Logf("%s drops: %v", ns, map[string]*director{l.dirA: a, l.dirB: b}[ns].b.Drops())
			}
			out, _ := exec.Command("sh", "-c", "dmesg | grep -i ipvs").CombinedOutput()
			t.Logf("dmesg:\n%s", out)
		})
		_ = runtime.NumGoroutine
	}, kernellab.WithTimeout(8*time.Minute))
}
