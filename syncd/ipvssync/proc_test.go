package ipvssync

import (
	"errors"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/saru-lb/saru/syncd/conn"
)

func TestParseConnTableHandmade(t *testing.T) {
	f, err := os.Open("testdata/proc/handmade.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	got, err := ParseConnTable(f)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 7 {
		t.Fatalf("%d entries", len(got))
	}
	e := got[0]
	if e.Protocol != conn.ProtoTCP || e.CAddr != netip.MustParseAddr("10.0.0.1") || e.CPort != 50000 ||
		e.VAddr != netip.MustParseAddr("10.0.0.254") || e.VPort != 80 || e.DAddr != netip.MustParseAddr("10.0.1.2") ||
		e.State != TCPEstablished || !e.StateKnown || e.Template || e.Expires != 899 {
		t.Fatalf("entry 0 %+v", e)
	}
	if got[1].State != TCPFinWait || got[2].Protocol != conn.ProtoUDP || got[2].State != 0 || !got[2].StateKnown {
		t.Fatalf("entries 1-2 %+v %+v", got[1], got[2])
	}
	if !got[3].Template || got[3].State != TemplateNone {
		t.Fatalf("TCP template %+v", got[3])
	}
	if !got[4].Template || got[4].Protocol != 0 || got[4].State != TemplateAssured {
		t.Fatalf("fwmark template %+v", got[4])
	}
	if got[5].PEName != "sip" || got[5].PEData != "abc@example" {
		t.Fatalf("pe %+v", got[5])
	}
	if got[6].CAddr != netip.MustParseAddr("2001:db8::1") || got[6].State != TCPSynRecv {
		t.Fatalf("v6 %+v", got[6])
	}

	// Every entry converts to a record the backup accepts.
	for i, pc := range got {
		c, err := refreshEntry(pc)
		if err == nil {
			err = validate(&c)
		}
		if err != nil {
			t.Fatalf("entry %d: %v", i, err)
		}
		if c.Timeout != pc.Expires {
			t.Fatalf("entry %d timeout %d", i, c.Timeout)
		}
		if c.Flags.Template() != pc.Template {
			t.Fatalf("entry %d template flag", i)
		}
	}
	c, _ := refreshEntry(got[1])
	if c.Flags&conn.FlagInactive == 0 {
		t.Fatal("FIN_WAIT entry not inactive")
	}
	c, _ = refreshEntry(got[4])
	if c.FWMark != 1 {
		t.Fatalf("fwmark template fwmark %d", c.FWMark)
	}
}

func TestParseConnTableErrors(t *testing.T) {
	tests := []struct{ line, field string }{
		{"TCP 0A000001 C350 0A0000FE 0050 0A000102 0050 ESTABLISHED", "line"},
		{"XYZ 0A000001 C350 0A0000FE 0050 0A000102 0050 ESTABLISHED 1", "Pro"},
		{"TCP 0A0000G1 C350 0A0000FE 0050 0A000102 0050 ESTABLISHED 1", "FromIP"},
		{"TCP 0A000001 C35 0A0000FE 0050 0A000102 0050 ESTABLISHED 1", "FPrt"},
		{"TCP 0A000001 C350 1.2.3.4 0050 0A000102 0050 ESTABLISHED 1", "ToIP"},
		{"TCP 0A000001 C350 0A0000FE 0050 0A000102 0050 ESTABLISHED -1", "Expires"},
	}
	for _, tt := range tests {
		_, err := ParseConnTable(strings.NewReader("Pro FromIP\n" + tt.line + "\n"))
		var pe *ProcError
		if !errors.As(err, &pe) || pe.Field != tt.field || pe.Line != 2 {
			t.Errorf("%q: err %v, want field %s line 2", tt.line, err, tt.field)
		}
	}
}

func TestRefreshEntryRefusesUnknownState(t *testing.T) {
	_, err := refreshEntry(ProcConn{Protocol: conn.ProtoTCP, StateName: "BOGUS",
		CAddr: netip.MustParseAddr("10.0.0.1"), VAddr: netip.MustParseAddr("10.0.0.2"), DAddr: netip.MustParseAddr("10.0.0.3")})
	if !errors.Is(err, ErrInvalid) {
		t.Fatalf("err %v", err)
	}
}

func TestParseConnSyncTable(t *testing.T) {
	text := `Pro FromIP   FPrt ToIP     TPrt DestIP   DPrt State       Origin Expires
TCP 0A000001 C350 0A0000FE 0050 0A000102 0050 ESTABLISHED LOCAL      899
TCP 0A000002 C351 0A0000FE 0050 0A000102 0050 ESTABLISHED SYNC       880
`
	got, err := ParseConnTable(strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Origin != "LOCAL" || got[0].FromSync() || !got[1].FromSync() || got[1].Expires != 880 || got[1].CPort != 0xc351 {
		t.Fatalf("%+v", got)
	}
	_, err = ParseConnTable(strings.NewReader(strings.Replace(text, "SYNC ", "PEER ", 1)))
	var pe *ProcError
	if !errors.As(err, &pe) || pe.Field != "Origin" || pe.Line != 3 {
		t.Fatalf("err %v", err)
	}
}

func TestTracker(t *testing.T) {
	mk := func(cport uint16, state string, origin string, rs string) ProcConn {
		pc := ProcConn{Protocol: conn.ProtoTCP, ProtoName: "TCP", CAddr: netip.MustParseAddr("10.0.0.1"), CPort: cport,
			VAddr: netip.MustParseAddr("10.0.0.100"), VPort: 80, DAddr: netip.MustParseAddr(rs), DPort: 80,
			StateName: state, Expires: 100, Origin: origin}
		pc.State, pc.StateKnown = stateByName(conn.ProtoTCP, state)
		return pc
	}
	tr := NewTracker()
	t0 := time.Unix(1_000_000, 0)
	out, _ := tr.Changed([]ProcConn{
		mk(1, "ESTABLISHED", "LOCAL", "10.0.1.1"),
		mk(2, "SYN_RECV", "LOCAL", "10.0.1.1"),    // never synced by the master
		mk(3, "ESTABLISHED", "SYNC", "10.0.1.1"),  // a peer's entry
		mk(4, "ESTABLISHED", "LOCAL", "10.0.1.2"), // noted below as exported by the master
	}[:3], t0)
	if len(out) != 1 || out[0].ClientPort != 1 || out[0].Timeout != 100 {
		t.Fatalf("first read: %+v", out)
	}
	c4, _ := refreshEntry(mk(4, "ESTABLISHED", "LOCAL", "10.0.1.2"))
	tr.Note(&c4, t0)
	out, _ = tr.Changed([]ProcConn{
		mk(1, "ESTABLISHED", "LOCAL", "10.0.1.1"), // unchanged
		mk(2, "ESTABLISHED", "LOCAL", "10.0.1.1"), // now established
		mk(4, "ESTABLISHED", "LOCAL", "10.0.1.2"), // the master sent it
	}, t0.Add(time.Second))
	if len(out) != 1 || out[0].ClientPort != 2 {
		t.Fatalf("second read: %+v", out)
	}
	out, _ = tr.Changed([]ProcConn{
		mk(1, "FIN_WAIT", "LOCAL", "10.0.1.1"),    // state change
		mk(2, "ESTABLISHED", "LOCAL", "10.0.1.3"), // real server change
	}, t0.Add(2*time.Second))
	if len(out) != 2 || out[0].Flags&conn.FlagInactive == 0 || out[1].DestAddr != netip.MustParseAddr("10.0.1.3") {
		t.Fatalf("third read: %+v", out)
	}
	if len(tr.seen) != 2 {
		t.Fatalf("entry 4 left the table but is still tracked: %d", len(tr.seen))
	}

	// Refresh: entry 2 was exported at t0+2s with 100 s left. Packets keep
	// it alive here (its expiry moves later) while the peers' copy runs
	// down; it is sent again once the gap exceeds the slack.
	e1 := mk(1, "FIN_WAIT", "LOCAL", "10.0.1.1")
	e2 := mk(2, "ESTABLISHED", "LOCAL", "10.0.1.3")
	at := func(sec int, e2Expires uint32) []conn.Entry {
		e1.Expires = 100 - uint32(sec-2) // running down, no traffic
		e2.Expires = e2Expires
		out, _ := tr.Changed([]ProcConn{e1, e2}, t0.Add(time.Duration(sec)*time.Second))
		return out
	}
	if out := at(30, 100); len(out) != 0 { // gap 28 s
		t.Fatalf("refreshed too early: %+v", out)
	}
	out = at(70, 100) // gap 68 s > 60 s
	if len(out) != 1 || out[0].ClientPort != 2 || out[0].Timeout != 100 {
		t.Fatalf("not refreshed: %+v", out)
	}
	if out := at(71, 100); len(out) != 0 {
		t.Fatalf("refreshed twice: %+v", out)
	}
	tr.RefreshSlack = 5 * time.Second
	if out := at(77, 100); len(out) != 1 {
		t.Fatalf("slack of 5 s: %+v", out)
	}
}

// The kernel's own /proc/net/ip_vs_conn and ip_vs_conn_sync, read from a
// director in the kernel lab (IPv4 and IPv6 DR services, a persistent
// service, entries of its own and entries synced from a peer).
func TestParseConnTableLabFixtures(t *testing.T) {
	read := func(name string) []ProcConn {
		f, err := os.Open("testdata/proc/" + name)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		pcs, err := ParseConnTable(f)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		return pcs
	}
	conns, syncs := read("lab_ip_vs_conn.txt"), read("lab_ip_vs_conn_sync.txt")
	if len(conns) != len(syncs) || len(conns) < 10 {
		t.Fatalf("%d and %d entries", len(conns), len(syncs))
	}
	var v6, tmpl, fromSync, local int
	for i := range conns {
		c, s := conns[i], syncs[i]
		if c.CAddr != s.CAddr || c.CPort != s.CPort || c.DAddr != s.DAddr || c.StateName != s.StateName || s.Origin == "" || c.Origin != "" {
			t.Errorf("entry %d differs between the two files: %+v / %+v", i, c, s)
		}
		if !c.StateKnown {
			t.Errorf("entry %d: state %q unknown", i, c.StateName)
		}
		if c.CAddr.Is6() {
			v6++
			if c.VAddr != netip.MustParseAddr("fd00::100") {
				t.Errorf("v6 entry %+v", c)
			}
		}
		if c.Template {
			tmpl++
			if c.CPort != 0 || c.VPort != 8080 || (c.StateName != "ASSURED" && c.StateName != "NONE") {
				t.Errorf("template %+v", c)
			}
		}
		if s.FromSync() {
			fromSync++
		} else {
			local++
		}
		if e, err := refreshEntry(c); err != nil || accept(&e) != nil {
			t.Errorf("entry %d: %v %v", i, err, accept(&e))
		}
	}
	if v6 == 0 || tmpl == 0 || fromSync == 0 || local == 0 {
		t.Fatalf("fixtures lack a kind: v6 %d, templates %d, synced %d, local %d", v6, tmpl, fromSync, local)
	}
	// The tracker exports only the director's own entries.
	out, skipped := NewTracker().Changed(syncs, time.Now())
	if len(skipped) != 0 || len(out) == 0 || len(out) > local {
		t.Fatalf("tracker exported %d of %d local entries, skipped %v", len(out), local, skipped)
	}
}

func FuzzParseConnTable(f *testing.F) {
	for _, name := range []string{"handmade.txt", "lab_ip_vs_conn.txt", "lab_ip_vs_conn_sync.txt"} {
		b, err := os.ReadFile("testdata/proc/" + name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(string(b))
	}
	f.Fuzz(func(t *testing.T, s string) {
		pcs, err := ParseConnTable(strings.NewReader(s))
		if err != nil {
			var pe *ProcError
			if !errors.As(err, &pe) && !strings.HasPrefix(err.Error(), "read ip_vs_conn") {
				t.Fatalf("error %v is not a *ProcError", err)
			}
			return
		}
		for _, pc := range pcs {
			if e, err := refreshEntry(pc); err == nil && accept(&e) == nil {
				if _, err := AppendMessage(nil, 0, []conn.Entry{e}, 0xffff); err != nil {
					t.Fatalf("refresh record of %+v does not encode: %v", pc, err)
				}
			}
		}
	})
}
