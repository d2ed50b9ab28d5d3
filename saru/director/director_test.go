package director

import (
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"

	"github.com/saru-lb/saru/saru/config"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

const v1 = `  - name: web
    vip: 192.0.2.10
    port: 80
    forwarding: masq
    real_servers:
      - {address: 10.0.1.1:8080, weight: 3}
      - {address: 10.0.1.2:8080}
  - name: dns
    vip: 192.0.2.10
    port: 53
    protocol: both
    persistence_timeout: 300
    real_servers: [{address: 10.0.2.1}]
  - {vip: 192.0.2.30, port: 443}
`

func TestRestartFields(t *testing.T) {
	load := func(services string, extra string) config.Config {
		r, err := config.Parse([]byte("node: {id: d1}\nhash_seed: '1'\n" + extra + "services:\n" + services))
		if err != nil {
			t.Fatal(err)
		}
		c, err := config.For(r)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	a := load(v1, "")
	ipvsOnly := load(strings.Replace(strings.Replace(v1, "weight: 3", "weight: 5", 1), "name: web", "name: www", 1), "")
	if got := RestartFields(a, ipvsOnly); len(got) != 0 {
		t.Errorf("IPVS-only change needs a restart? %v", got)
	}
	if got := RestartFields(a, load(v1+"  - {vip: 192.0.2.40, port: 80}\n", "")); !slices.Equal(got, []string{"Services"}) {
		t.Errorf("new filter service: %v", got)
	}
	if got := RestartFields(a, load(v1, "buckets: 64\ntick: 50ms\n")); !slices.Equal(got, []string{"Buckets", "Tick"}) {
		t.Errorf("buckets and tick: %v", got)
	}
}

func TestNotifySocket(t *testing.T) {
	path := filepath.Join(t.TempDir(), "notify.sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	t.Setenv("NOTIFY_SOCKET", path)
	read := func() string {
		t.Helper()
		buf := make([]byte, 256)
		conn.SetReadDeadline(time.Now().Add(2 * time.Second))
		n, err := conn.Read(buf)
		if err != nil {
			t.Fatalf("notify: %v", err)
		}
		return string(buf[:n])
	}
	notify(quiet, daemon.SdNotifyReady+"\nSTATUS=serving")
	if got := read(); got != "READY=1\nSTATUS=serving" {
		t.Fatalf("ready: %q", got)
	}
	notify(quiet, daemon.SdNotifyStopping+"\nSTATUS=draining")
	if got := read(); got != "STOPPING=1\nSTATUS=draining" {
		t.Fatalf("stopping: %q", got)
	}
	notify(quiet, daemon.SdNotifyWatchdog)
	if got := read(); got != "WATCHDOG=1" {
		t.Fatalf("watchdog: %q", got)
	}
}

func TestNotifyWithoutSystemd(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", "")
	notify(quiet, daemon.SdNotifyReady) // nothing to send to, nothing to fail
}

func TestWatchdogInterval(t *testing.T) {
	t.Setenv("WATCHDOG_USEC", "")
	t.Setenv("WATCHDOG_PID", "")
	if got := watchdogInterval(quiet); got != 0 {
		t.Errorf("no watchdog: ping every %v, want never", got)
	}
	t.Setenv("WATCHDOG_USEC", "20000000")
	if got := watchdogInterval(quiet); got != 10*time.Second {
		t.Errorf("WatchdogSec=20s: ping every %v, want 10s", got)
	}
	t.Setenv("WATCHDOG_PID", "1") // another process is watched
	if got := watchdogInterval(quiet); got != 0 {
		t.Errorf("watchdog for another process: ping every %v, want never", got)
	}
	t.Setenv("WATCHDOG_PID", "")
	t.Setenv("WATCHDOG_USEC", "soon")
	if got := watchdogInterval(quiet); got != 0 {
		t.Errorf("unreadable watchdog: ping every %v, want never", got)
	}
}
