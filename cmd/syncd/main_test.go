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

func TestCheckExampleConfig(t *testing.T) {
	out, err := syncd("-config", "../../deploy/syncd/syncd.yaml", "-check").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "configuration ok") {
		t.Fatalf("%v: %s", err, out)
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
