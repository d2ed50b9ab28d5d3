package table

import (
	"fmt"
	"net/netip"
	"runtime"
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/saru-lb/saru/syncd/conn"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func entry(i int, origin string, version uint64) conn.Entry {
	return conn.Entry{
		Protocol:    conn.ProtoTCP,
		ClientAddr:  netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}),
		ClientPort:  uint16(1024 + i%50000),
		VirtualAddr: netip.MustParseAddr("198.51.100.1"), VirtualPort: 80,
		DestAddr: netip.AddrFrom4([4]byte{192, 168, 0, byte(i % 7)}), DestPort: 8080,
		State: 1, Timeout: 900, Origin: origin, Version: version,
	}
}

func TestUpsertRules(t *testing.T) {
	tb := New(t0)
	e := entry(1, "d1", 10)
	if r := tb.Upsert(&e, t0); r != Inserted {
		t.Fatalf("first upsert %v", r)
	}
	if r := tb.Upsert(&e, t0.Add(time.Second)); r != Refreshed {
		t.Fatalf("same version %v, want refreshed", r)
	}
	old := entry(1, "d2", 9)
	if r := tb.Upsert(&old, t0); r != Stale {
		t.Fatalf("older version %v, want stale", r)
	}
	moved := entry(1, "d2", 11)
	moved.DestAddr = netip.MustParseAddr("192.168.9.9")
	if r := tb.Upsert(&moved, t0); r != Updated {
		t.Fatalf("newer version %v, want updated", r)
	}
	got, ok := tb.Get(e.Key(), t0)
	if !ok || got.Origin != "d2" || got.DestAddr != moved.DestAddr || got.Timeout != 900 {
		t.Fatalf("got %+v", got)
	}
	if tb.Count("d1") != 0 || tb.Count("d2") != 1 {
		t.Fatalf("counts %v", tb.CountByOrigin())
	}
	bad := entry(2, "d1", 1)
	bad.DestAddr = netip.MustParseAddr("2001:db8::1")
	if r := tb.Upsert(&bad, t0); r != Invalid || tb.Len() != 1 {
		t.Fatalf("invalid entry %v, len %d", r, tb.Len())
	}
}

func TestExtrasRoundTrip(t *testing.T) {
	tb := New(t0)
	e := entry(1, "d1", 1)
	e.Flags = conn.FlagTemplate | conn.FlagNoCPort
	e.PEName, e.PEData = "sip", []byte("call-id-1")
	e.HasSeq = true
	e.Seq = conn.SeqAdjust{In: conn.SeqInfo{InitSeq: 1, Delta: 2, PreviousDelta: 3}, Out: conn.SeqInfo{InitSeq: 4, Delta: 5, PreviousDelta: 6}}
	tb.Upsert(&e, t0)
	got, ok := tb.Get(e.Key(), t0.Add(100*time.Second))
	if !ok || got.PEName != "sip" || string(got.PEData) != "call-id-1" || !got.HasSeq || got.Seq != e.Seq || got.Timeout != 800 {
		t.Fatalf("got %+v", got)
	}
	v6 := entry(2, "d1", 1)
	v6.ClientAddr, v6.VirtualAddr, v6.DestAddr = netip.MustParseAddr("2001:db8::1"), netip.MustParseAddr("2001:db8::2"), netip.MustParseAddr("2001:db8::3")
	tb.Upsert(&v6, t0)
	got, _ = tb.Get(v6.Key(), t0)
	if got.ClientAddr != v6.ClientAddr || got.DestAddr != v6.DestAddr {
		t.Fatalf("v6 got %+v", got)
	}
}

func TestExpire(t *testing.T) {
	tb := New(t0)
	for i := 0; i < 100; i++ {
		e := entry(i, "d1", 1)
		e.Timeout = uint32(i + 1)
		tb.Upsert(&e, t0)
	}
	if n := tb.Expire(t0.Add(50 * time.Second)); n != 50 {
		t.Fatalf("expired %d, want 50", n)
	}
	for i := 0; i < 100; i++ {
		e := entry(i, "d1", 1)
		if _, ok := tb.Get(e.Key(), t0); ok != (i >= 50) {
			t.Fatalf("entry %d held=%v", i, ok)
		}
	}
	if tb.Count("d1") != 50 {
		t.Fatalf("count %d", tb.Count("d1"))
	}
}

func TestReserve(t *testing.T) {
	tb := New(t0)
	tb.Reserve(10000)
	size := len(tb.index)
	if size*3 < 10000*4 {
		t.Fatalf("index of %d slots for 10000 entries", size)
	}
	for i := 0; i < 10000; i++ {
		e := entry(i, "d1", 1)
		tb.Upsert(&e, t0)
	}
	if len(tb.index) != size || tb.Len() != 10000 {
		t.Fatalf("grew to %d slots (%d entries) after reserving", len(tb.index), tb.Len())
	}
}

func TestExpireSomeSweeps(t *testing.T) {
	tb := New(t0)
	for i := 0; i < 1000; i++ {
		e := entry(i, "d1", 1)
		e.Timeout = uint32(1 + i%2*100)
		tb.Upsert(&e, t0)
	}
	now := t0.Add(10 * time.Second)
	total, cur, steps := 0, uint32(0), 0
	for {
		n, next := tb.ExpireSome(now, cur, 64)
		total += n
		steps++
		if next == 0 {
			break
		}
		cur = next
	}
	if total != 500 || tb.Len() != 500 || steps < 10 {
		t.Fatalf("removed %d in %d steps, %d left", total, steps, tb.Len())
	}
}

// TestTableMatchesModel checks the open-addressing table against a plain map.
func TestTableMatchesModel(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		tb := New(t0)
		type held struct {
			e   conn.Entry
			exp int
		}
		model := map[conn.Key]held{}
		now := 0
		origins := []string{"a", "b", "c"}
		n := rapid.IntRange(1, 400).Draw(rt, "ops")
		for range n {
			switch rapid.IntRange(0, 9).Draw(rt, "op") {
			case 0:
				now += rapid.IntRange(0, 30).Draw(rt, "dt")
				removed := tb.Expire(t0.Add(time.Duration(now) * time.Second))
				want := 0
				for k, h := range model {
					if h.exp <= now {
						delete(model, k)
						want++
					}
				}
				if removed != want {
					rt.Fatalf("expired %d, model %d", removed, want)
				}
			case 1:
				i := rapid.IntRange(0, 300).Draw(rt, "del")
				e := entry(i, "a", 0)
				_, ok := model[e.Key()]
				if tb.Delete(e.Key()) != ok {
					rt.Fatalf("delete %d disagrees", i)
				}
				delete(model, e.Key())
			default:
				i := rapid.IntRange(0, 300).Draw(rt, "i")
				e := entry(i, rapid.SampledFrom(origins).Draw(rt, "origin"), rapid.Uint64Range(1, 5).Draw(rt, "v"))
				e.Timeout = rapid.Uint32Range(1, 60).Draw(rt, "timeout")
				tb.Upsert(&e, t0.Add(time.Duration(now)*time.Second))
				h, ok := model[e.Key()]
				if !ok || conn.Newer(&e, &h.e) || (e.Version == h.e.Version && e.Origin == h.e.Origin) {
					model[e.Key()] = held{e, now + int(e.Timeout)}
				}
			}
			if tb.Len() != len(model) {
				rt.Fatalf("len %d, model %d", tb.Len(), len(model))
			}
		}
		counts := map[string]uint64{}
		for k, h := range model {
			got, ok := tb.Get(k, t0.Add(time.Duration(now)*time.Second))
			if !ok || got.Version != h.e.Version || got.Origin != h.e.Origin || got.DestAddr != h.e.DestAddr {
				rt.Fatalf("key %v: got %+v ok=%v, model %+v", k, got, ok, h.e)
			}
			counts[h.e.Origin]++
		}
		for _, o := range origins {
			if tb.Count(o) != counts[o] {
				rt.Fatalf("origin %s count %d, model %d", o, tb.Count(o), counts[o])
			}
		}
		all, cur := tb.Scan(0, 1<<30, Filter{}, t0, nil)
		if cur != 0 || len(all) != len(model) {
			rt.Fatalf("scan %d entries cursor %d, model %d", len(all), cur, len(model))
		}
	})
}

func TestScanFilterAndPaging(t *testing.T) {
	tb := New(t0)
	for i := 0; i < 1000; i++ {
		e := entry(i, fmt.Sprintf("d%d", i%4), 1)
		if i%2 == 1 {
			e.Protocol = conn.ProtoUDP
		}
		tb.Upsert(&e, t0)
	}
	var got []conn.Entry
	cur := uint32(0)
	for pages := 0; ; pages++ {
		got, cur = tb.Scan(cur, 7, Filter{Origin: "d1", Protocol: conn.ProtoUDP, Dest: netip.MustParseAddr("192.168.0.3")}, t0, got)
		if cur == 0 {
			break
		}
		if pages > 1000 {
			t.Fatal("paging does not end")
		}
	}
	want := 0
	for i := 0; i < 1000; i++ {
		if i%4 == 1 && i%7 == 3 {
			want++
		}
	}
	if len(got) != want {
		t.Fatalf("filtered %d, want %d", len(got), want)
	}
	for _, e := range got {
		if e.Origin != "d1" || e.Protocol != conn.ProtoUDP || e.DestAddr.String() != "192.168.0.3" {
			t.Fatalf("filter let through %+v", e)
		}
	}
}

// BenchmarkTableMemory reports B/entry: heap bytes per entry at 1M entries.
func BenchmarkTableMemory(b *testing.B) {
	const n = 1 << 20
	es := make([]conn.Entry, 0, 1024)
	for range b.N {
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		tb := New(t0)
		for i := 0; i < n; i++ {
			e := entry(i, "d1", 1)
			e.ClientPort = uint16(i)
			tb.Upsert(&e, t0)
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		if tb.Len() != n {
			b.Fatalf("len %d", tb.Len())
		}
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/n, "B/entry")
		b.ReportMetric(float64(1<<20), "entries")
		runtime.KeepAlive(tb)
		runtime.KeepAlive(es)
	}
}

func BenchmarkUpsert(b *testing.B) {
	tb := New(t0)
	es := make([]conn.Entry, 1<<16)
	for i := range es {
		es[i] = entry(i, "d1", 1)
		es[i].ClientPort = uint16(i)
	}
	b.ResetTimer()
	for i := range b.N {
		e := &es[i&(1<<16-1)]
		e.Version = uint64(i)
		tb.Upsert(e, t0)
	}
}

// BenchmarkFill1M measures filling an empty table to 1M entries (ns per
// entry, growth included).
func BenchmarkFill1M(b *testing.B) {
	const n = 1 << 20
	es := make([]conn.Entry, n)
	for i := range es {
		es[i] = entry(i, "d1", 1)
		es[i].ClientPort = uint16(i)
	}
	for range b.N {
		tb := New(t0)
		start := time.Now()
		for i := range es {
			tb.Upsert(&es[i], t0)
		}
		b.ReportMetric(float64(time.Since(start).Nanoseconds())/n, "ns/entry")
	}
}
