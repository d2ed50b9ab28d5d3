package mesh

import (
	"net/netip"
	"testing"
	"time"

	"github.com/saru-lb/saru/syncd/conn"
)

// An attacker replays a peer's genuine datagrams, and sends garbage, from
// a million spoofed sources: the core keeps no state for any of those
// addresses, and charges none of it to the peer.
func TestSpoofedReplaysLeaveNoState(t *testing.T) {
	t0 := Time{Mono: time.Hour, Wall: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	a, err := New(testConfig("a", 1), testKeys, t0)
	if err != nil {
		t.Fatal(err)
	}
	b, err := New(testConfig("b", 2), testKeys, t0)
	if err != nil {
		t.Fatal(err)
	}
	real := netip.MustParseAddrPort("192.0.2.1:8848")
	a.Export([]conn.Entry{testEntry(1, 0)}, t0)
	a.Tick(t0.Add(time.Millisecond))
	var sealed [][]byte
	for _, dg := range a.Ready().Send {
		sealed = append(sealed, append([]byte(nil), dg...))
	}
	now := t0.Add(2 * time.Millisecond)
	for _, dg := range sealed {
		b.Receive(dg, real, now)
	}
	b.Ready()
	garbage := append([]byte(nil), sealed[0]...)
	garbage[len(garbage)/2] ^= 1
	for i := range 1 << 20 {
		src := netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}), 8848)
		b.Receive(sealed[i%len(sealed)], src, now)
		b.Receive(garbage, src, now)
		b.Ready()
	}
	if n := b.addrCount(); n > maxPeerAddrs {
		t.Errorf("%d source addresses held after spoofed replays, want at most %d", n, maxPeerAddrs)
	}
	c := b.Counters(now)
	if len(c.Peers) != 1 || c.Peers[0].Auth != 0 {
		t.Errorf("peer counters %+v: want one peer, no rejection charged to it", c.Peers)
	}
	if c.Rejected["bad_mac"] != 1<<20 {
		t.Errorf("rejected %v: want every forgery counted by reason", c.Rejected)
	}
}

func (m *Mesh) addrCount() int {
	n := 0
	for _, p := range m.peers {
		for _, a := range p.addrs {
			if a.IsValid() {
				n++
			}
		}
	}
	return n
}
