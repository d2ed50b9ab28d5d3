package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/saru-lb/saru/deploy/nstest"
	"github.com/saru-lb/saru/saru/ipvs"
)

// These tests run the real binaries (saru with -no-filter, so no root is
// needed; saructl; grpcurl) on loopback.

var (
	buildOnce sync.Once
	binDir    string
	buildErr  error
)

func binaries(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		binDir, buildErr = os.MkdirTemp("", "saru-bin-")
		if buildErr != nil {
			return
		}
		for _, p := range []string{"github.com/saru-lb/saru/cmd/saru", "github.com/saru-lb/saru/cmd/saructl", "github.com/saru-lb/saru/cmd/syncd"} {
			out, err := exec.Command("go", "build", "-o", binDir+"/", p).CombinedOutput()
			if err != nil {
				buildErr = fmt.Errorf("go build %s: %v\n%s", p, err, out)
				return
			}
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binDir
}

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

var (
	portMu sync.Mutex
	given  = map[int]bool{}
)

// freePort returns a port free for both TCP and UDP on 127.0.0.1, never
// the same one twice.
func freePort(t *testing.T) int {
	t.Helper()
	portMu.Lock()
	defer portMu.Unlock()
	for range 50 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		u, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", port))
		l.Close()
		if err == nil {
			u.Close()
			if !given[port] {
				given[port] = true
				return port
			}
		}
	}
	t.Fatal("no free port")
	return 0
}

type proc struct {
	id       string
	grpc     string
	metrics  string
	gossip   string
	cmd      *exec.Cmd
	log      *bytes.Buffer
	done     chan error
	finished bool
}

const daemonBuckets = 64

func startDaemon(t *testing.T, dir, id string, seeds []string, joinDelay string) *proc {
	t.Helper()
	return startDaemonWith(t, dir, id, seeds, joinDelay, "drain:\n  confirm_timeout: 500ms\n")
}

func startDaemonWith(t *testing.T, dir, id string, seeds []string, joinDelay, extra string) *proc {
	t.Helper()
	d := &proc{id: id, grpc: fmt.Sprintf("127.0.0.1:%d", freePort(t)), gossip: fmt.Sprintf("127.0.0.1:%d", freePort(t)),
		metrics: fmt.Sprintf("127.0.0.1:%d", freePort(t)), log: &bytes.Buffer{}, done: make(chan error, 1)}
	seedList := ""
	if len(seeds) > 0 {
		seedList = `["` + strings.Join(seeds, `","`) + `"]`
	} else {
		seedList = "[]"
	}
	cfg := fmt.Sprintf(`node:
  id: %s
services:
  - vip: 192.0.2.10
    protocol: tcp
    port: 80
buckets: %d
hash_seed: "0x5eed"
grpc:
  listen: %q
  token_file: %q
gossip:
  bind: %q
  seeds: %s
tick: 20ms
settle: 300ms
join_delay: %s
metrics:
  listen: %q
state_dir: %q
log_level: debug
%s`, id, daemonBuckets, d.grpc, filepath.Join(dir, "token"), d.gossip, seedList, joinDelay, d.metrics, filepath.Join(dir, id+"-state"), extra)
	path := filepath.Join(dir, id+".yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	d.cmd = exec.Command(filepath.Join(binaries(t), "saru"), "-config", path, "-no-filter")
	d.cmd.Stderr = d.log
	d.cmd.Stdout = d.log
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { d.done <- d.cmd.Wait() }()
	t.Cleanup(func() {
		if !d.finished {
			d.cmd.Process.Kill()
			<-d.done
		}
		if t.Failed() {
			t.Logf("log of %s:\n%s", id, nstest.LastLines(d.log.String(), 40))
		}
	})
	return d
}

func (d *proc) wait(t testing.TB, timeout time.Duration) error {
	t.Helper()
	select {
	case err := <-d.done:
		d.finished = true
		return err
	case <-time.After(timeout):
		t.Fatalf("%s did not exit within %s", d.id, timeout)
		return nil
	}
}

func saructl(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(filepath.Join(binaries(t), "saructl"), args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if err != nil {
		return out.String() + errb.String(), fmt.Errorf("saructl %s: %w: %s", strings.Join(args, " "), err, errb.String())
	}
	return out.String(), nil
}

type statusJSON struct {
	NodeID       string `json:"nodeId"`
	LeaderID     string `json:"leaderId"`
	Epoch        string `json:"epoch"`
	AppliedEpoch string `json:"appliedEpoch"`
	State        string `json:"state"`
	LiveMembers  int    `json:"liveMembers"`
	OwnedBuckets int    `json:"ownedBuckets"`
}

func status(t *testing.T, d *proc) (statusJSON, error) {
	out, err := saructl(t, "--addr", d.grpc, "-o", "json", "status")
	if err != nil {
		return statusJSON{}, err
	}
	var s statusJSON
	if err := json.Unmarshal([]byte(out), &s); err != nil {
		return statusJSON{}, fmt.Errorf("status json: %w: %s", err, out)
	}
	return s, nil
}

// settledCluster waits until the daemons agree on leader and epoch, have
// applied it, and their owned counts add up to every bucket.
func settledCluster(t *testing.T, timeout time.Duration, ds ...*proc) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := func() error {
			var first statusJSON
			total := 0
			for i, d := range ds {
				s, err := status(t, d)
				if err != nil {
					return err
				}
				if i == 0 {
					first = s
				}
				if s.LiveMembers != len(ds) || s.Epoch != first.Epoch || s.AppliedEpoch != s.Epoch || s.LeaderID != first.LeaderID || s.State != "MEMBER_STATE_ACTIVE" || s.OwnedBuckets == 0 {
					return fmt.Errorf("%s: %+v (first %+v)", d.id, s, first)
				}
				total += s.OwnedBuckets
			}
			if total != daemonBuckets {
				return fmt.Errorf("owned buckets add up to %d, want %d", total, daemonBuckets)
			}
			return nil
		}()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("cluster not settled within %s: %v", timeout, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func grpcurlPath(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("grpcurl"); err == nil {
		return p
	}
	out, err := exec.Command("go", "env", "GOPATH").Output()
	if err == nil {
		p := filepath.Join(strings.TrimSpace(string(out)), "bin", "grpcurl")
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	t.Fatal("grpcurl not found: run `make tools`")
	return ""
}

func TestDaemonsGRPCurlDrainKillJoinTerm(t *testing.T) {
	if testing.Short() {
		t.Skip("slow: runs daemons")
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "token"), []byte("0123456789abcdef-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// Without a syncd, a director that finds an active cluster waits the
	// join delay; d2 and d3 may start after d1 is already active.
	d1 := startDaemon(t, dir, "d1", nil, "2s")
	d2 := startDaemon(t, dir, "d2", []string{d1.gossip}, "2s")
	d3 := startDaemon(t, dir, "d3", []string{d1.gossip}, "2s")
	settledCluster(t, 20*time.Second, d1, d2, d3)

	t.Run("grpcurl", func(t *testing.T) {
		g := grpcurlPath(t)
		out, err := exec.Command(g, "-plaintext", d2.grpc, "list").CombinedOutput()
		if err != nil || !strings.Contains(string(out), "saru.v1.Cluster") {
			t.Fatalf("grpcurl list: %v\n%s", err, out)
		}
		out, err = exec.Command(g, "-plaintext", d2.grpc, "describe", "saru.v1.Cluster").CombinedOutput()
		if err != nil || !strings.Contains(string(out), "rpc GetAssignment") || !strings.Contains(string(out), "Drain moves a director's buckets away") {
			t.Fatalf("grpcurl describe: %v\n%s", err, out)
		}
		out, err = exec.Command(g, "-plaintext", d2.grpc, "describe", "saru.v1.Member").CombinedOutput()
		if err != nil || !strings.Contains(string(out), "applied_epoch is the newest epoch the director reports installed") {
			t.Fatalf("grpcurl describe saru.v1.Member: %v\n%s", err, out)
		}
		out, err = exec.Command(g, "-plaintext", d2.grpc, "saru.v1.Cluster/GetAssignment").CombinedOutput()
		if err != nil {
			t.Fatalf("grpcurl GetAssignment: %v\n%s", err, out)
		}
		var resp struct {
			Assignment struct {
				Epoch       string `json:"epoch"`
				BucketCount int    `json:"bucketCount"`
				Ranges      []struct {
					First, Last    int
					Owner, Standby string
				} `json:"ranges"`
			} `json:"assignment"`
		}
		if err := json.Unmarshal(out, &resp); err != nil {
			t.Fatalf("GetAssignment output: %v\n%s", err, out)
		}
		owned := make([]bool, daemonBuckets)
		for _, r := range resp.Assignment.Ranges {
			for b := r.First; b <= r.Last; b++ {
				if r.Owner == "" || b >= daemonBuckets {
					t.Fatalf("bucket %d: owner %q", b, r.Owner)
				}
				owned[b] = true
			}
		}
		for b, ok := range owned {
			if !ok {
				t.Fatalf("bucket %d missing from GetAssignment", b)
			}
		}
		if resp.Assignment.BucketCount != daemonBuckets {
			t.Fatalf("bucket count %d", resp.Assignment.BucketCount)
		}
	})

	t.Run("saructl-tables", func(t *testing.T) {
		for _, args := range [][]string{{"status"}, {"members"}, {"buckets"}, {"who-owns", "198.51.100.7:40001", "--dst", "192.0.2.10:80"}} {
			out, err := saructl(t, append([]string{"--addr", d1.grpc}, args...)...)
			if err != nil {
				t.Fatal(err)
			}
			// Every table names d1, except who-owns, whose owner and
			// standby depend on the order the directors became active.
			want := "d1"
			if args[0] == "who-owns" {
				want = "192.0.2.10:80/tcp"
			}
			if !strings.Contains(out, want) {
				t.Errorf("saructl %v:\n%s", args, out)
			}
		}
		out, err := saructl(t, "--addr", d1.grpc, "members")
		if err != nil || strings.Count(out, "active") != 3 {
			t.Errorf("members: %v\n%s", err, out)
		}
	})

	t.Run("metrics", func(t *testing.T) {
		resp, err := http.Get("http://" + d1.metrics + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		for _, m := range []string{"saru_epoch ", "saru_applied_epoch ", "saru_owned_buckets ", "saru_live_members 3", "saru_leader 1", "saru_apply_seconds_bucket", "saru_failovers_total"} {
			if !strings.Contains(string(body), m) {
				t.Errorf("metrics lack %q", m)
			}
		}
	})

	t.Run("drain-undrain", func(t *testing.T) {
		out, err := saructl(t, "--addr", d1.grpc, "drain", "d2")
		if err == nil || !strings.Contains(out, "Unauthenticated") {
			t.Fatalf("drain without a token: %v\n%s", err, out)
		}
		bad := filepath.Join(dir, "bad-token")
		os.WriteFile(bad, []byte("not-the-token-at-all"), 0o600)
		out, err = saructl(t, "--addr", d1.grpc, "--token-file", bad, "drain", "d2")
		if err == nil || !strings.Contains(out, "PermissionDenied") {
			t.Fatalf("drain with a wrong token: %v\n%s", err, out)
		}
		tok := filepath.Join(dir, "token")
		out, err = saructl(t, "--addr", d1.grpc, "--token-file", tok, "drain", "d9")
		if err == nil || !strings.Contains(out, "NotFound") {
			t.Fatalf("drain of an unknown director: %v\n%s", err, out)
		}
		out, err = saructl(t, "--addr", d1.grpc, "--token-file", tok, "drain", "d2")
		if err != nil || !strings.Contains(out, "d2 draining at epoch") {
			t.Fatalf("drain d2: %v\n%s", err, out)
		}
		if s, err := status(t, d2); err != nil || s.OwnedBuckets != 0 || s.State != "MEMBER_STATE_DRAINING" {
			t.Fatalf("d2 after drain: %+v %v", s, err)
		}
		out, err = saructl(t, "--addr", d3.grpc, "--token-file", tok, "undrain", "d2")
		if err != nil || !strings.Contains(out, "d2 active at epoch") {
			t.Fatalf("undrain d2: %v\n%s", err, out)
		}
		settledCluster(t, 10*time.Second, d1, d2, d3)
	})

	t.Run("kill-9", func(t *testing.T) {
		d3.cmd.Process.Signal(syscall.SIGKILL)
		d3.wait(t, 5*time.Second)
		settledCluster(t, 10*time.Second, d1, d2)
	})

	d4 := startDaemon(t, dir, "d4", []string{d2.gossip}, "1s") // owned by the parent test
	t.Run("join", func(t *testing.T) {
		settledCluster(t, 15*time.Second, d1, d2, d4)
	})

	t.Run("sigterm-drains-then-leaves", func(t *testing.T) {
		d2.cmd.Process.Signal(syscall.SIGTERM)
		if err := d2.wait(t, 20*time.Second); err != nil {
			t.Fatalf("d2 exit: %v", err)
		}
		if !strings.Contains(d2.log.String(), `"msg":"drained"`) {
			t.Errorf("d2 did not drain before leaving:\n%s", nstest.LastLines(d2.log.String(), 20))
		}
		settledCluster(t, 10*time.Second, d1, d4)
	})
}

func TestBadConfigExitsNonZero(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "bad.yaml")
	os.WriteFile(path, []byte("node: {id: d1}\nservices: [{vip: 192.0.2.1, port: 80}]\nhash_seed: '0'\n"), 0o600)
	cmd := exec.Command(filepath.Join(binaries(t), "saru"), "-config", path, "-check")
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "hash_seed: invalid value \"0\"") {
		t.Fatalf("bad config: %v\n%s", err, out)
	}
	os.WriteFile(path, []byte("node: {id: d1}\nservices: [{vip: 192.0.2.1, port: 80}]\nhash_seed: '5'\n"), 0o600)
	out, err = exec.Command(filepath.Join(binaries(t), "saru"), "-config", path, "-check").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "ok (node d1, 1 services, 0 IPVS services, 4096 buckets)") {
		t.Fatalf("good config: %v\n%s", err, out)
	}
}

func TestFlagsOverrideConfig(t *testing.T) {
	path := filepath.Join(t.TempDir(), "saru.yaml")
	os.WriteFile(path, []byte("node: {id: d1}\nservices: [{vip: 192.0.2.1, port: 80}]\nhash_seed: '5'\ngossip: {seeds: ['10.0.0.9:7946']}\n"), 0o600)
	cfg, err := load(flags{config: path, id: "d7", grpcListen: "127.0.0.1:7411", seeds: "10.0.0.2:7946,10.0.0.3:7946", joinDelay: "5s", logLevel: "debug"})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.ID != "d7" || cfg.GRPCListen != "127.0.0.1:7411" || len(cfg.Seeds) != 2 || cfg.Seeds[1] != "10.0.0.3:7946" || cfg.JoinDelay != 5*time.Second || cfg.LogLevel != "debug" {
		t.Fatalf("overrides not applied: %+v", cfg)
	}
	if _, err := load(flags{config: path, joinDelay: "soon"}); err == nil || !strings.Contains(err.Error(), "join_delay: invalid value \"soon\"") {
		t.Fatalf("bad flag value: %v", err)
	}
}

// TestNoIPVS: on a kernel without IPVS (this host's), a director with IPVS
// services configured refuses to start and says why; one with filter-only
// services starts (TestDaemonsGRPCurlDrainKillJoinTerm).
func TestNoIPVS(t *testing.T) {
	if c, err := ipvs.Dial(ipvs.Config{}); err == nil {
		c.Close()
		t.Skip("skipping: this kernel has IPVS (the kernel lab covers it)")
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "saru.yaml")
	os.WriteFile(path, []byte(fmt.Sprintf(`node: {id: d1}
hash_seed: '5'
grpc: {listen: "127.0.0.1:%d"}
gossip: {bind: "127.0.0.1:%d"}
state_dir: %q
services:
  - {vip: 192.0.2.1, port: 80, real_servers: [{address: 10.0.0.1}]}
`, freePort(t), freePort(t), dir)), 0o600)
	out, err := exec.Command(filepath.Join(binaries(t), "saru"), "-config", path, "-no-filter", "-no-interface").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "1 IPVS services configured, but this kernel's IPVS is unavailable") {
		t.Fatalf("saru with IPVS services and no IPVS: %v\n%s", err, out)
	}
	out, err = exec.Command(filepath.Join(binaries(t), "saru"), "-config", path, "-check").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "1 services, 1 IPVS services") {
		t.Fatalf("-check: %v\n%s", err, out)
	}
}

// TestDuplicateIDExits: a saru started with a live director's node.id
// exits non-zero, naming the id and the live director's address, and the
// cluster carries on as it was.
func TestDuplicateIDExits(t *testing.T) {
	if testing.Short() {
		t.Skip("slow: runs daemons")
	}
	dir, twinDir := t.TempDir(), t.TempDir()
	for _, d := range []string{dir, twinDir} {
		if err := os.WriteFile(filepath.Join(d, "token"), []byte("0123456789abcdef-token\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	d1 := startDaemon(t, dir, "d1", nil, "2s")
	d2 := startDaemon(t, dir, "d2", []string{d1.gossip}, "2s")
	settledCluster(t, 20*time.Second, d1, d2)
	before, err := status(t, d2)
	if err != nil {
		t.Fatal(err)
	}
	twin := startDaemon(t, twinDir, "d1", []string{d2.gossip}, "0s")
	var exit error
	select {
	case exit = <-twin.done:
		twin.finished = true
	case <-time.After(10 * time.Second):
		s, _ := status(t, twin)
		t.Fatalf("a second d1 runs while d1 lives at %s: %+v", d1.gossip, s)
	}
	want := fmt.Sprintf("node.id %q is already used by a live director at %s", "d1", d1.gossip)
	if exit == nil || !strings.Contains(twin.log.String(), want) {
		t.Fatalf("twin exited with %v; its log does not say %q:\n%s", exit, want, nstest.LastLines(twin.log.String(), 10))
	}
	settledCluster(t, 5*time.Second, d1, d2)
	if after, err := status(t, d2); err != nil || after.Epoch != before.Epoch {
		t.Errorf("the twin changed the cluster: epoch %s -> %+v (%v)", before.Epoch, after, err)
	}
}

// TestCheckExampleConfig runs -check on the shipped example. Its token
// file and interface (/etc/saru/token, eth0) belong to a director, not to
// a test machine: the test checks a copy naming a private token of its own
// and the loopback interface instead, every other line as written.
func TestCheckExampleConfig(t *testing.T) {
	data, err := os.ReadFile("../../deploy/saru/saru.yaml")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	tok := filepath.Join(dir, "token")
	os.WriteFile(tok, []byte("0123456789abcdef-token\n"), 0o600)
	cfg := string(data)
	for _, r := range [][2]string{{"token_file: /etc/saru/token", "token_file: " + tok}, {"interface: eth0", "interface: lo"}} {
		if !strings.Contains(cfg, r[0]) {
			t.Fatalf("the example lacks %q; update this test", r[0])
		}
		cfg = strings.Replace(cfg, r[0], r[1], 1)
	}
	path := filepath.Join(dir, "saru.yaml")
	os.WriteFile(path, []byte(cfg), 0o600)
	out, err := exec.Command(filepath.Join(binaries(t), "saru"), "-config", path, "-check").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "ok (node dir1") {
		t.Fatalf("%v: %s", err, out)
	}
}

// TestCheckRefusesWhatCripplesTheStart: -check refuses, naming the field
// and the value, every configuration the start would refuse or run
// crippled; the start refuses them the same way.
func TestCheckRefusesWhatCripplesTheStart(t *testing.T) {
	dir := t.TempDir()
	write := func(name, data string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		os.WriteFile(p, []byte(data), 0o600)
		os.Chmod(p, mode)
		return p
	}
	open := write("open-token", "0123456789abcdef-token\n", 0o644)
	zero := write("zero.key", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n", 0o600)
	openKey := write("open.key", "c2FydS1nb3NzaXAta2V5LTMyLWJ5dGVzLWxvbmchISE=\n", 0o644)
	bind := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	cfg := func(node, gossip, extra string) string {
		return fmt.Sprintf("node: {%s}\nhash_seed: '5'\nservices: [{vip: 192.0.2.1, port: 80}]\ngossip: {bind: '%s'%s}\nstate_dir: %q\n%s", node, bind, gossip, dir, extra)
	}
	for _, tc := range []struct{ name, cfg, want string }{
		{"missing token", cfg("id: d1", "", "grpc: {token_file: "+filepath.Join(dir, "none")+"}\n"), `grpc.token_file: invalid value "` + filepath.Join(dir, "none") + `"`},
		{"world-readable token", cfg("id: d1", "", "grpc: {token_file: "+open+"}\n"), "permissions 0644 for " + open + " are too open"},
		{"zero gossip key", cfg("id: d1", ", key_file: "+zero, ""), `gossip.key_file: invalid value "` + zero + `": the key is all zero bytes`},
		{"world-readable gossip key", cfg("id: d1", ", key_file: "+openKey, ""), "permissions 0644 for " + openKey},
		{"missing interface", cfg("id: d1", "", "interface: nosuch0\n"), `interface: invalid value "nosuch0"`},
		{"weight 0", cfg("id: d1, weight: 0", "", ""), `node.weight: invalid value "0": want 1 to 1000`},
		{"seed port", cfg("id: d1", ", seeds: ['10.0.0.2:99999']", ""), `gossip.seeds[0]: invalid value "10.0.0.2:99999"`},
		{"node id", cfg("id: 'd 1'", "", ""), `node.id: invalid value "d 1"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, "saru.yaml")
			os.WriteFile(path, []byte(tc.cfg), 0o600)
			out, err := exec.Command(filepath.Join(binaries(t), "saru"), "-config", path, "-check").CombinedOutput()
			if err == nil || !strings.Contains(string(out), tc.want) {
				t.Fatalf("-check: %v, want a refusal containing %q:\n%s", err, tc.want, out)
			}
		})
	}
	// The start runs the same check: a world-readable token stops it at
	// once.
	path := filepath.Join(dir, "start.yaml")
	os.WriteFile(path, []byte(cfg("id: d1", "", fmt.Sprintf("grpc: {listen: '127.0.0.1:%d', token_file: %s}\n", freePort(t), open))), 0o600)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, filepath.Join(binaries(t), "saru"), "-config", path, "-no-filter", "-no-interface").CombinedOutput()
	if err == nil || ctx.Err() != nil || !strings.Contains(string(out), "permissions 0644 for "+open+" are too open") {
		t.Fatalf("start with a world-readable token: %v (timeout %v):\n%s", err, ctx.Err(), out)
	}
}
