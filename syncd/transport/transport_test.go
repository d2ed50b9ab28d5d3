package transport

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"
)

func TestValidate(t *testing.T) {
	tests := []struct {
		c    Config
		want string
	}{
		{Config{Group: netip.MustParseAddr("239.1.2.3"), Port: 1}, ""},
		{Config{Group: netip.MustParseAddr("10.1.2.3"), Port: 1}, "group"},
		{Config{Group: netip.MustParseAddr("239.1.2.3")}, "port"},
		{Config{Group: netip.MustParseAddr("ff12::1"), Port: 1, TTL: 300, Interface: "eth0"}, "ttl"},
		{Config{Group: netip.MustParseAddr("ff12::1"), Port: 1}, "interface"},
		{Config{Group: netip.MustParseAddr("ff15::1"), Port: 1}, ""},
		{Config{}, "listen"},
		{Config{Listen: netip.MustParseAddrPort("127.0.0.1:1")}, "peers"},
		{Config{Listen: netip.MustParseAddrPort("127.0.0.1:1"), Peers: []netip.AddrPort{{}}}, "peers[0]"},
	}
	for _, tt := range tests {
		err := tt.c.Validate()
		if tt.want == "" && err != nil || tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)) {
			t.Errorf("%+v: %v, want %q", tt.c, err, tt.want)
		}
	}
}

func recvOne(t *testing.T, tr Transport) string {
	t.Helper()
	ch := make(chan string, 1)
	go func() {
		buf := make([]byte, 2048)
		n, _, err := tr.Recv(buf)
		if err != nil {
			ch <- "error: " + err.Error()
			return
		}
		ch <- string(buf[:n])
	}()
	select {
	case s := <-ch:
		return s
	case <-time.After(5 * time.Second):
		t.Fatal("nothing received")
		return ""
	}
}

func TestUnicastPeers(t *testing.T) {
	ctx := context.Background()
	base := 20000 + os.Getpid()%20000
	addrs := []netip.AddrPort{
		netip.MustParseAddrPort(fmt.Sprintf("127.0.0.1:%d", base)),
		netip.MustParseAddrPort(fmt.Sprintf("127.0.0.1:%d", base+1)),
	}
	a, err := Open(ctx, Config{Listen: addrs[0], Peers: addrs})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := Open(ctx, Config{Listen: addrs[1], Peers: addrs})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if err := a.Send([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	if got := recvOne(t, b); got != "hello" {
		t.Fatalf("got %q", got)
	}
}

func TestLossyDrops(t *testing.T) {
	ctx := context.Background()
	base := 20000 + (os.Getpid()+7)%20000
	addrs := []netip.AddrPort{
		netip.MustParseAddrPort(fmt.Sprintf("127.0.0.1:%d", base)),
		netip.MustParseAddrPort(fmt.Sprintf("127.0.0.1:%d", base+1)),
	}
	a, err := Open(ctx, Config{Listen: addrs[0], Peers: addrs})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := Open(ctx, Config{Listen: addrs[1], Peers: addrs})
	if err != nil {
		t.Fatal(err)
	}
	l := NewLossy(b, 0.5, 1)
	defer l.Close()
	for i := 0; i < 200; i++ {
		if err := a.Send([]byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.Send([]byte("end")); err != nil {
		t.Fatal(err)
	}
	got := 0
	buf := make([]byte, 16)
	for {
		n, _, err := l.Recv(buf)
		if err != nil {
			t.Fatal(err)
		}
		if string(buf[:n]) == "end" {
			break
		}
		got++
	}
	if d := l.Dropped.Load(); got+int(d) < 190 || d < 50 || d > 150 {
		t.Fatalf("received %d, dropped %d of 200 at 50%% loss", got, d)
	}
}
