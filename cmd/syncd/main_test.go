package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	syncdpb "github.com/saru-lb/saru/proto/syncd/v1"
)

// TestMain lets the test binary act as syncd when asked to, so the tests
// below run the real main.
func TestMain(m *testing.M) {
	if os.Getenv("SYNCD_TEST_MAIN") == "1" {
		os.Args = append([]string{"syncd"}, strings.Fields(os.Getenv("SYNCD_TEST_ARGS"))...)
		main()
		return
	}
	os.Exit(m.Run())
}

func syncd(args ...string) *exec.Cmd {
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), "SYNCD_TEST_MAIN=1", "SYNCD_TEST_ARGS="+strings.Join(args, " "))
	return cmd
}

// TestCheckExampleConfig runs -check on the shipped example. Its key file
// and interface (/etc/saru/sync.key, eth1) belong to a director, not to a
// test machine: the test checks a copy naming a private key of its own
// and the loopback interface instead, every other line as written.
func TestCheckExampleConfig(t *testing.T) {
	data, err := os.ReadFile("../../deploy/syncd/syncd.yaml")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	key := filepath.Join(dir, "sync.key")
	os.WriteFile(key, []byte("1 000102030405060708090a0b0c0d0e0f\n"), 0o600)
	cfg := string(data)
	for _, r := range [][2]string{{"key_file: /etc/saru/sync.key", "key_file: " + key}, {"interface: eth1", "interface: lo"}} {
		if !strings.Contains(cfg, r[0]) {
			t.Fatalf("the example lacks %q; update this test", r[0])
		}
		cfg = strings.Replace(cfg, r[0], r[1], 1)
	}
	path := filepath.Join(dir, "syncd.yaml")
	os.WriteFile(path, []byte(cfg), 0o600)
	out, err := syncd("-config", path, "-check").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "configuration ok") {
		t.Fatalf("%v: %s", err, out)
	}
}

// TestCheckRefusesWhatCripplesTheStart: -check refuses, naming the field
// and the value, every configuration the start would refuse or run
// crippled; the start refuses them the same way.
func TestCheckRefusesWhatCripplesTheStart(t *testing.T) {
	dir := t.TempDir()
	key := filepath.Join(dir, "sync.key")
	os.WriteFile(key, []byte("1 000102030405060708090a0b0c0d0e0f\n"), 0o600)
	open := filepath.Join(dir, "open.key")
	os.WriteFile(open, []byte("1 000102030405060708090a0b0c0d0e0f\n"), 0o600)
	os.Chmod(open, 0o644)
	zero := filepath.Join(dir, "zero.key")
	os.WriteFile(zero, []byte("1 00000000000000000000000000000000\n"), 0o600)
	base := fmt.Sprintf("node_id: d1\napi_listen: 127.0.0.1:%d\nsnapshot: {wait: 200ms}\nbackend: memory\n", 47000+os.Getpid()%10000)
	uni := "unicast: {listen: 127.0.0.1:1, peers: [127.0.0.1:1]}\n"
	for _, tc := range []struct{ name, cfg, want string }{
		{"missing key file", base + uni + "key_file: " + filepath.Join(dir, "nokey") + "\n", `key_file: invalid value "` + filepath.Join(dir, "nokey") + `"`},
		{"world-readable key", base + uni + "key_file: " + open + "\n", "permissions 0644 for " + open + " are too open"},
		{"zero secret", base + uni + "key_file: " + zero + "\n", "key 1 is all zero bytes"},
		{"missing interface", base + "key_file: " + key + "\nmulticast: {group: 239.255.84.1, interface: nosuch0}\n", `multicast.interface: invalid value "nosuch0"`},
		{"snapshot peers", strings.Replace(base, "{wait: 200ms}", "{wait: 200ms, peers: [nonsense]}", 1) + uni + "key_file: " + key + "\n", `snapshot.peers[0]: invalid value "nonsense"`},
		{"heartbeat", base + uni + "key_file: " + key + "\ntiming: {heartbeat: 1ns}\n", `timing.heartbeat: invalid value "1ns"`},
		{"metrics", base + uni + "key_file: " + key + "\nmetrics_listen: nonsense\n", `metrics_listen: invalid value "nonsense"`},
		{"node id", strings.Replace(base, "node_id: d1", "node_id: 'd 1'", 1) + uni + "key_file: " + key + "\n", `node_id: invalid value "d 1"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, "syncd.yaml")
			os.WriteFile(path, []byte(tc.cfg), 0o600)
			out, err := syncd("-config", path, "-check").CombinedOutput()
			if err == nil || !strings.Contains(string(out), tc.want) {
				t.Fatalf("-check: %v, want a refusal containing %q:\n%s", err, tc.want, out)
			}
		})
	}
	// The start runs the same check: a world-readable key stops it at once.
	path := filepath.Join(dir, "start.yaml")
	os.WriteFile(path, []byte(base+uni+"key_file: "+open+"\n"), 0o600)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0])
	cmd.Env = append(os.Environ(), "SYNCD_TEST_MAIN=1", "SYNCD_TEST_ARGS=-config "+path)
	out, err := cmd.CombinedOutput()
	if err == nil || ctx.Err() != nil || !strings.Contains(string(out), "permissions 0644 for "+open+" are too open") {
		t.Fatalf("start with a world-readable key: %v (timeout %v):\n%s", err, ctx.Err(), out)
	}
}

func TestBadConfigNamesTheField(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "syncd.yaml")
	os.WriteFile(cfg, []byte("node_id: d1\napi_listen: 127.0.0.1:1\nkey_file: k\nmulticast: {group: 10.0.0.1}\n"), 0o600)
	out, err := syncd("-config", cfg).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "multicast.group") {
		t.Fatalf("%v: %s", err, out)
	}
}

// TestRunTwoDaemons starts two syncd processes on loopback (unicast),
// waits for both to report ready over gRPC, and stops them with SIGTERM.
func TestRunTwoDaemons(t *testing.T) {
	dir := t.TempDir()
	key := filepath.Join(dir, "sync.key")
	os.WriteFile(key, []byte("1 000102030405060708090a0b0c0d0e0f\n"), 0o600)
	base := 41000 + os.Getpid()%10000
	sync := []string{fmt.Sprintf("127.0.0.1:%d", base), fmt.Sprintf("127.0.0.1:%d", base+1)}
	api := []string{fmt.Sprintf("127.0.0.1:%d", base+2), fmt.Sprintf("127.0.0.1:%d", base+3)}
	var cmds []*exec.Cmd
	for i := range 2 {
		cfg := filepath.Join(dir, fmt.Sprintf("d%d.yaml", i))
		os.WriteFile(cfg, []byte(fmt.Sprintf(`node_id: d%d
api_listen: %s
key_file: %s
state_dir: %s
unicast: {listen: %s, peers: [%s, %s]}
snapshot: {wait: 500ms}
backend: memory
`, i, api[i], key, filepath.Join(dir, fmt.Sprintf("d%d.state", i)), sync[i], sync[0], sync[1])), 0o600)
		cmd := syncd("-config", cfg)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		cmds = append(cmds, cmd)
	}
	defer func() {
		for _, c := range cmds {
			_ = c.Process.Kill()
		}
	}()
	for i, a := range api {
		cc, err := grpc.NewClient(a, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		defer cc.Close()
		deadline := time.Now().Add(10 * time.Second)
		for {
			st, err := syncdpb.NewSyncClient(cc).GetStatus(context.Background(), &syncdpb.GetStatusRequest{})
			if err == nil && st.Ready && st.Peers == 1 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("d%d not ready with its peer: %v %v", i, st, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	for i, c := range cmds {
		_ = c.Process.Signal(syscall.SIGTERM)
		done := make(chan error, 1)
		go func() { done <- c.Wait() }()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("d%d exited with %v", i, err)
			}
		case <-time.After(5 * time.Second):
			t.Errorf("d%d did not stop on SIGTERM", i)
		}
	}
}

// TestNotifiesSystemd runs syncd as systemd would with Type=notify and
// WatchdogSec=: it reports READY=1 once its snapshot is complete, pings
// the watchdog, and reports STOPPING=1 on SIGTERM.
func TestNotifiesSystemd(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "notify")
	ln, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	key := filepath.Join(dir, "sync.key")
	os.WriteFile(key, []byte("1 000102030405060708090a0b0c0d0e0f\n"), 0o600)
	base := 52000 + os.Getpid()%10000
	cfg := filepath.Join(dir, "d.yaml")
	os.WriteFile(cfg, []byte(fmt.Sprintf(`node_id: d1
api_listen: 127.0.0.1:%d
key_file: %s
state_dir: %s
unicast: {listen: 127.0.0.1:%d, peers: [127.0.0.1:%d]}
snapshot: {wait: 200ms}
backend: memory
`, base, key, filepath.Join(dir, "state"), base+1, base+1)), 0o600)
	cmd := syncd("-config", cfg)
	cmd.Env = append(cmd.Env, "NOTIFY_SOCKET="+sock, "WATCHDOG_USEC=400000")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill() }()
	await := func(want string) {
		t.Helper()
		buf := make([]byte, 4096)
		deadline := time.Now().Add(10 * time.Second)
		for {
			ln.SetReadDeadline(deadline)
			n, err := ln.Read(buf)
			if err != nil {
				t.Fatalf("waiting for %q: %v", want, err)
			}
			if slices.Contains(strings.Split(string(buf[:n]), "\n"), want) {
				return
			}
		}
	}
	await("READY=1")
	await("WATCHDOG=1")
	_ = cmd.Process.Signal(syscall.SIGTERM)
	await("STOPPING=1")
	if err := cmd.Wait(); err != nil {
		t.Errorf("exited with %v", err)
	}
}
