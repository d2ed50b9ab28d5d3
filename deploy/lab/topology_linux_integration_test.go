package lab

import (
	"context"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestIntegrationTopology builds the namespaces on the host kernel (no
// IPVS needed), checks that a client reaches every real server's HTTP and
// stream services directly and that Close removes every namespace.
func TestIntegrationTopology(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("skipping, requires root")
	}
	for _, mode := range []Mode{ModeDR, ModeNAT} {
		t.Run(string(mode), func(t *testing.T) {
			ctx := context.Background()
			t.Setenv("SARULAB_PREFIX", "slt"+strconv.Itoa(os.Getpid())+string(mode))
			l, err := New(ctx, Options{Mode: mode})
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			if err := l.StartServers(); err != nil {
				t.Fatal(err)
			}
			if len(l.Directors) != 3 || len(l.Servers) != 3 || len(l.Clients) != 2 {
				t.Fatalf("got %d directors, %d servers, %d clients; want 3, 3, 2", len(l.Directors), len(l.Servers), len(l.Clients))
			}
			if mode == ModeDR {
				for i, s := range l.Servers {
					c, err := dialIn(ctx, l.Clients[0], net.JoinHostPort(s.Addr.String(), strconv.Itoa(HTTPPort)), 2*time.Second)
					if err != nil {
						t.Fatalf("client to real server %d: %v", i+1, err)
					}
					io.WriteString(c, "GET / HTTP/1.0\r\n\r\n")
					c.SetDeadline(time.Now().Add(2 * time.Second))
					b, _ := io.ReadAll(c)
					c.Close()
					if !strings.Contains(string(b), "r"+strconv.Itoa(i+1)+" ") {
						t.Errorf("real server %d answered %q", i+1, b)
					}
				}
			}
			// The directors share their addresses and MAC, so a real server's
			// ping to the shared address is answered (by every director).
			gw := lanShared
			if mode == ModeNAT {
				gw = realGateway
			}
			for _, s := range l.Servers {
				if err := nsRun(ctx, s.NS, "ping", "-c", "1", "-W", "2", gw.String()); err != nil {
					t.Errorf("real server %s cannot reach the directors' shared address: %v", s.Addr, err)
				}
			}
			d, err := l.AddDirector(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if err := l.Reboot(ctx, d); err != nil {
				t.Fatalf("reboot %s: %v", d.ID, err)
			}
			if err := nsRun(ctx, d.NS, "ping", "-c", "1", "-W", "2", mgmtAddr(0).String()); err != nil {
				t.Errorf("after reboot, %s cannot reach dir1 on the management network: %v", d.ID, err)
			}
			names := append([]string{}, l.nsMade...)
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			for _, n := range names {
				if _, err := os.Stat(netnsDir + "/" + n); err == nil {
					t.Errorf("namespace %s still exists after Close", n)
				}
			}
		})
	}
}
