package daemon

import (
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"
)

const minimal = `
node_id: d1
api_listen: 127.0.0.1:7401
key_file: /etc/saru/sync.key
multicast: {group: 239.255.84.1}
`

func TestParseConfigDefaults(t *testing.T) {
	c, err := ParseConfig([]byte(minimal))
	if err != nil {
		t.Fatal(err)
	}
	if c.Transport.Port != DefaultPort || c.MTU != DefaultMTU || c.Heartbeat != 100*time.Millisecond ||
		c.Advertise != "127.0.0.1:7401" || c.Backend != "memory" || c.KeyGrace != DefaultKeyGrace {
		t.Fatalf("defaults not applied: %+v", c)
	}
}

func TestParseConfigErrorsNameTheField(t *testing.T) {
	tests := []struct {
		name, yaml, field string
	}{
		{"no node id", strings.Replace(minimal, "node_id: d1", "", 1), "node_id"},
		{"spaces in node id", strings.Replace(minimal, "node_id: d1", "node_id: d 1", 1), "node_id"},
		{"bad api", strings.Replace(minimal, "127.0.0.1:7401", "nowhere", 1), "api_listen"},
		{"wildcard api without advertise", strings.Replace(minimal, "127.0.0.1:7401", "0.0.0.0:7401", 1), "advertise"},
		{"bad advertise", minimal + "advertise: somewhere\n", "advertise"},
		{"no key", strings.Replace(minimal, "key_file: /etc/saru/sync.key", "", 1), "key_file"},
		{"unicast group", strings.Replace(minimal, "239.255.84.1", "10.0.0.1", 1), "multicast.group"},
		{"no transport", strings.Replace(minimal, "multicast: {group: 239.255.84.1}", "", 1), "multicast, unicast"},
		{"both transports", minimal + "unicast: {listen: 127.0.0.1:1, peers: [127.0.0.1:2]}\n", "multicast, unicast"},
		{"bad duration", minimal + "timing: {heartbeat: soon}\n", "timing.heartbeat"},
		{"negative duration", minimal + "key_grace: -1s\n", "key_grace"},
		{"mtu", minimal + "mtu: 100\n", "mtu"},
		{"ttl", strings.Replace(minimal, "{group: 239.255.84.1}", "{group: 239.255.84.1, ttl: 300}", 1), "multicast.ttl"},
		{"backend", minimal + "backend: pf\n", "backend"},
		{"log level", minimal + "log_level: loud\n", "log_level"},
		{"unknown field", minimal + "colour: blue\n", "colour"},
		{"unicast peer", `
node_id: d1
api_listen: 127.0.0.1:7401
key_file: k
unicast: {listen: 127.0.0.1:1, peers: [nope]}
`, "unicast.peers[0]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseConfig([]byte(tt.yaml))
			if err == nil || !strings.Contains(err.Error(), tt.field) {
				t.Fatalf("error %v, want it to name %q", err, tt.field)
			}
		})
	}
}

func TestExampleConfigParses(t *testing.T) {
	data, err := os.ReadFile("../../deploy/syncd/syncd.yaml")
	if err != nil {
		t.Fatal(err)
	}
	c, err := ParseConfig(data)
	if err != nil {
		t.Fatalf("deploy/syncd/syncd.yaml: %v", err)
	}
	if c.NodeID != "dir1" || c.Backend != "conntrack" || c.Transport.Interface != "eth1" {
		t.Fatalf("parsed %+v", c)
	}
}

func TestRateLogSuppresses(t *testing.T) {
	var buf strings.Builder
	rl := newRateLog(slog.New(slog.NewTextHandler(&buf, nil)))
	now := time.Now()
	rl.now = func() time.Time { return now }
	for i := 0; i < 100; i++ {
		rl.warn("reject_bad_mac", "sync packet rejected", "reason", "bad_mac")
	}
	rl.warn("reject_truncated", "sync packet rejected", "reason", "truncated")
	if lines := strings.Count(buf.String(), "\n"); lines != 2 {
		t.Fatalf("%d log lines for 101 rejections of two reasons:\n%s", lines, buf.String())
	}
	now = now.Add(2 * time.Second)
	rl.warn("reject_bad_mac", "sync packet rejected", "reason", "bad_mac")
	if !strings.Contains(buf.String(), "suppressed=99") {
		t.Fatalf("suppressed count not reported:\n%s", buf.String())
	}
}
