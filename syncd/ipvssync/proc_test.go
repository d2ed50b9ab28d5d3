package ipvssync

import (
	"errors"
	"net/netip"
	"os"
	"strings"
	"testing"
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
	if e.Protocol != ProtoTCP || e.CAddr != netip.MustParseAddr("10.0.0.1") || e.CPort != 50000 ||
		e.VAddr != netip.MustParseAddr("10.0.0.254") || e.VPort != 80 || e.DAddr != netip.MustParseAddr("10.0.1.2") ||
		e.State != TCPEstablished || !e.StateKnown || e.Template || e.Expires != 899 {
		t.Fatalf("entry 0 %+v", e)
	}
	if got[1].State != TCPFinWait || got[2].Protocol != ProtoUDP || got[2].State != 0 || !got[2].StateKnown {
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
		c, err := RefreshConn(pc)
		if err != nil {
			t.Fatalf("entry %d: %v", i, err)
		}
		if c.Timeout != pc.Expires {
			t.Fatalf("entry %d timeout %d", i, c.Timeout)
		}
		if c.Template() != pc.Template {
			t.Fatalf("entry %d template flag", i)
		}
	}
	c, _ := RefreshConn(got[1])
	if c.Flags&FlagInactive == 0 {
		t.Fatal("FIN_WAIT entry not inactive")
	}
	c, _ = RefreshConn(got[4])
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

func TestRefreshConnRefusesUnknownState(t *testing.T) {
	_, err := RefreshConn(ProcConn{Protocol: ProtoTCP, StateName: "BOGUS",
		CAddr: netip.MustParseAddr("10.0.0.1"), VAddr: netip.MustParseAddr("10.0.0.2"), DAddr: netip.MustParseAddr("10.0.0.3")})
	if !errors.Is(err, ErrInvalid) {
		t.Fatalf("err %v", err)
	}
}
