package mesh_test

import (
	"fmt"
	"net/netip"
	"time"

	"github.com/saru-lb/saru/syncd/conn"
	"github.com/saru-lb/saru/syncd/mesh"
)

// Two cores, one datagram at a time: what one sends, the caller hands to
// the other.
func Example() {
	t0 := mesh.Time{Wall: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
	cfg := func(id string) mesh.Config {
		return mesh.Config{ID: id, Incarnation: 1, Advertise: id + ":7401", Budget: 1200,
			Heartbeat: 100 * time.Millisecond, Flush: time.Millisecond, Refresh: time.Hour, Expire: time.Hour}
	}
	a, _ := mesh.New(cfg("a"), keys, t0)
	b, _ := mesh.New(cfg("b"), keys, t0)
	from := netip.MustParseAddrPort("192.0.2.1:8848")
	// b is ready alone (no snapshot wait), so it follows a from a's
	// first packet; a starting core would take a's entries by snapshot.
	b.Tick(t0)
	b.Ready()

	a.Export([]conn.Entry{entry(1, 0, 1), entry(1, 1, 1)}, t0)
	now := t0.Add(time.Millisecond)
	a.Tick(now) // the heartbeat, and the flush of the partly filled packet
	for _, dg := range a.Ready().Send {
		b.Receive(dg, from, now)
	}
	rd := b.Ready()
	fmt.Println("b imports", len(rd.Import), "entries from a")
	for _, e := range rd.Events {
		fmt.Println("b:", e.Reason, e.Peer)
	}
	// Output:
	// b imports 2 entries from a
	// b: peer_heard a
}
