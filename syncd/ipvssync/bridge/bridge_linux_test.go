package bridge

import (
	"encoding/binary"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/saru-lb/saru/syncd/ipvssync"
)

func TestDropsRateLimit(t *testing.T) {
	d := NewDrops(10 * time.Second)
	t0 := time.Unix(1000, 0)
	if log, n := d.Add(DropMalformed, 1, t0); !log || n != 1 {
		t.Fatalf("first drop: log %v n %d", log, n)
	}
	for i := 1; i <= 5; i++ {
		if log, _ := d.Add(DropMalformed, 1, t0.Add(time.Duration(i)*time.Second)); log {
			t.Fatalf("drop %d logged within the interval", i)
		}
	}
	// Another reason has its own limit.
	if log, _ := d.Add(DropSendFailed, 2, t0.Add(time.Second)); !log {
		t.Fatal("first drop of another reason not logged")
	}
	log, n := d.Add(DropMalformed, 1, t0.Add(11*time.Second))
	if !log || n != 6 {
		t.Fatalf("after the interval: log %v, %d drops reported, want 6", log, n)
	}
	c := d.Counts()
	if c[DropMalformed] != 7 || c[DropSendFailed] != 2 || len(c) != 2 {
		t.Fatalf("counts %v", c)
	}
}

// udp4 builds an IPv4/UDP packet.
func udp4(src, dst [4]byte, sport, dport uint16, payload []byte) []byte {
	p := make([]byte, 28+len(payload))
	p[0] = 0x45
	binary.BigEndian.PutUint16(p[2:], uint16(len(p)))
	p[8], p[9] = 1, 17
	copy(p[12:], src[:])
	copy(p[16:], dst[:])
	binary.BigEndian.PutUint16(p[20:], sport)
	binary.BigEndian.PutUint16(p[22:], dport)
	binary.BigEndian.PutUint16(p[24:], uint16(8+len(payload)))
	copy(p[28:], payload)
	return p
}

func TestSyncPayload(t *testing.T) {
	group := ipvssync.DefaultGroup
	msg := []byte{0, 0, 0, 8, 0, 1, 0, 0}
	g := group.As4()
	src := [4]byte{10, 0, 0, 2}
	tests := []struct {
		name string
		p    []byte
		ok   bool
	}{
		{"master message", udp4(src, g, 40000, 8848, msg), true},
		{"second sync port", udp4(src, g, 40000, 8849, msg), true},
		{"own injection", udp4(src, g, 50000, 8848, msg), false},
		{"other port", udp4(src, g, 40000, 9000, msg), false},
		{"other group", udp4(src, [4]byte{224, 0, 0, 18}, 40000, 8848, msg), false},
		{"not udp", func() []byte { p := udp4(src, g, 40000, 8848, msg); p[9] = 6; return p }(), false},
		{"fragment", func() []byte { p := udp4(src, g, 40000, 8848, msg); p[6] = 0x20; return p }(), false},
		{"truncated", udp4(src, g, 40000, 8848, msg)[:30], false},
		{"ipv6", func() []byte { p := udp4(src, g, 40000, 8848, msg); p[0] = 0x60; return p }(), false},
		{"short", []byte{0x45, 0}, false},
	}
	for _, tt := range tests {
		got, ok := SyncPayload(tt.p, group, ipvssync.DefaultPort, 50000)
		if ok != tt.ok {
			t.Errorf("%s: ok = %v", tt.name, ok)
		}
		if ok && string(got) != string(msg) {
			t.Errorf("%s: payload %x", tt.name, got)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name  string
		cfg   Config
		field string
	}{
		{"defaults", Config{}, ""},
		{"long name", Config{Interface: strings.Repeat("x", 16)}, "interface"},
		{"unicast group", Config{Group: netip.MustParseAddr("10.0.0.1")}, "group"},
		{"ipv6 group", Config{Group: netip.MustParseAddr("ff02::1")}, "group"},
		{"small backup maxlen", Config{BackupMaxLen: 1000}, "backup_maxlen"},
		{"negative master maxlen", Config{MasterMaxLen: -1}, "master_maxlen"},
		{"no poll", Config{PollInterval: -1}, ""},
		{"tiny poll", Config{PollInterval: time.Millisecond}, "poll_interval"},
		{"negative slack", Config{RefreshSlack: -time.Second}, "refresh_slack"},
	}
	for _, tt := range tests {
		c := tt.cfg
		c.setDefaults()
		err := c.validate()
		if tt.field == "" {
			if err != nil {
				t.Errorf("%s: %v", tt.name, err)
			}
			continue
		}
		if err == nil || !strings.HasPrefix(err.Error(), tt.field+":") {
			t.Errorf("%s: err %v, want one naming %s", tt.name, err, tt.field)
		}
	}
}
