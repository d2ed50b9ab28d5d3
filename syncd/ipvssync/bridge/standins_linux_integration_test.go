package bridge

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/saru-lb/saru/deploy/kernellab"
	"github.com/saru-lb/saru/deploy/nstest"
	"github.com/saru-lb/saru/syncd/conn"
	"github.com/saru-lb/saru/syncd/ipvssync"
)

// fakeDaemons records what the bridge asks of the kernel's sync threads.
type fakeDaemons struct {
	mu    sync.Mutex
	calls []string
	cfgs  []DaemonConfig
}

func (f *fakeDaemons) StartDaemon(_ context.Context, c DaemonConfig) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, "start "+c.State.String())
	f.cfgs = append(f.cfgs, c)
	return nil
}

func (f *fakeDaemons) StopDaemon(_ context.Context, s DaemonState) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, "stop "+s.String())
	return nil
}

// TestIntegrationLabBridgeStandIns runs the bridge's link, capture and
// injection in a namespace of its own with stand-ins for the kernel's sync
// threads: a UDP socket with multicast loopback off for the master, a
// group member on the dummy link for the backup, a recorder for the
// daemon calls. It runs in the kernel lab because the host kernel this
// project is built on has no dummy driver.
func TestIntegrationLabBridgeStandIns(t *testing.T) {
	kernellab.Run(t, bridgeStandIns, kernellab.WithTimeout(4*time.Minute))
}

func bridgeStandIns(t *testing.T) {
	nstest.RequireRoot(t)
	ns := "ipvssync-host-" + strconv.Itoa(os.Getpid())
	if out, err := exec.Command("/usr/sbin/ip", "netns", "add", ns).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add: %v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command("/usr/sbin/ip", "netns", "del", ns).Run() })
	if out, err := exec.Command("/usr/sbin/ip", "-n", ns, "link", "set", "lo", "up").CombinedOutput(); err != nil {
		t.Fatalf("lo up: %v: %s", err, out)
	}

	dir := t.TempDir()
	connPath, syncPath := filepath.Join(dir, "ip_vs_conn"), filepath.Join(dir, "ip_vs_conn_sync")
	os.WriteFile(connPath, []byte(`Pro FromIP   FPrt ToIP     TPrt DestIP   DPrt State       Expires PEName PEData
TCP 0A000001 C350 0A000064 0050 0A00000B 0050 ESTABLISHED     800
TCP 0A000001 C351 0A000064 0050 0A00000B 0050 ESTABLISHED     700
TCP 0A000001 C352 0A000064 0050 0A00000B 0050 SYN_RECV         50
`), 0o644)
	os.WriteFile(syncPath, []byte(`Pro FromIP   FPrt ToIP     TPrt DestIP   DPrt State       Origin Expires
TCP 0A000001 C350 0A000064 0050 0A00000B 0050 ESTABLISHED LOCAL      800
TCP 0A000001 C351 0A000064 0050 0A00000B 0050 ESTABLISHED SYNC       700
TCP 0A000001 C352 0A000064 0050 0A00000B 0050 SYN_RECV    LOCAL       50
`), 0o644)

	t.Run("RefusesNonDummy", func(t *testing.T) {
		if out, err := exec.Command("/usr/sbin/ip", "-n", ns, "link", "add", "notdummy", "type", "veth", "peer", "name", "notdummy1").CombinedOutput(); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		err := nstest.In(ns, func() error {
			_, err := Open(context.Background(), Config{Interface: "notdummy"}, &fakeDaemons{})
			return err
		})
		if err == nil || !strings.Contains(err.Error(), "not a dummy") {
			t.Fatalf("Open on a veth: %v", err)
		}
	})

	fd := &fakeDaemons{}
	var b *Bridge
	if err := nstest.In(ns, func() error {
		var err error
		b, err = Open(context.Background(), Config{ProcConnPath: connPath, ProcConnSyncPath: syncPath, SyncID: 7}, fd)
		return err
	}); err != nil {
		t.Fatalf("Open: %v", err)
	}
	closed := false
	t.Cleanup(func() {
		if !closed {
			nstest.In(ns, func() error { return b.Close(context.Background()) })
		}
	})
	if want := []string{"start backup", "start master"}; !reflect.DeepEqual(fd.calls, want) {
		t.Fatalf("daemon calls %v, want %v", fd.calls, want)
	}
	for _, c := range fd.cfgs {
		if c.Interface != DefaultInterface || c.SyncID != 7 || c.TTL != 1 || c.Group.IsValid() || c.Port != 0 {
			t.Errorf("daemon config %+v", c)
		}
	}
	if fd.cfgs[0].MaxLen != ipvssync.DefaultMaxLen {
		t.Errorf("backup maxlen %d", fd.cfgs[0].MaxLen)
	}
	link, _ := exec.Command("/usr/sbin/ip", "-n", ns, "-d", "link", "show", DefaultInterface).CombinedOutput()
	if !strings.Contains(string(link), "MULTICAST") || !strings.Contains(string(link), ",UP") || !strings.Contains(string(link), "dummy") {
		t.Fatalf("link: %s", link)
	}

	var mu sync.Mutex
	var exported []conn.Entry
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- b.Run(ctx, func(es []conn.Entry) {
			mu.Lock()
			exported = append(exported, es...)
			mu.Unlock()
		})
	}()
	waitExported := func(n int) []conn.Entry {
		t.Helper()
		deadline := time.Now().Add(3 * time.Second)
		for {
			mu.Lock()
			got := append([]conn.Entry(nil), exported...)
			mu.Unlock()
			if len(got) >= n || time.Now().After(deadline) {
				return got
			}
			time.Sleep(10 * time.Millisecond)
		}
	}

	// Start-up read: only the local ESTABLISHED entry (the SYNC one came
	// from a peer, SYN_RECV is never synced).
	got := waitExported(1)
	if len(got) != 1 || got[0].ClientPort != 0xc350 || got[0].Timeout != 800 {
		t.Fatalf("start-up export %+v", got)
	}

	// A group member on the dummy link, as the kernel's backup is.
	var member int
	if err := nstest.In(ns, func() error {
		var err error
		if member, err = unix.Socket(unix.AF_INET, unix.SOCK_DGRAM, 0); err != nil {
			return err
		}
		unix.SetsockoptInt(member, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1)
		if err := unix.Bind(member, &unix.SockaddrInet4{Port: 8848, Addr: [4]byte{224, 0, 0, 81}}); err != nil {
			return err
		}
		tv := unix.Timeval{Usec: 300000}
		unix.SetsockoptTimeval(member, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
		return unix.SetsockoptIPMreqn(member, unix.IPPROTO_IP, unix.IP_ADD_MEMBERSHIP, &unix.IPMreqn{Multiaddr: [4]byte{224, 0, 0, 81}, Ifindex: int32(b.Interface())})
	}); err != nil {
		t.Fatal(err)
	}
	defer unix.Close(member)

	// The stand-in master: multicast loopback off, as the kernel's.
	mconn := []conn.Entry{{Protocol: conn.ProtoTCP, Flags: conn.FlagDRoute | conn.FlagNoOutput, State: ipvssync.TCPEstablished,
		ClientPort: 1111, VirtualPort: 80, DestPort: 80, Timeout: 900,
		ClientAddr: netip.MustParseAddr("10.0.0.9"), VirtualAddr: netip.MustParseAddr("10.0.0.100"), DestAddr: netip.MustParseAddr("10.0.0.12")}}
	msg, err := ipvssync.AppendMessage(nil, 7, mconn, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := nstest.In(ns, func() error {
		s, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM, 0)
		if err != nil {
			return err
		}
		defer unix.Close(s)
		unix.SetsockoptIPMreqn(s, unix.IPPROTO_IP, unix.IP_MULTICAST_IF, &unix.IPMreqn{Ifindex: int32(b.Interface())})
		unix.SetsockoptInt(s, unix.IPPROTO_IP, unix.IP_MULTICAST_LOOP, 0)
		return unix.Sendto(s, msg, 0, &unix.SockaddrInet4{Port: 8848, Addr: [4]byte{224, 0, 0, 81}})
	}); err != nil {
		t.Fatalf("stand-in master: %v", err)
	}
	got = waitExported(2)
	if len(got) != 2 || !reflect.DeepEqual(got[1], mconn[0]) {
		t.Fatalf("captured export %+v", got)
	}
	buf := make([]byte, 2048)
	if n, _, err := unix.Recvfrom(member, buf, 0); err == nil {
		t.Fatalf("group member received the loopback-off message (%d bytes)", n)
	}

	// Import: 50 entries, more than one datagram's worth, reach the
	// group member on the dummy link and only it.
	var in []conn.Entry
	for i := 0; i < 50; i++ {
		c := mconn[0]
		c.ClientPort = uint16(2000 + i)
		in = append(in, c)
	}
	bad := in[0]
	bad.State = 42
	if err := b.Import(context.Background(), append([]conn.Entry{bad}, in...)); err != nil {
		t.Fatal(err)
	}
	var recv []conn.Entry
	datagrams := 0
	for {
		n, from, err := unix.Recvfrom(member, buf, 0)
		if err != nil {
			break
		}
		datagrams++
		if sa := from.(*unix.SockaddrInet4); sa.Port != int(b.injPort) {
			t.Errorf("datagram from port %d, injector is %d", sa.Port, b.injPort)
		}
		if n > ipvssync.DefaultMaxLen {
			t.Errorf("datagram of %d bytes", n)
		}
		m, err := ipvssync.Decode(buf[:n])
		if err != nil {
			t.Fatal(err)
		}
		if m.SyncID != 7 {
			t.Errorf("syncid %d", m.SyncID)
		}
		recv = append(recv, m.Entries...)
	}
	if datagrams != 2 || !reflect.DeepEqual(recv, in) {
		t.Fatalf("%d datagrams with %d entries, want 2 with the 50 imported", datagrams, len(recv))
	}
	if d := b.Drops(); d[DropImportInvalid] != 1 {
		t.Fatalf("drops %v", d)
	}
	// The injections are not exported back.
	time.Sleep(200 * time.Millisecond)
	if got := waitExported(3); len(got) != 2 {
		t.Fatalf("injections exported back: %d exports", len(got))
	}

	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Run: %v", err)
	}
	if err := nstest.In(ns, func() error { return b.Close(context.Background()) }); err != nil {
		t.Fatal(err)
	}
	closed = true
	if err := b.Import(context.Background(), in[:1]); !errors.Is(err, ErrClosed) {
		t.Fatalf("Import after Close: %v", err)
	}
	if want := []string{"start backup", "start master", "stop master", "stop backup"}; !reflect.DeepEqual(fd.calls, want) {
		t.Fatalf("daemon calls %v", fd.calls)
	}
	if err := nstest.In(ns, func() error { _, err := net.InterfaceByName(DefaultInterface); return err }); err == nil {
		t.Fatal("dummy link left behind")
	}
}
