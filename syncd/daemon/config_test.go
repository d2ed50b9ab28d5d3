package daemon

import (
	"fmt"
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
		{"newline in node id", strings.Replace(minimal, "node_id: d1", "node_id: \"d1\\nd2\"", 1), `node_id: invalid value "d1\nd2": want 1 to 63 characters from A-Z a-z 0-9 . _ -`},
		{"heartbeat 1ns", minimal + "timing: {heartbeat: 1ns}\n", `timing.heartbeat: invalid value "1ns": want a duration from 10ms to 1m0s`},
		{"heartbeat an hour", minimal + "timing: {heartbeat: 1h}\n", `timing.heartbeat: invalid value "1h"`},
		{"tick 1ns", minimal + "timing: {tick: 1ns}\n", `timing.tick: invalid value "1ns"`},
		{"refresh 1ms", minimal + "timing: {refresh: 1ms}\n", `timing.refresh: invalid value "1ms"`},
		{"metrics nonsense", minimal + "metrics_listen: nonsense\n", `metrics_listen: invalid value "nonsense"`},
		{"metrics port", minimal + "metrics_listen: 127.0.0.1:99999\n", `metrics_listen: invalid value "127.0.0.1:99999"`},
		{"snapshot peer nonsense", minimal + "snapshot: {peers: [10.0.0.2:7401, nonsense]}\n", `snapshot.peers[1]: invalid value "nonsense"`},
		{"snapshot peer port", minimal + "snapshot: {peers: ['10.0.0.2:99999']}\n", `snapshot.peers[0]: invalid value "10.0.0.2:99999"`},
		{"snapshot wait 1ns", minimal + "snapshot: {wait: 1ns}\n", `snapshot.wait: invalid value "1ns"`},
		{"api port 0", strings.Replace(minimal, "127.0.0.1:7401", "127.0.0.1:0", 1), `api_listen: invalid value "127.0.0.1:0"`},
		{"mtu 0", minimal + "mtu: 0\n", `mtu: invalid value "0": want 576 to 65535`},
		{"multicast port 0", strings.Replace(minimal, "{group: 239.255.84.1}", "{group: 239.255.84.1, port: 0}", 1), `multicast.port: invalid value "0"`},
		{"multicast interface", strings.Replace(minimal, "{group: 239.255.84.1}", "{group: 239.255.84.1, interface: 'eth 1'}", 1), `multicast.interface: invalid value "eth 1"`},
		{"read buffer 0", minimal + "read_buffer: 0\n", `read_buffer: invalid value "0"`},
		{"window 0", minimal + "reliable: {window: 0}\n", `reliable.window: invalid value "0"`},
		{"ring 0", minimal + "reliable: {ring: 0}\n", `reliable.ring: invalid value "0"`},
		{"max nacks 0", minimal + "reliable: {max_nacks: 0}\n", `reliable.max_nacks: invalid value "0"`},
		{"nack delay 1ns", minimal + "reliable: {nack_delay: 1ns}\n", `reliable.nack_delay: invalid value "1ns"`},
		{"key grace 1ns", minimal + "key_grace: 1ns\n", `key_grace: invalid value "1ns"`},
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
	// The key file and interface it names (/etc/saru/sync.key, eth1)
	// belong to a director, not to a test machine: with a private key in
	// their place and the loopback interface, the environment check passes.
	if c.KeyFile != "/etc/saru/sync.key" {
		t.Fatalf("the example names key file %q; update this test", c.KeyFile)
	}
	c.KeyFile = writeKey(t, t.TempDir(), "sync.key", "1 "+strings.Repeat("5a", 32)+"\n", 0o600)
	c.Transport.Interface = "lo"
	if err := c.CheckEnvironment(); err != nil {
		t.Fatalf("deploy/syncd/syncd.yaml environment: %v", err)
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

// idCases is the table of node ids; saru/config's id test holds the same
// table, so both daemons accept exactly the same ids.
var idCases = []struct {
	id string
	ok bool
}{
	{"dir1", true},
	{"d", true},
	{"Dir-1.example_A", true},
	{"0", true},
	{strings.Repeat("a", 63), true},
	{"", false},
	{strings.Repeat("a", 64), false},
	{"d 1", false},
	{"d1\n", false},
	{"d1\nd2", false},
	{"\td1", false},
	{"d/1", false},
	{"d:1", false},
	{"d@1", false},
	{"dïr", false},
	{"d\x00", false},
}

func TestCheckID(t *testing.T) {
	for _, tc := range idCases {
		err := CheckID(tc.id)
		if (err == nil) != tc.ok {
			t.Errorf("CheckID(%q) = %v, want ok %v", tc.id, err, tc.ok)
		}
		if err != nil && err.Error() != "want 1 to 63 characters from A-Z a-z 0-9 . _ -" {
			t.Errorf("CheckID(%q) wording: %v", tc.id, err)
		}
		_, err = ParseConfig([]byte(strings.Replace(minimal, "node_id: d1", fmt.Sprintf("node_id: %q", tc.id), 1)))
		if (err == nil) != tc.ok {
			t.Errorf("node_id %q: %v, want ok %v", tc.id, err, tc.ok)
		}
	}
}

// A value the file writes is checked, never replaced by a default; one it
// leaves out gets the default.
func TestWrittenValuesKept(t *testing.T) {
	c, err := ParseConfig([]byte(strings.Replace(minimal, "{group: 239.255.84.1}", "{group: 239.255.84.1, port: 9000}", 1) +
		"mtu: 9000\nread_buffer: 65536\nreliable: {window: 128, ring: 256, max_nacks: 3}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.MTU != 9000 || c.Transport.Port != 9000 || c.Transport.ReadBuffer != 65536 || c.Reliable.Window != 128 ||
		c.Reliable.RingSize != 256 || c.Reliable.MaxNacks != 3 {
		t.Fatalf("written values changed: %+v", c)
	}
}
