package config_test

import (
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/saru-lb/saru/saru/config"
	"github.com/saru-lb/saru/saru/partition"
)

func load(t *testing.T, name string) (config.Config, error) {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	r, err := config.Parse(b)
	if err != nil {
		return config.Config{}, err
	}
	return config.For(r)
}

func TestGood(t *testing.T) {
	c, err := load(t, "good.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if c.ID != "dir1" || c.Weight != 2 || c.Buckets != 1024 || c.Seed != 0x5eed1234 || len(c.Services) != 2 ||
		c.Services[1].VIP != netip.MustParseAddr("2001:db8::10") || c.Services[1].Sense != partition.SrcAddr ||
		c.GossipBind != netip.MustParseAddrPort("10.0.0.1:7946") || len(c.Seeds) != 2 || c.SharedMAC.String() != "02:00:5e:10:00:01" ||
		c.ProbeInterval != 200*time.Millisecond || !c.FastFailover || c.SyncdAddress != "127.0.0.1:7500" {
		t.Fatalf("good.yaml parsed as %+v", c)
	}
}

func TestDefaults(t *testing.T) {
	c, err := load(t, "minimal.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if c.Buckets != 4096 || c.GRPCListen != ":7400" || c.JoinDelay != 30*time.Second || c.Weight != 1 || c.Name != "dir1" ||
		c.Services[0].Protocol != "tcp" || c.Services[0].Sense != partition.SrcPort || c.Tick != 100*time.Millisecond ||
		c.Ticks(c.JoinDelay) != 300 || c.SuspicionMult != 2 {
		t.Fatalf("defaults: %+v", c)
	}
}

func TestBadNamesEveryField(t *testing.T) {
	_, err := load(t, "bad.yaml")
	if err == nil {
		t.Fatal("bad.yaml accepted")
	}
	for _, f := range []string{"node.id", "node.weight", "services[0].vip", "services[0].protocol", "services[0].port",
		"services[0].sense", "buckets", "hash_seed", "gossip.bind", "gossip.probe_timeout", "join_delay"} {
		if !strings.Contains(err.Error(), f+": invalid value") {
			t.Errorf("error does not name %s:\n%v", f, err)
		}
	}
}

func TestTable(t *testing.T) {
	base := "node: {id: d1}\nservices: [{vip: 192.0.2.1, port: 80}]\n"
	for _, tc := range []struct {
		name, yaml, want string
	}{
		{"unknown field", base + "hash_seed: '1'\nbukets: 64\n", "field bukets not found"},
		{"no seed", base, "hash_seed: invalid value \"\": required"},
		{"seed too big", base + "hash_seed: '0x100000000'\n", "hash_seed: invalid value"},
		{"no services", "node: {id: d1}\nhash_seed: '1'\n", "services: invalid value"},
		{"overlap", "node: {id: d1}\nhash_seed: '1'\nservices: [{vip: 192.0.2.1, port: 80}, {vip: 192.0.2.1, port: 80, protocol: both}]\n", "services[1]: invalid value \"192.0.2.1\": overlaps services[0]"},
		{"bad mac", base + "hash_seed: '1'\nshared_mac: zz\n", "shared_mac: invalid value"},
		{"bad seed peer", base + "hash_seed: '1'\ngossip: {seeds: [nohost]}\n", "gossip.seeds[0]: invalid value"},
		{"cert without key", base + "hash_seed: '1'\ngrpc: {cert_file: c.pem}\n", "grpc.cert_file"},
		{"suspicion", base + "hash_seed: '1'\ngossip: {suspicion_mult: 50}\n", "gossip.suspicion_mult"},
		{"log level", base + "hash_seed: '1'\nlog_level: loud\n", "log_level"},
		{"syntax", "node: [", "parse config"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := config.Parse([]byte(tc.yaml))
			if err == nil {
				_, err = config.For(r)
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want error containing %q", err, tc.want)
			}
		})
	}
}

// TestDeployExample: the example shipped in deploy/saru is valid.
func TestDeployExample(t *testing.T) {
	b, err := os.ReadFile("../../deploy/saru/saru.yaml")
	if err != nil {
		t.Fatal(err)
	}
	r, err := config.Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	c, err := config.For(r)
	if err != nil {
		t.Fatal(err)
	}
	if c.ID != "dir1" || len(c.Services) != 2 || c.Buckets != 4096 || c.SyncdAddress == "" {
		t.Fatalf("deploy example: %+v", c)
	}
}
