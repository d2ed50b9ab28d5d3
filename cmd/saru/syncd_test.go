package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/saru-lb/saru/deploy/nstest"
)

// startSyncd runs the real syncd (memory backend, unicast on loopback) for
// director id.
func startSyncd(t *testing.T, dir, id, api, listen string, peers []string) *proc {
	t.Helper()
	cfg := fmt.Sprintf(`node_id: %s
api_listen: %s
key_file: %s
state_dir: %s
unicast: {listen: %s, peers: [%s]}
snapshot: {wait: 500ms}
backend: memory
`, id, api, filepath.Join(dir, "sync.key"), filepath.Join(dir, id+"-syncd-state"), listen, strings.Join(peers, ", "))
	path := filepath.Join(dir, id+"-syncd.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	p := &proc{id: id + "-syncd", log: &bytes.Buffer{}, done: make(chan error, 1)}
	p.cmd = exec.Command(filepath.Join(binaries(t), "syncd"), "-config", path)
	p.cmd.Stdout, p.cmd.Stderr = p.log, p.log
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.done <- p.cmd.Wait() }()
	t.Cleanup(func() {
		if !p.finished {
			p.cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			t.Logf("log of %s:\n%s", p.id, nstest.LastLines(p.log.String(), 20))
		}
	})
	return p
}

// TestDaemonsWithSyncd runs saru beside the real syncd: a joining director
// takes buckets when its syncd reports a complete snapshot (long before the
// 30 s join delay), and a drain moves buckets once the peers' syncds are
// caught up with the draining director (long before the 30 s confirm
// timeout).
func TestDaemonsWithSyncd(t *testing.T) {
	if testing.Short() {
		t.Skip("slow: runs daemons")
	}
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "token"), []byte("0123456789abcdef-token\n"), 0o600)
	os.WriteFile(filepath.Join(dir, "sync.key"), []byte("1 000102030405060708090a0b0c0d0e0f\n"), 0o600)
	var listen, api []string
	for range 3 {
		listen = append(listen, fmt.Sprintf("127.0.0.1:%d", freePort(t)))
		api = append(api, fmt.Sprintf("127.0.0.1:%d", freePort(t)))
	}
	extra := func(i int) string {
		return fmt.Sprintf("syncd:\n  address: %q\ndrain:\n  confirm_timeout: 30s\n  max_sync_lag: 2s\n", api[i])
	}
	var ds []*proc
	for i := range 3 {
		startSyncd(t, dir, fmt.Sprintf("d%d", i+1), api[i], listen[i], listen)
	}
	d1 := startDaemonWith(t, dir, "d1", nil, "30s", extra(0))
	d2 := startDaemonWith(t, dir, "d2", []string{d1.gossip}, "30s", extra(1))
	ds = append(ds, d1, d2)
	settledCluster(t, 20*time.Second, ds...)

	start := time.Now()
	d3 := startDaemonWith(t, dir, "d3", []string{d1.gossip}, "30s", extra(2))
	ds = append(ds, d3)
	settledCluster(t, 20*time.Second, ds...)
	if !strings.Contains(d3.log.String(), `"reason":"sync-ready"`) {
		t.Fatalf("d3 did not join on its syncd's snapshot")
	}
	t.Logf("d3 active with its share %s after start (join delay 30s)", time.Since(start).Round(time.Millisecond))

	start = time.Now()
	out, err := saructl(t, "--addr", d1.grpc, "--token-file", filepath.Join(dir, "token"), "--timeout", "25s", "drain", "d2")
	if err != nil || !strings.Contains(out, "d2 draining at epoch") {
		t.Fatalf("drain d2: %v\n%s", err, out)
	}
	if !strings.Contains(d1.log.String(), `"reason":"drain-confirmed"`) || strings.Contains(d1.log.String(), "drain-confirm-timeout") {
		t.Fatalf("the leader did not move d2's buckets on its peers' confirmation")
	}
	t.Logf("d2 drained on syncd confirmation in %s (confirm timeout 30s)", time.Since(start).Round(time.Millisecond))
	if s, err := status(t, d2); err != nil || s.OwnedBuckets != 0 {
		t.Fatalf("d2 after drain: %+v %v", s, err)
	}
}
