package mesh_test

import (
	"bytes"
	"net/netip"
	"testing"
	"time"

	"github.com/saru-lb/saru/syncd/conn"
	"github.com/saru-lb/saru/syncd/mesh"
)

// FuzzReceive feeds arbitrary datagrams to a core, as a hostile sender on
// the sync network would. Whatever arrives, the core must not panic, and
// only a datagram its peer really sealed may reach the table or the
// backend: a changed byte anywhere is refused.
func FuzzReceive(f *testing.F) {
	t0 := mesh.Time{Wall: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
	cfg := func(id string) mesh.Config {
		return mesh.Config{ID: id, Incarnation: 1, Advertise: id + ":7401", Budget: 1200,
			Heartbeat: 100 * time.Millisecond, Flush: time.Millisecond, Refresh: time.Hour, Expire: time.Hour}
	}
	a, err := mesh.New(cfg("a"), keys, t0)
	if err != nil {
		f.Fatal(err)
	}
	a.Export([]conn.Entry{entry(1, 0, 1), entry(1, 1, 1), entry(1, 2, 1)}, t0)
	a.Tick(t0.Add(time.Millisecond))
	sealed := a.Ready().Send
	if len(sealed) < 2 {
		f.Fatalf("a sent %d datagrams, want a heartbeat and data", len(sealed))
	}
	for _, dg := range sealed {
		f.Add(dg)
		f.Add(dg[:len(dg)/2])
	}
	f.Add([]byte{})
	from := netip.MustParseAddrPort("192.0.2.1:8848")

	f.Fuzz(func(t *testing.T, dg []byte) {
		b, err := mesh.New(cfg("b"), keys, t0)
		if err != nil {
			t.Fatal(err)
		}
		now := t0.Add(2 * time.Millisecond)
		b.Receive(dg, from, now)
		rd := b.Ready()
		for _, s := range sealed {
			if bytes.Equal(s, dg) {
				return // a's own datagram: it may be taken
			}
		}
		if b.Len() != 0 || len(rd.Import) != 0 {
			t.Fatalf("a forged datagram reached the table: %d entries, %d to import", b.Len(), len(rd.Import))
		}
		b.Tick(now.Add(time.Second)) // and nothing it left behind breaks the next tick
	})
}
