package services

import (
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/saru-lb/saru/filter/bucket"

	"github.com/saru-lb/saru/saru/ipvs"
)

func w(n int64) *int64 { return &n }

func tcp(a string) ipvs.ServiceID {
	return ipvs.ServiceID{Protocol: bucket.TCP, Address: netip.MustParseAddrPort(a)}
}

func TestDesiredNormalises(t *testing.T) {
	cfgs := []Spec{
		{ID: tcp("192.0.2.10:80"), Options: Options{Name: "web", Scheduler: "wrr", PersistenceTimeout: 300,
			PersistenceNetmask: "255.255.255.0", Forwarding: "nat", RealServers: []RealServerConfig{
				{Address: "10.0.1.2:8080", Weight: w(0)},
				{Address: "10.0.1.1", Weight: w(3), UpperThreshold: 100, LowerThreshold: 10},
			}}},
		{ID: ipvs.ServiceID{Protocol: bucket.UDP, Address: netip.MustParseAddrPort("[2001:db8::10]:53")}, Options: Options{
			Scheduler: "mh", SchedulerFlags: []string{"mh-port", "mh-fallback"}, OnePacket: true, RealServers: []RealServerConfig{
				{Address: "[2001:db8::20]:53"},
				{Address: "10.0.2.1", Forwarding: "tunnel"},
			}}},
		{ID: ipvs.ServiceID{FWMark: 7, Family: ipvs.FamilyIPv6}, Options: Options{PersistenceTimeout: 60, PersistenceNetmask: "/64"}},
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
		ServiceID: ipvs.ServiceID{Protocol: bucket.TCP, Address: netip.MustParseAddrPort("192.0.2.10:80")},
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
		cfg  Spec
		want []string
	}{
		{"unknown scheduler", Spec{ID: tcp("10.0.0.1:80"), Options: Options{Scheduler: "fastest"}},
			[]string{"services[0].scheduler", `unknown scheduler "fastest"`, "tcp 10.0.0.1:80"}},
		{"weight too big", Spec{ID: tcp("10.0.0.1:80"), Options: Options{RealServers: []RealServerConfig{{Address: "10.0.1.1", Weight: w(1 << 31)}}}},
			[]string{"services[0].real_servers[0].weight", "2147483648 out of range"}},
		{"negative weight", Spec{ID: tcp("10.0.0.1:80"), Options: Options{Name: "web", RealServers: []RealServerConfig{{Address: "10.0.1.1", Weight: w(-1)}}}},
			[]string{"services[0].real_servers[0].weight", "-1 out of range", "web (tcp 10.0.0.1:80)"}},
		{"persistence range", Spec{ID: tcp("10.0.0.1:80"), Options: Options{PersistenceTimeout: ipvs.MaxPersistence + 1}},
			[]string{"services[0].persistence_timeout", "2678401 out of range"}},
		{"negative persistence", Spec{ID: tcp("10.0.0.1:80"), Options: Options{PersistenceTimeout: -5}},
			[]string{"services[0].persistence_timeout", "-5 out of range"}},
		{"family mismatch", Spec{ID: ipvs.ServiceID{Protocol: bucket.TCP, Address: netip.MustParseAddrPort("10.0.0.1:80"), Family: ipvs.FamilyIPv6}},
			[]string{"services[0]", "family inet6 does not match the address (inet)"}},
		{"real server family", Spec{ID: tcp("10.0.0.1:80"), Options: Options{RealServers: []RealServerConfig{{Address: "[2001:db8::1]:80"}}}},
			[]string{"services[0].real_servers[0].address", "2001:db8::1 is inet6 but the service is inet"}},
		{"fwmark needs family", Spec{ID: ipvs.ServiceID{FWMark: 3}},
			[]string{"services[0]", "a fwmark service needs family inet or inet6"}},
		{"fwmark and address", Spec{ID: ipvs.ServiceID{FWMark: 3, Family: ipvs.FamilyIPv4, Address: netip.MustParseAddrPort("10.0.0.1:80")}},
			[]string{"services[0]", "a fwmark service has no protocol or address"}},
		{"no address", Spec{ID: ipvs.ServiceID{Protocol: bucket.TCP}},
			[]string{"services[0]", "no virtual address"}},
		{"unknown protocol", Spec{ID: ipvs.ServiceID{Protocol: 1, Address: netip.MustParseAddrPort("10.0.0.1:80")}},
			[]string{"services[0]", "protocol 1 is not tcp, udp or sctp"}},
		{"port 0 not persistent", Spec{ID: tcp("10.0.0.1:0")},
			[]string{"services[0].address", "port 0"}},
		{"netmask without persistence", Spec{ID: tcp("10.0.0.1:80"), Options: Options{PersistenceNetmask: "/24"}},
			[]string{"services[0].persistence_netmask", "without persistence_timeout"}},
		{"ragged netmask", Spec{ID: tcp("10.0.0.1:80"), Options: Options{PersistenceTimeout: 5, PersistenceNetmask: "255.0.255.0"}},
			[]string{"services[0].persistence_netmask", "not a contiguous mask"}},
		{"ipv6 netmask", Spec{ID: tcp("[2001:db8::1]:80"), Options: Options{PersistenceTimeout: 5, PersistenceNetmask: "/129"}},
			[]string{"services[0].persistence_netmask", "out of range (1..128 for inet6)"}},
		{"scheduler flag for another scheduler", Spec{ID: tcp("10.0.0.1:80"), Options: Options{Scheduler: "rr", SchedulerFlags: []string{"sh-port"}}},
			[]string{"services[0].scheduler_flags", `flag "sh-port" needs scheduler sh`}},
		{"one packet on tcp", Spec{ID: tcp("10.0.0.1:80"), Options: Options{OnePacket: true}},
			[]string{"services[0].one_packet", "udp services only"}},
		{"unknown forwarding", Spec{ID: tcp("10.0.0.1:80"), Options: Options{RealServers: []RealServerConfig{{Address: "10.0.1.1", Forwarding: "teleport"}}}},
			[]string{"services[0].real_servers[0].forwarding", `unknown forwarding method "teleport"`}},
		{"duplicate real server", Spec{ID: tcp("10.0.0.1:80"), Options: Options{RealServers: []RealServerConfig{{Address: "10.0.1.1"}, {Address: "10.0.1.1:80"}}}},
			[]string{"services[0].real_servers[1].address", "already listed as real_servers[0]"}},
		{"thresholds", Spec{ID: tcp("10.0.0.1:80"), Options: Options{RealServers: []RealServerConfig{{Address: "10.0.1.1", UpperThreshold: 5, LowerThreshold: 9}}}},
			[]string{"services[0].real_servers[0].lower_threshold", "9 above upper_threshold 5"}},
		{"masq without port", Spec{ID: tcp("10.0.0.1:80"), Options: Options{Forwarding: "masq", RealServers: []RealServerConfig{{Address: "10.0.1.1:0"}}}},
			[]string{"services[0].real_servers[0].address", "masq forwarding needs a real server port"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			es, err := Desired("services", []Spec{tc.cfg})
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
	_, err := Desired("services", []Spec{
		{ID: tcp("10.0.0.1:80")},
		{ID: tcp("10.0.0.1:80"), Options: Options{Name: "again"}},
		{ID: tcp("10.0.0.2:80"), Options: Options{Scheduler: "nope"}},
	})
	if err == nil || !strings.Contains(err.Error(), "services[1]: service tcp 10.0.0.1:80 is already defined by services[0]") ||
		!strings.Contains(err.Error(), "services[2].scheduler") {
		t.Errorf("error %v", err)
	}
}
