package mesh

import (
	"net/netip"
	"testing"
	"time"

	"github.com/saru-lb/saru/syncd/conn"
	"github.com/saru-lb/saru/syncd/wire"
)

var testKeys = []wire.Key{{ID: 1, Secret: []byte("0123456789abcdef0123456789abcdef")}}

func testConfig(id string, inc uint64) Config {
	return Config{ID: id, Incarnation: inc, Advertise: id + ":7401", Budget: 1200,
		Heartbeat: 50 * time.Millisecond, Flush: time.Millisecond, Refresh: time.Hour, Expire: time.Minute}
}

func testEntry(origin, i int) conn.Entry {
	return conn.Entry{
		Protocol:    conn.ProtoTCP,
		ClientAddr:  netip.AddrFrom4([4]byte{10, byte(origin), byte(i >> 8), byte(i)}),
		ClientPort:  uint16(32768 + i),
		VirtualAddr: netip.MustParseAddr("198.51.100.10"), VirtualPort: 443,
		DestAddr: netip.AddrFrom4([4]byte{10, 0, 1, byte(1 + i%20)}), DestPort: 8443,
		Flags: conn.FlagMasq, State: 1, Timeout: 900,
	}
}

// Tick says when it next has work: the next heartbeat when idle, the
// flush of a partly filled packet, a peer's NACK; and what makes work asks
// for a tick at once.
func TestTickSchedulesNextWork(t *testing.T) {
	start := Time{Mono: time.Hour, Wall: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	n, err := New(testConfig("n1", 1), testKeys, start)
	if err != nil {
		t.Fatal(err)
	}
	at := func(d time.Duration) Time { return start.Add(time.Second + d) }
	sent := 0
	ready := func() Ready { rd := n.Ready(); sent += len(rd.Send); return rd }
	next := func(rd Ready) time.Duration {
		if !rd.HasTick {
			t.Fatal("Tick did not say when it is next due")
		}
		return rd.NextTick - at(0).Mono
	}

	n.Tick(at(0))
	if rd := ready(); next(rd) != 50*time.Millisecond || sent != 1 {
		t.Fatalf("idle: next +%v after the first heartbeat (sent %d), want the next heartbeat at +50ms", next(rd), sent)
	}
	if rd := ready(); rd.HasTick {
		t.Fatal("kicked with nothing to do")
	}

	n.Export([]conn.Entry{testEntry(1, 1)}, at(10*time.Millisecond))
	if rd := ready(); !rd.HasTick || rd.NextTick != at(10*time.Millisecond).Mono {
		t.Fatal("a queued entry did not ask for a tick")
	}
	n.Tick(at(10*time.Millisecond + 100*time.Microsecond))
	if rd := ready(); next(rd) != 11*time.Millisecond {
		t.Fatalf("queued entry: next at +%v, want its flush at +11ms", next(rd))
	}
	n.Tick(at(11 * time.Millisecond))
	if rd := ready(); next(rd) != 50*time.Millisecond || sent != 2 {
		t.Fatalf("after the flush: next at +%v (sent %d), want the heartbeat at +50ms", next(rd), sent)
	}

	// Three data packets from n2; the second is lost.
	n2, err := New(testConfig("n2", 7), testKeys, start)
	if err != nil {
		t.Fatal(err)
	}
	var dgs [][]byte
	for i := range 3 {
		n2.Export([]conn.Entry{testEntry(2, i)}, at(0))
		n2.flush()
		for _, dg := range n2.Ready().Send {
			dgs = append(dgs, append([]byte(nil), dg...))
		}
	}
	from := netip.MustParseAddrPort("192.0.2.2:8848")
	n.Receive(dgs[0], from, at(20*time.Millisecond))
	if rd := ready(); rd.HasTick {
		t.Fatal("an in-order packet asked for a tick")
	}
	n.Receive(dgs[2], from, at(20*time.Millisecond)) // 2 missing
	if rd := ready(); !rd.HasTick {
		t.Fatal("a gap did not ask for a tick")
	}
	// The default NACK delay is 2ms, then 30ms between NACKs.
	n.Tick(at(21 * time.Millisecond))
	if rd := ready(); next(rd) != 22*time.Millisecond {
		t.Fatalf("gap: next at +%v, want the first NACK at +22ms", next(rd))
	}
	n.Tick(at(22 * time.Millisecond))
	if rd := ready(); next(rd) != 50*time.Millisecond || sent != 3 {
		t.Fatalf("after the first NACK: next at +%v (sent %d), want the heartbeat at +50ms before the second NACK at +52ms", next(rd), sent)
	}
}
