package config_test

import (
	"net/netip"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/saru-lb/saru/filter/bucket"
	"github.com/saru-lb/saru/saru/config"
	"github.com/saru-lb/saru/saru/ipvs"
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
		c.Services[1].VIP != netip.MustParseAddr("2001:db8::10") || c.Services[1].Sense != bucket.SrcAddr ||
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
		!slices.Equal(c.Services[0].Protocols, []bucket.Protocol{bucket.TCP}) || c.Services[0].Sense != bucket.SrcPort || c.Tick != 100*time.Millisecond ||
		c.Ticks(c.JoinDelay) != 300 || c.SuspicionMult != 2 || c.IPVSResync != 30*time.Second {
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
		{"resync", base + "hash_seed: '1'\nipvs: {resync_interval: often}\n", "ipvs.resync_interval: invalid value \"often\""},
		{"nat network", base + "hash_seed: '1'\nnat: {real_servers: [10.0.1.0/24, 10.0.2.0]}\n", "nat.real_servers[1]: invalid value \"10.0.2.0\""},
		{"weight 0", "node: {id: d1, weight: 0}\nservices: [{vip: 192.0.2.1, port: 80}]\nhash_seed: '1'\n", "node.weight: invalid value \"0\": want 1 to 1000"},
		{"buckets 0", base + "hash_seed: '1'\nbuckets: 0\n", "buckets: invalid value \"0\""},
		{"suspicion 0", base + "hash_seed: '1'\ngossip: {suspicion_mult: 0}\n", "gossip.suspicion_mult: invalid value \"0\""},
		{"id with a space", "node: {id: d 1}\nservices: [{vip: 192.0.2.1, port: 80}]\nhash_seed: '1'\n", "node.id: invalid value \"d 1\": want 1 to 63 characters from A-Z a-z 0-9 . _ -"},
		{"id with a newline", "node: {id: \"d1\\nd2\"}\nservices: [{vip: 192.0.2.1, port: 80}]\nhash_seed: '1'\n", "node.id: invalid value \"d1\\nd2\""},
		{"seed port", base + "hash_seed: '1'\ngossip: {seeds: ['10.0.0.2:99999']}\n", "gossip.seeds[0]: invalid value \"10.0.0.2:99999\""},
		{"seed port 0", base + "hash_seed: '1'\ngossip: {seeds: ['10.0.0.2:0']}\n", "gossip.seeds[0]: invalid value \"10.0.0.2:0\""},
		{"seed without host", base + "hash_seed: '1'\ngossip: {seeds: [':7946']}\n", "gossip.seeds[0]: invalid value \":7946\""},
		{"metrics nonsense", base + "hash_seed: '1'\nmetrics: {listen: nonsense}\n", "metrics.listen: invalid value \"nonsense\""},
		{"metrics port", base + "hash_seed: '1'\nmetrics: {listen: '127.0.0.1:70000'}\n", "metrics.listen: invalid value \"127.0.0.1:70000\""},
		{"grpc port", base + "hash_seed: '1'\ngrpc: {listen: ':99999'}\n", "grpc.listen: invalid value \":99999\""},
		{"bind port 0", base + "hash_seed: '1'\ngossip: {bind: '10.0.0.1:0'}\n", "gossip.bind: invalid value \"10.0.0.1:0\""},
		{"syncd without host", base + "hash_seed: '1'\nsyncd: {address: ':7401'}\n", "syncd.address: invalid value \":7401\""},
		{"tick 1ns", base + "hash_seed: '1'\ntick: 1ns\n", "tick: invalid value \"1ns\": want a duration from 1ms to 10s"},
		{"probe 1ns", base + "hash_seed: '1'\ngossip: {probe_interval: 1ns}\n", "gossip.probe_interval: invalid value \"1ns\""},
		{"probe a day", base + "hash_seed: '1'\ngossip: {probe_interval: 24h, probe_timeout: 1s}\n", "gossip.probe_interval: invalid value \"24h\""},
		{"join delay hours", base + "hash_seed: '1'\njoin_delay: 30h\n", "join_delay: invalid value \"30h\""},
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
	checkEnvironmentOfExample(t, c)
	if c.ID != "dir1" || len(c.Services) != 2 || len(c.IPVS()) != 2 || len(c.IPVS()[0].Destinations) != 3 || c.Buckets != 4096 || c.SyncdAddress == "" {
		t.Fatalf("deploy example: %+v", c)
	}
}

func TestIPVSServices(t *testing.T) {
	c, err := load(t, "ipvs.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Services) != 4 || c.Services[0].Name != "web" || c.Services[3].IPVS != nil {
		t.Fatalf("services: %+v", c.Services)
	}
	web := c.Services[0].IPVS
	wantWeb := ipvs.Entry{
		Service: ipvs.Service{ServiceID: ipvs.ServiceID{Protocol: bucket.TCP, Address: netip.MustParseAddrPort("192.0.2.10:80")},
			Scheduler: "wlc", NetmaskBits: 32},
		Destinations: []ipvs.Destination{
			{Address: netip.MustParseAddrPort("10.0.1.1:8080"), Forward: ipvs.ForwardMasq, Weight: 3, UpperThreshold: 100, LowerThreshold: 10},
			{Address: netip.MustParseAddrPort("10.0.1.2:8080"), Forward: ipvs.ForwardMasq, Weight: 0},
		},
	}
	if len(web) != 1 || !reflect.DeepEqual(web[0], wantWeb) {
		t.Errorf("web: %+v\nwant %+v", web, wantWeb)
	}
	dns := c.Services[1].IPVS
	if len(dns) != 2 || dns[0].Service.Protocol != bucket.TCP || dns[1].Service.Protocol != bucket.UDP {
		t.Fatalf("protocol both should give a tcp and a udp service: %+v", dns)
	}
	for _, e := range dns {
		s := e.Service
		if s.Scheduler != "sh" || s.Flags != ipvs.FlagPersistent|ipvs.FlagSched2 || s.Timeout != 300 || s.NetmaskBits != 24 ||
			len(e.Destinations) != 1 || e.Destinations[0].Address != netip.MustParseAddrPort("10.0.2.1:53") || e.Destinations[0].Forward != ipvs.ForwardRoute || e.Destinations[0].Weight != 1 {
			t.Errorf("dns %s: %+v", s.ServiceID, e)
		}
	}
	marked := c.Services[2].IPVS
	if len(marked) != 1 || marked[0].Service.FWMark != 7 || marked[0].Service.Family != ipvs.FamilyIPv6 || marked[0].Service.NetmaskBits != 64 || len(marked[0].Destinations) != 0 {
		t.Errorf("fwmark: %+v", marked)
	}
	table := c.IPVS()
	if len(table) != 4 {
		t.Fatalf("IPVS table has %d services, want 4", len(table))
	}
	for i := 1; i < len(table); i++ {
		if table[i-1].Service.Compare(table[i].Service.ServiceID) >= 0 {
			t.Errorf("IPVS table not sorted: %s before %s", table[i-1].Service.ServiceID, table[i].Service.ServiceID)
		}
	}
}

// TestFilterOnlyConfigsUnchanged: configurations written before services
// had an IPVS side describe no IPVS services.
func TestFilterOnlyConfigsUnchanged(t *testing.T) {
	for _, name := range []string{"good.yaml", "minimal.yaml"} {
		c, err := load(t, name)
		if err != nil {
			t.Fatal(err)
		}
		if got := c.IPVS(); len(got) != 0 {
			t.Errorf("%s: IPVS %+v", name, got)
		}
	}
}

func TestIPVSBadInput(t *testing.T) {
	head := "node: {id: d1}\nhash_seed: '1'\nservices:\n"
	for _, tc := range []struct {
		name, services string
		want           []string
	}{
		{"unknown scheduler", "  - {vip: 192.0.2.1, port: 80, scheduler: fastest}\n", []string{`services[0].scheduler: service tcp 192.0.2.1:80: unknown scheduler "fastest"`}},
		{"weight out of range", "  - {vip: 192.0.2.1, port: 80, real_servers: [{address: 10.0.0.1}, {address: 10.0.0.2, weight: 3000000000}]}\n",
			[]string{"services[0].real_servers[1].weight: service tcp 192.0.2.1:80: 3000000000 out of range"}},
		{"negative weight", "  - {vip: 192.0.2.1, port: 80, real_servers: [{address: 10.0.0.1, weight: -1}]}\n", []string{"services[0].real_servers[0].weight"}},
		{"persistence out of range", "  - {vip: 192.0.2.1, port: 80, persistence_timeout: 99999999}\n", []string{"services[0].persistence_timeout"}},
		{"netmask without persistence", "  - {vip: 192.0.2.1, port: 80, persistence_netmask: /24}\n", []string{"services[0].persistence_netmask"}},
		{"family of a real server", "  - {vip: 192.0.2.1, port: 80, forwarding: masq, real_servers: [{address: '[2001:db8::1]:80'}]}\n", []string{"services[0].real_servers[0].address", "inet6 but the service is inet"}},
		{"forwarding", "  - {vip: 192.0.2.1, port: 80, forwarding: teleport}\n", []string{"services[0].forwarding"}},
		{"multicast real server", "  - {vip: 192.0.2.1, port: 80, real_servers: [{address: 10.0.0.1}, {address: 224.0.0.5}, {address: 0.0.0.0}]}\n",
			[]string{"services[0].real_servers[1].address", "services[0].real_servers[2].address", "needs a unicast address"}},
		{"duplicate real server", "  - {vip: 192.0.2.1, port: 80, real_servers: [{address: 10.0.0.1:80}, {address: 10.0.0.1}]}\n", []string{"services[0].real_servers[1].address"}},
		{"every port without persistence", "  - {vip: 192.0.2.1, port: 0, scheduler: rr}\n", []string{"services[0].port: invalid value \"0\""}},
		{"duplicate fwmark", "  - {vip: 192.0.2.1, port: 80, fwmark: 3}\n  - {vip: 192.0.2.2, port: 80, fwmark: 3}\n", []string{"services[1].fwmark", "already defined by services[0]"}},
		{"bad second service", "  - {vip: 192.0.2.1, port: 80, real_servers: [{address: 10.0.0.1}]}\n  - {vip: 192.0.2.1, port: 81, protocol: both, scheduler: mh, scheduler_flags: [sh-port]}\n",
			[]string{"services[1].scheduler_flags"}},
		{"unknown field", "  - {vip: 192.0.2.1, port: 80, real_servers: [{address: 10.0.0.1, wieght: 2}]}\n", []string{"field wieght not found"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := config.Parse([]byte(head + tc.services))
			if err == nil {
				_, err = config.For(r)
			}
			if err == nil {
				t.Fatal("accepted")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q:\n%v", w, err)
				}
			}
		})
	}
}

func TestNATRealServers(t *testing.T) {
	r, err := config.Parse([]byte("node: {id: d1}\nhash_seed: '1'\nservices: [{vip: 192.0.2.1, port: 80}]\nnat: {real_servers: [10.0.1.7/24, 'fd00::/64']}\n"))
	if err != nil {
		t.Fatal(err)
	}
	c, err := config.For(r)
	if err != nil {
		t.Fatal(err)
	}
	want := []netip.Prefix{netip.MustParsePrefix("10.0.1.0/24"), netip.MustParsePrefix("fd00::/64")}
	if !reflect.DeepEqual(c.NATRealServers, want) {
		t.Fatalf("nat.real_servers = %v, want %v", c.NATRealServers, want)
	}
}

// A service's protocol is typed once, here: "both" is tcp and udp, and the
// service names itself as the configuration wrote it.
func TestServiceProtocols(t *testing.T) {
	r, err := config.Parse([]byte("node: {id: d1}\nhash_seed: '1'\nservices:\n" +
		"  - {vip: 192.0.2.1, port: 80}\n  - {vip: 192.0.2.1, port: 53, protocol: both, sense: dst-addr}\n  - {vip: '2001:db8::1', protocol: udp}\n"))
	if err != nil {
		t.Fatal(err)
	}
	c, err := config.For(r)
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []struct {
		protos []bucket.Protocol
		sense  bucket.Sense
		name   string
	}{
		{[]bucket.Protocol{bucket.TCP}, bucket.SrcPort, "192.0.2.1:80/tcp"},
		{[]bucket.Protocol{bucket.TCP, bucket.UDP}, bucket.DstAddr, "192.0.2.1:53/both"},
		{[]bucket.Protocol{bucket.UDP}, bucket.SrcPort, "[2001:db8::1]:0/udp"},
	} {
		s := c.Services[i]
		if !slices.Equal(s.Protocols, want.protos) || s.Sense != want.sense || s.String() != want.name {
			t.Errorf("services[%d] = %v %v %q, want %v %v %q", i, s.Protocols, s.Sense, s, want.protos, want.sense, want.name)
		}
	}
}

// idCases is the table of director ids; syncd/daemon's id test holds the
// same table, so both daemons accept exactly the same ids.
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
		err := config.CheckID(tc.id)
		if (err == nil) != tc.ok {
			t.Errorf("CheckID(%q) = %v, want ok %v", tc.id, err, tc.ok)
		}
		if err != nil && err.Error() != "want 1 to 63 characters from A-Z a-z 0-9 . _ -" {
			t.Errorf("CheckID(%q) wording: %v", tc.id, err)
		}
	}
}

// A value the file writes is checked, never replaced by a default; one it
// leaves out gets the default.
func TestWrittenValuesKept(t *testing.T) {
	r, err := config.Parse([]byte("node: {id: d1, weight: 7}\nservices: [{vip: 192.0.2.1, port: 80}]\nhash_seed: '1'\nbuckets: 256\ngossip: {suspicion_mult: 3}\n"))
	if err != nil {
		t.Fatal(err)
	}
	c, err := config.For(r)
	if err != nil {
		t.Fatal(err)
	}
	if c.Weight != 7 || c.Buckets != 256 || c.SuspicionMult != 3 {
		t.Fatalf("weight %d, buckets %d, suspicion_mult %d; want 7, 256, 3", c.Weight, c.Buckets, c.SuspicionMult)
	}
}
