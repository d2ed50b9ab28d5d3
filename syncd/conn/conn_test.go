package conn

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"
)

func v4entry() Entry {
	return Entry{
		Protocol:   ProtoTCP,
		ClientAddr: netip.MustParseAddr("192.0.2.1"), ClientPort: 40000,
		VirtualAddr: netip.MustParseAddr("198.51.100.1"), VirtualPort: 80,
		DestAddr: netip.MustParseAddr("10.0.0.5"), DestPort: 8080,
		Flags: FlagMasq, State: 1, Timeout: 900,
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name    string
		mod     func(*Entry)
		wantErr string
	}{
		{"ok v4", func(*Entry) {}, ""},
		{"ok v6", func(e *Entry) {
			e.ClientAddr = netip.MustParseAddr("2001:db8::1")
			e.VirtualAddr = netip.MustParseAddr("2001:db8::2")
			e.DestAddr = netip.MustParseAddr("2001:db8::3")
		}, ""},
		{"mixed family", func(e *Entry) { e.DestAddr = netip.MustParseAddr("2001:db8::3") }, "dest_addr"},
		{"no client", func(e *Entry) { e.ClientAddr = netip.Addr{} }, "client_addr"},
		{"no protocol", func(e *Entry) { e.Protocol = 0 }, "protocol"},
		{"pe name too long", func(e *Entry) { e.PEName = strings.Repeat("x", 17) }, "pe_name"},
		{"pe data without name", func(e *Entry) { e.PEData = []byte{1} }, "pe_data"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := v4entry()
			tt.mod(&e)
			err := e.Validate()
			if tt.wantErr == "" && err != nil {
				t.Fatalf("unexpected error %v", err)
			}
			if tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("error %v, want it to name %q", err, tt.wantErr)
			}
			var fe *FieldError
			if tt.wantErr != "" && (!errors.As(err, &fe) || fe.Field != tt.wantErr) {
				t.Fatalf("error %v is not a *FieldError for %q", err, tt.wantErr)
			}
		})
	}
}

func TestKeyAsIPVS(t *testing.T) {
	a := v4entry()
	b := a
	b.DestAddr = netip.MustParseAddr("10.0.0.6") // same connection, other real server
	b.State = 7
	if a.Key() != b.Key() {
		t.Fatal("destination and state must not be part of the key")
	}
	tpl := a
	tpl.Flags |= FlagTemplate
	if tpl.Key() == a.Key() {
		t.Fatal("a template must not collide with a connection of the same tuple")
	}
	sip1, sip2 := tpl, tpl
	sip1.PEName, sip1.PEData = "sip", []byte("call-1")
	sip2.PEName, sip2.PEData = "sip", []byte("call-2")
	if sip1.Key() == sip2.Key() {
		t.Fatal("persistence engine templates are keyed by their data")
	}
	c := a
	c.ClientPort++
	if c.Key() == a.Key() {
		t.Fatal("client port is part of the key")
	}
}

func TestNewer(t *testing.T) {
	a, b := v4entry(), v4entry()
	a.Version, b.Version = 5, 4
	if !Newer(&a, &b) || Newer(&b, &a) {
		t.Fatal("higher version must win")
	}
	b.Version = 5
	a.Origin, b.Origin = "d1", "d2"
	if Newer(&a, &b) || !Newer(&b, &a) {
		t.Fatal("tie must go to the higher origin")
	}
}

func TestMemoryBackend(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	m := NewMemoryBackend()
	got := make(chan []Entry, 1)
	go func() { _ = m.Run(ctx, func(b []Entry) { got <- append([]Entry(nil), b...) }) }()
	e := v4entry()
	if err := m.Export(ctx, []Entry{e}); err != nil {
		t.Fatal(err)
	}
	select {
	case b := <-got:
		if len(b) != 1 || b[0].Key() != e.Key() {
			t.Fatalf("exported %v", b)
		}
	case <-ctx.Done():
		t.Fatal("no export")
	}
	old, newer := e, e
	old.Version, newer.Version = 1, 2
	newer.DestAddr = netip.MustParseAddr("10.0.0.9")
	_ = m.Import(ctx, []Entry{newer, old})
	if got := m.Imported()[e.Key()]; got.Version != 2 || got.DestAddr != newer.DestAddr {
		t.Fatalf("imported %+v, want version 2", got)
	}
}
