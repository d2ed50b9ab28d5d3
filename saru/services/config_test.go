package services

import (
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/saru-lb/saru/saru/ipvs"
)

func w(n int64) *int64 { return &n }

func TestDesiredNormalises(t *testing.T) {
	cfgs, err := DecodeYAML([]byte(`
- name: web
  address: 192.0.2.10:80
  scheduler: wrr
  persistence_timeout: 300
  persistence_netmask: 255.255.255.0
  forwarding: nat
  real_servers:
    - address: 10.0.1.2:8080
      weight: 0
    - address: 10.0.1.1
      weight: 3
      upper_threshold: 100
      lower_threshold: 10
- address: "[2001:db8::10]:53"
  protocol: udp
  scheduler: mh
  scheduler_flags: [mh-port, mh-fallback]
  one_packet: true
  real_servers:
    - address: "[2001:db8::20]:53"
    - address: 10.0.2.1
      forwarding: tunnel
- fwmark: 7
  family: inet6
  persistence_timeout: 60
  persistence_netmask: /64
`))
	if err != nil {
		t.Fatal(err)
	}
	es, err := Desired("services", cfgs)
	if err != nil {
		t.Fatal(err)
	}
	if len(es) != 3 {
		t.Fatalf("%d entries", len(es))
	}
	web := es[0]
	want := ipvs.Service{
		ServiceID: ipvs.ServiceID{Protocol: ipvs.ProtocolTCP, Address: netip.MustParseAddrPort("192.0.2.10:80")},
		Scheduler: "wrr", Flags: ipvs.FlagPersistent, Timeout: 300, NetmaskBits: 24,
	}
	if web.Service != want {
		t.Errorf("web service %+v, want %+v", web.Service, want)
	}
	wantDests := []ipvs.Destination{
		{Address: netip.MustParseAddrPort("10.0.1.1:80"), Forward: ipvs.ForwardMasq, Weight: 3, UpperThreshold: 100, LowerThreshold: 10},
		{Address: netip.MustParseAddrPort("10.0.1.2:8080"), Forward: ipvs.ForwardMasq, Weight: 0},
	}
	if len(web.Destinations) != 2 || web.Destinations[0] != wantDests[0] || web.Destinations[1] != wantDests[1] {
		t.Errorf("web destinations %+v, want %+v", web.Destinations, wantDests)
	}
	dns := es[1]
	if dns.Service.Scheduler != "mh" || dns.Service.Flags != ipvs.FlagSched1|ipvs.FlagSched2|ipvs.FlagOnePacket || dns.Service.NetmaskBits != 128 {
		t.Errorf("dns service %+v", dns.Service)
	}
	if dns.Destinations[1].Forward != ipvs.ForwardRoute || dns.Destinations[1].Weight != 1 {
		t.Errorf("default forwarding/weight: %+v", dns.Destinations[1])
	}
	if dns.Destinations[0].Address != netip.MustParseAddrPort("10.0.2.1:53") || dns.Destinations[0].Forward != ipvs.ForwardTunnel {
		t.Errorf("IPv4 tunnel destination of an IPv6 service: %+v", dns.Destinations[0])
	}
	mark := es[2]
	if mark.Service.FWMark != 7 || mark.Service.Family != ipvs.FamilyIPv6 || mark.Service.NetmaskBits != 64 || mark.Service.Scheduler != "wlc" {
		t.Errorf("fwmark service %+v", mark.Service)
	}
}

func TestDesiredErrorsNameTheField(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
		want []string
	}{
		{"unknown scheduler", Config{Address: "10.0.0.1:80", Scheduler: "fastest"},
			[]string{"services[0].scheduler", `unknown scheduler "fastest"`, "tcp 10.0.0.1:80"}},
		{"weight too big", Config{Address: "10.0.0.1:80", RealServers: []RealServerConfig{{Address: "10.0.1.1", Weight: w(1 << 31)}}},
			[]string{"services[0].real_servers[0].weight", "2147483648 out of range"}},
		{"negative weight", Config{Name: "web", Address: "10.0.0.1:80", RealServers: []RealServerConfig{{Address: "10.0.1.1", Weight: w(-1)}}},
			[]string{"services[0].real_servers[0].weight", "-1 out of range", "web (tcp 10.0.0.1:80)"}},
		{"persistence range", Config{Address: "10.0.0.1:80", PersistenceTimeout: ipvs.MaxPersistence + 1},
			[]string{"services[0].persistence_timeout", "2678401 out of range"}},
		{"negative persistence", Config{Address: "10.0.0.1:80", PersistenceTimeout: -5},
			[]string{"services[0].persistence_timeout", "-5 out of range"}},
		{"family mismatch", Config{Address: "10.0.0.1:80", Family: "inet6"},
			[]string{"services[0].family", "inet6, but address 10.0.0.1 is inet"}},
		{"real server family", Config{Address: "10.0.0.1:80", RealServers: []RealServerConfig{{Address: "[2001:db8::1]:80"}}},
			[]string{"services[0].real_servers[0].address", "2001:db8::1 is inet6 but the service is inet"}},
		{"fwmark needs family", Config{FWMark: 3},
			[]string{"services[0].family", "required for a fwmark service"}},
		{"fwmark and address", Config{FWMark: 3, Address: "10.0.0.1:80"},
			[]string{"services[0].fwmark", "one or the other"}},
		{"bad address", Config{Address: "10.0.0.1"},
			[]string{"services[0].address", "is not address:port"}},
		{"unknown protocol", Config{Address: "10.0.0.1:80", Protocol: "icmp"},
			[]string{"services[0].protocol", `unknown protocol "icmp"`}},
		{"port 0 not persistent", Config{Address: "10.0.0.1:0"},
			[]string{"services[0].address", "port 0"}},
		{"netmask without persistence", Config{Address: "10.0.0.1:80", PersistenceNetmask: "/24"},
			[]string{"services[0].persistence_netmask", "without persistence_timeout"}},
		{"ragged netmask", Config{Address: "10.0.0.1:80", PersistenceTimeout: 5, PersistenceNetmask: "255.0.255.0"},
			[]string{"services[0].persistence_netmask", "not a contiguous mask"}},
		{"ipv6 netmask", Config{Address: "[2001:db8::1]:80", PersistenceTimeout: 5, PersistenceNetmask: "/129"},
			[]string{"services[0].persistence_netmask", "out of range (1..128 for inet6)"}},
		{"scheduler flag for another scheduler", Config{Address: "10.0.0.1:80", Scheduler: "rr", SchedulerFlags: []string{"sh-port"}},
			[]string{"services[0].scheduler_flags", `flag "sh-port" needs scheduler sh`}},
		{"one packet on tcp", Config{Address: "10.0.0.1:80", OnePacket: true},
			[]string{"services[0].one_packet", "udp services only"}},
		{"unknown forwarding", Config{Address: "10.0.0.1:80", RealServers: []RealServerConfig{{Address: "10.0.1.1", Forwarding: "teleport"}}},
			[]string{"services[0].real_servers[0].forwarding", `unknown forwarding method "teleport"`}},
		{"duplicate real server", Config{Address: "10.0.0.1:80", RealServers: []RealServerConfig{{Address: "10.0.1.1"}, {Address: "10.0.1.1:80"}}},
			[]string{"services[0].real_servers[1].address", "already listed as real_servers[0]"}},
		{"thresholds", Config{Address: "10.0.0.1:80", RealServers: []RealServerConfig{{Address: "10.0.1.1", UpperThreshold: 5, LowerThreshold: 9}}},
			[]string{"services[0].real_servers[0].lower_threshold", "9 above upper_threshold 5"}},
		{"masq without port", Config{FWMark: 0, Address: "10.0.0.1:80", Forwarding: "masq", RealServers: []RealServerConfig{{Address: "10.0.1.1:0"}}},
			[]string{"services[0].real_servers[0].address", "masq forwarding needs a real server port"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			es, err := Desired("services", []Config{tc.cfg})
			if err == nil {
				t.Fatalf("accepted: %+v", es)
			}
			if es != nil {
				t.Errorf("returned a table with an error: %+v", es)
			}
			var fe *FieldError
			if !errors.As(err, &fe) {
				t.Errorf("error %v is not a FieldError", err)
			}
			for _, s := range tc.want {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q lacks %q", err, s)
				}
			}
		})
	}
}

func TestDesiredRefusesDuplicateServicesAndCollectsAllErrors(t *testing.T) {
	_, err := Desired("services", []Config{
		{Address: "10.0.0.1:80"},
		{Address: "10.0.0.1:80", Protocol: "TCP"},
		{Address: "10.0.0.2:80", Scheduler: "nope"},
	})
	if err == nil || !strings.Contains(err.Error(), "services[1]: service tcp 10.0.0.1:80 is already defined by services[0]") ||
		!strings.Contains(err.Error(), "services[2].scheduler") {
		t.Errorf("error %v", err)
	}
	if _, err := DecodeYAML([]byte("- adress: 10.0.0.1:80\n")); err == nil || !strings.Contains(err.Error(), "adress") {
		t.Errorf("unknown field accepted: %v", err)
	}
}
