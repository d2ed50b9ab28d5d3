package director_test

import (
	"bytes"
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/saru-lb/saru/filter/bucket"

	"github.com/saru-lb/saru/deploy/kernellab"
	"github.com/saru-lb/saru/deploy/nstest"
	"github.com/saru-lb/saru/saru/config"
	"github.com/saru-lb/saru/saru/ipvs"
	"github.com/saru-lb/saru/saru/services"
)

const (
	saruBin    = "/usr/local/bin/saru"
	saructlBin = "/usr/local/bin/saructl"
	grpcAddr   = "127.0.0.1:7400"
)

// labConfig is a one-director configuration on a dummy interface with the
// given services.
func labConfig(stateDir, svcs string) string {
	return fmt.Sprintf(`node: {id: lab1}
interface: saru0
hash_seed: "0x5eed"
buckets: 64
grpc: {listen: %q}
gossip: {bind: "127.0.0.1:7946"}
tick: 20ms
settle: 200ms
join_delay: 1s
drain: {confirm_timeout: 200ms, timeout: 2s}
ipvs: {resync_interval: 200ms}
state_dir: %q
log_level: debug
services:
%s`, grpcAddr, stateDir, svcs)
}

// Two virtual services: web is LVS-NAT with two real servers and wlc (the
// default); app is LVS-DR (the default forwarding) with persistence. A
// third service is for the filter only.
const servicesV1 = `  - name: web
    vip: 192.0.2.10
    protocol: tcp
    port: 80
    forwarding: masq
    real_servers:
      - {address: 10.0.1.1:8080, weight: 3}
      - {address: 10.0.1.2:8080, weight: 1}
  - name: app
    vip: 192.0.2.11
    protocol: tcp
    port: 443
    scheduler: rr
    persistence_timeout: 600
    persistence_netmask: 255.255.255.0
    real_servers:
      - {address: 10.0.2.1}
      - {address: 10.0.2.2, weight: 2, upper_threshold: 500}
  - {vip: 192.0.2.12, port: 22}
`

// servicesV2 changes web's weight and removes a real server.
var servicesV2 = strings.Replace(strings.Replace(servicesV1, "weight: 3", "weight: 5", 1), "      - {address: 10.0.1.2:8080, weight: 1}\n", "", 1)

// servicesV3 (for a reload) makes 10.0.1.1 quiescent and drops app.
const servicesV3 = `  - name: web
    vip: 192.0.2.10
    protocol: tcp
    port: 80
    forwarding: masq
    real_servers:
      - {address: 10.0.1.1:8080, weight: 0}
  - {vip: 192.0.2.11, port: 443}
  - {vip: 192.0.2.12, port: 22}
`

// TestIntegrationLabServices runs the real saru binary in the kernel lab and
// proves that it leaves IPVS exactly as configured, that a second start
// changes nothing, that configuration changes (at restart and on SIGHUP)
// are reconciled, that changes made behind its back are repaired, that bad
// configurations change nothing, that a kernel refusal names the
// destination, that services saru did not create are left alone, and that
// saructl services shows the table as ipvsadm -L -n does.
func TestIntegrationLabServices(t *testing.T) {
	kernellab.Run(t, func(t *testing.T) {
		top := t // daemons outlive the subtest that starts them
		nstest.Run(t, "ip", "link", "add", "saru0", "type", "dummy")
		nstest.Run(t, "ip", "link", "set", "saru0", "up")
		// Another tool's service: saru must never touch it.
		nstest.Run(t, "ipvsadm", "-A", "-t", "198.51.100.1:25", "-s", "rr")
		nstest.Run(t, "ipvsadm", "-a", "-t", "198.51.100.1:25", "-r", "10.9.9.9:25", "-g")
		foreign := ipvsadm(t, "-S", "-n")

		dir := t.TempDir()
		state := filepath.Join(dir, "state")
		path := filepath.Join(dir, "saru.yaml")
		write := func(svcs string) {
			t.Helper()
			if err := os.WriteFile(path, []byte(labConfig(state, svcs)), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		ctx := context.Background()
		c, err := ipvs.Dial(ipvs.Config{})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		// kernelIs checks the kernel holds the configuration's services
		// plus the foreign one, read through netlink.
		kernelIs := func(t *testing.T, svcs string) {
			t.Helper()
			want := desired(t, labConfig(state, svcs))
			want = append(want, ipvs.Entry{
				Service:      ipvs.Service{ServiceID: ipvs.ServiceID{Protocol: bucket.TCP, Address: netip.MustParseAddrPort("198.51.100.1:25")}, Scheduler: "rr"},
				Destinations: []ipvs.Destination{{Address: netip.MustParseAddrPort("10.9.9.9:25"), Forward: ipvs.ForwardRoute, Weight: 1}},
			})
			got, err := c.List(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if ops := services.Diff(want, got); len(ops) != 0 {
				t.Errorf("kernel differs from the configuration: %v\n%s", ops, ipvsadm(t, "-L", "-n"))
			}
		}

		write(servicesV1)
		var d *daemon
		t.Run("start", func(t *testing.T) {
			d = startSaru(top, path)
			d.waitLog(t, `"msg":"director started"`)
			kernelIs(t, servicesV1)
			out := ipvsadm(t, "-L", "-n")
			for _, want := range []string{
				"TCP 192.0.2.10:80 wlc",
				"-> 10.0.1.1:8080 Masq 3 0 0",
				"-> 10.0.1.2:8080 Masq 1 0 0",
				"TCP 192.0.2.11:443 rr persistent 600 mask 255.255.255.0",
				"-> 10.0.2.1:443 Route 1 0 0",
				"-> 10.0.2.2:443 Route 2 0 0",
				"TCP 198.51.100.1:25 rr",
				"-> 10.9.9.9:25 Route 1 0 0",
			} {
				if !hasRow(out, want) {
					t.Errorf("ipvsadm -L -n lacks %q:\n%s", want, out)
				}
			}
			if strings.Contains(out, "192.0.2.12") {
				t.Errorf("a filter-only service reached IPVS:\n%s", out)
			}
			if n := strings.Count(d.log.String(), `"msg":"IPVS changed"`); n != 6 {
				t.Errorf("first start logged %d IPVS changes, want 6 (2 services, 4 real servers)", n)
			}
			if !strings.Contains(d.log.String(), `"service":"tcp 198.51.100.1:25"`) {
				t.Errorf("the foreign service is not reported as left alone:\n%s", d.log.String())
			}
		})

		t.Run("saructl-services", func(t *testing.T) {
			defer func() {
				if t.Failed() {
					t.Logf("saru log:\n%s", d.log.String())
				}
			}()
			out := saructl(t, "services")
			ipv := ipvsadm(t, "-L", "-n")
			// ipvsadm's first line is the kernel's version; the rest is
			// what saructl prints.
			if _, rest, _ := strings.Cut(ipv, "\n"); out != rest {
				t.Errorf("saructl services:\n%s\nipvsadm -L -n:\n%s", out, ipv)
			}
			stats := saructl(t, "services", "--stats")
			if !strings.Contains(stats, "Conns   InPkts  OutPkts  InBytes OutBytes") || !strings.Contains(stats, "  -> 10.0.2.2:443") {
				t.Errorf("saructl services --stats:\n%s", stats)
			}
		})

		t.Run("second-start-is-a-no-op", func(t *testing.T) {
			d.stop(t)
			before := ipvsadm(t, "-S", "-n")
			kernelIs(t, servicesV1) // left in place on exit
			d = startSaru(top, path)
			d.waitLog(t, `"msg":"IPVS reconciled"`)
			if !strings.Contains(d.log.String(), `"operations":0`) || strings.Contains(d.log.String(), `"msg":"IPVS changed"`) {
				t.Errorf("second start changed IPVS:\n%s", d.log.String())
			}
			if after := ipvsadm(t, "-S", "-n"); after != before {
				t.Errorf("second start changed IPVS:\nbefore:\n%s\nafter:\n%s", before, after)
			}
		})

		t.Run("change-at-restart", func(t *testing.T) {
			d.stop(t)
			write(servicesV2)
			d = startSaru(top, path)
			d.waitLog(t, `"msg":"IPVS reconciled"`)
			kernelIs(t, servicesV2)
			for _, want := range []string{
				`"op":"update destination 10.0.1.1:8080 of service tcp 192.0.2.10:80"`,
				`"op":"delete destination 10.0.1.2:8080 of service tcp 192.0.2.10:80"`,
			} {
				if !strings.Contains(d.log.String(), want) {
					t.Errorf("log lacks %s", want)
				}
			}
			out := ipvsadm(t, "-L", "-n")
			if !hasRow(out, "-> 10.0.1.1:8080 Masq 5 0 0") || strings.Contains(out, "10.0.1.2:8080") {
				t.Errorf("after the change:\n%s", out)
			}
		})

		t.Run("bad-reload-changes-nothing", func(t *testing.T) {
			before := ipvsadm(t, "-S", "-n")
			write(strings.Replace(servicesV2, "weight: 5", "weight: -5", 1))
			d.cmd.Process.Signal(syscall.SIGHUP)
			d.waitLog(t, `"msg":"reload refused; running configuration kept"`)
			if !strings.Contains(d.log.String(), "services[0].real_servers[0].weight") {
				t.Errorf("refusal does not name the field:\n%s", nstest.LastLines(d.log.String(), 5))
			}
			// A change outside the IPVS side needs a restart.
			write(servicesV2 + "  - {vip: 192.0.2.13, port: 80}\n")
			d.cmd.Process.Signal(syscall.SIGHUP)
			d.waitLogCount(t, `"msg":"reload refused; running configuration kept"`, 2)
			if !strings.Contains(d.log.String(), "changes to [Services] need a restart") {
				t.Errorf("restart-only change not named:\n%s", nstest.LastLines(d.log.String(), 5))
			}
			if after := ipvsadm(t, "-S", "-n"); after != before {
				t.Errorf("refused reloads changed IPVS:\nbefore:\n%s\nafter:\n%s", before, after)
			}
		})

		t.Run("reload", func(t *testing.T) {
			write(servicesV3)
			d.cmd.Process.Signal(syscall.SIGHUP)
			d.waitLog(t, `"msg":"configuration reloaded"`)
			kernelIs(t, servicesV3)
			out := ipvsadm(t, "-L", "-n")
			if !hasRow(out, "-> 10.0.1.1:8080 Masq 0 0 0") || strings.Contains(out, "192.0.2.11") {
				t.Errorf("after the reload (quiescent 10.0.1.1, no app service):\n%s", out)
			}
		})

		t.Run("resync-repairs-drift", func(t *testing.T) {
			// An operator changes a weight and removes saru's real server
			// by hand, and adds a service of their own.
			nstest.Run(t, "ipvsadm", "-e", "-t", "192.0.2.10:80", "-r", "10.0.1.1:8080", "-m", "-w", "7")
			d.waitLogCount(t, `"op":"update destination 10.0.1.1:8080 of service tcp 192.0.2.10:80"`, 3)
			kernelIs(t, servicesV3)
			nstest.Run(t, "ipvsadm", "-d", "-t", "192.0.2.10:80", "-r", "10.0.1.1:8080")
			d.waitLogCount(t, `"op":"create destination 10.0.1.1:8080 of service tcp 192.0.2.10:80"`, 1)
			kernelIs(t, servicesV3)
		})

		t.Run("bad-config-at-start-changes-nothing", func(t *testing.T) {
			d.stop(t)
			before := ipvsadm(t, "-S", "-n")
			for _, bad := range []struct{ svcs, field string }{
				{strings.Replace(servicesV1, "weight: 3", "weight: 3000000000", 1), "services[0].real_servers[0].weight"},
				{strings.Replace(servicesV1, "scheduler: rr", "scheduler: fastest", 1), "services[1].scheduler"},
				{strings.Replace(servicesV1, "10.0.2.1}", "'[2001:db8::1]'}", 1), "services[1].real_servers[0].address"},
				{strings.Replace(servicesV1, "persistence_timeout: 600", "persistence_timeout: 9999999", 1), "services[1].persistence_timeout"},
			} {
				write(bad.svcs)
				out, err := exec.Command(saruBin, "-config", path).CombinedOutput()
				if err == nil || !strings.Contains(string(out), bad.field) {
					t.Errorf("bad config (%s): %v\n%s", bad.field, err, out)
				}
			}
			if after := ipvsadm(t, "-S", "-n"); after != before {
				t.Errorf("bad configurations changed IPVS:\nbefore:\n%s\nafter:\n%s", before, after)
			}
		})

		t.Run("kernel-refusal-names-the-destination", func(t *testing.T) {
			if out, err := exec.Command("nft", "list", "table", "inet", "saru").CombinedOutput(); err == nil {
				t.Fatalf("a stopped saru left its filter table:\n%s", out)
			}
			// Only the kernel knows 10.0.3.255 is a broadcast address here.
			nstest.Run(t, "ip", "addr", "add", "10.0.3.1/24", "dev", "saru0")
			defer nstest.Run(t, "ip", "addr", "del", "10.0.3.1/24", "dev", "saru0")
			write(strings.Replace(servicesV1, "      - {address: 10.0.1.2:8080, weight: 1}\n", "      - {address: 10.0.1.2:8080, weight: 1}\n      - {address: 10.0.3.255:8080}\n", 1))
			out, err := exec.Command(saruBin, "-config", path).CombinedOutput()
			if err == nil || !strings.Contains(string(out), "create destination 10.0.3.255:8080 of service tcp 192.0.2.10:80") {
				t.Errorf("kernel refusal: %v\n%s", err, out)
			}
			t.Logf("refused start: %s", strings.TrimSpace(nstest.LastLines(string(out), 2)))
			if out, err := exec.Command("nft", "list", "table", "inet", "saru").CombinedOutput(); err == nil {
				t.Errorf("a refused start installed the filter:\n%s", out)
			}
		})

		t.Run("foreign-service-untouched", func(t *testing.T) {
			got := ipvsadm(t, "-S", "-n")
			for _, line := range strings.Split(strings.TrimSpace(foreign), "\n") {
				if !strings.Contains(got, line+"\n") {
					t.Errorf("foreign service line %q gone:\n%s", line, got)
				}
			}
		})

		t.Run("removing-every-ipvs-service", func(t *testing.T) {
			write("  - {vip: 192.0.2.10, port: 80}\n")
			d = startSaru(top, path)
			d.waitLog(t, `"msg":"IPVS reconciled"`)
			if got := ipvsadm(t, "-S", "-n"); got != foreign {
				t.Errorf("after removing every IPVS service from the configuration, IPVS holds:\n%s\nwant only the foreign service:\n%s", got, foreign)
			}
			d.stop(t)
		})
	}, kernellab.WithGoBinary(saruBin, "github.com/saru-lb/saru/cmd/saru"),
		kernellab.WithGoBinary(saructlBin, "github.com/saru-lb/saru/cmd/saructl"),
		kernellab.WithTimeout(4*time.Minute))
}

func desired(t *testing.T, yaml string) []ipvs.Entry {
	t.Helper()
	r, err := config.Parse([]byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	c, err := config.For(r)
	if err != nil {
		t.Fatal(err)
	}
	return c.IPVS()
}

// hasRow reports whether a line of out has the fields of row.
func hasRow(out, row string) bool {
	for _, line := range strings.Split(out, "\n") {
		if strings.Join(strings.Fields(line), " ") == row {
			return true
		}
	}
	return false
}

func ipvsadm(t *testing.T, args ...string) string {
	t.Helper()
	return nstest.Run(t, append([]string{"ipvsadm"}, args...)...)
}

func saructl(t *testing.T, args ...string) string {
	t.Helper()
	return nstest.Run(t, append([]string{saructlBin, "--addr", grpcAddr}, args...)...)
}

// daemon is a running saru.
type daemon struct {
	cmd  *exec.Cmd
	log  *syncBuffer
	done chan error
}

// startSaru starts saru; t's cleanup kills it if it still runs.
func startSaru(t *testing.T, path string) *daemon {
	t.Helper()
	d := &daemon{log: &syncBuffer{}, done: make(chan error, 1)}
	d.cmd = exec.Command(saruBin, "-config", path)
	d.cmd.Stdout, d.cmd.Stderr = d.log, d.log
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { d.done <- d.cmd.Wait() }()
	t.Cleanup(func() {
		if d.cmd.ProcessState == nil {
			d.cmd.Process.Kill()
			<-d.done
		}
		if t.Failed() {
			t.Logf("saru log:\n%s", nstest.LastLines(d.log.String(), 40))
		}
	})
	return d
}

func (d *daemon) waitLog(t *testing.T, s string) { t.Helper(); d.waitLogCount(t, s, 1) }

func (d *daemon) waitLogCount(t *testing.T, s string, n int) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for strings.Count(d.log.String(), s) < n {
		select {
		case err := <-d.done:
			d.done <- err
			t.Fatalf("saru exited (%v) before logging %s:\n%s", err, s, nstest.LastLines(d.log.String(), 20))
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			d.cmd.Process.Signal(syscall.SIGQUIT) // goroutine dump into the log
			time.Sleep(time.Second)
			t.Fatalf("saru did not log %s within 20 s:\n%s", s, nstest.LastLines(d.log.String(), 300))
		}
	}
}

// stop sends SIGTERM and waits for a clean exit.
func (d *daemon) stop(t *testing.T) {
	t.Helper()
	if d.cmd.ProcessState != nil {
		return
	}
	d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-d.done:
		d.done <- err
		if err != nil {
			t.Errorf("saru exit: %v\n%s", err, nstest.LastLines(d.log.String(), 20))
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("saru did not stop:\n%s", nstest.LastLines(d.log.String(), 20))
	}
}

// syncBuffer is a bytes.Buffer safe for the process's writers and the
// test's readers.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
