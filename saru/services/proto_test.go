package services

import (
	"net/netip"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/saru-lb/saru/filter/bucket"
	"github.com/saru-lb/saru/saru/ipvs"
)

// goldenTable is the table ipvsadm printed below was built from (ipvsadm
// 1.31 on Debian's 6.1 kernel, in the kernel lab).
func goldenTable() []ipvs.Entry {
	return []ipvs.Entry{
		{Service: ipvs.Service{ServiceID: ipvs.ServiceID{Protocol: bucket.TCP, Address: netip.MustParseAddrPort("10.0.0.1:80")},
			Scheduler: "rr", Flags: ipvs.FlagPersistent | ipvs.FlagHashed, Timeout: 300, NetmaskBits: 24},
			Destinations: []ipvs.Destination{
				{Address: netip.MustParseAddrPort("10.0.1.1:8080"), Forward: ipvs.ForwardMasq, Weight: 3},
				{Address: netip.MustParseAddrPort("10.0.1.2:80"), Forward: ipvs.ForwardRoute, Weight: 0},
			}},
		{Service: ipvs.Service{ServiceID: ipvs.ServiceID{Protocol: bucket.TCP, Address: netip.MustParseAddrPort("10.0.0.2:0")},
			Scheduler: "lc", Flags: ipvs.FlagPersistent | ipvs.FlagHashed, Timeout: 360, NetmaskBits: 32}},
		{Service: ipvs.Service{ServiceID: ipvs.ServiceID{Protocol: bucket.UDP, Address: netip.MustParseAddrPort("[2001:db8::1]:53")},
			Scheduler: "mh", Flags: ipvs.FlagSched1 | ipvs.FlagSched2 | ipvs.FlagOnePacket | ipvs.FlagHashed, NetmaskBits: 128},
			Destinations: []ipvs.Destination{{Address: netip.MustParseAddrPort("[2001:db8::10]:53"), Forward: ipvs.ForwardMasq, Weight: 1}}},
		{Service: ipvs.Service{ServiceID: ipvs.ServiceID{Family: ipvs.FamilyIPv4, FWMark: 7}, Scheduler: "sh", NetmaskBits: 32}},
		{Service: ipvs.Service{ServiceID: ipvs.ServiceID{Family: ipvs.FamilyIPv6, FWMark: 8}, Scheduler: "wrr", Flags: ipvs.FlagPersistent, Timeout: 60, NetmaskBits: 64},
			Destinations: []ipvs.Destination{{Address: netip.MustParseAddrPort("[2001:db8::99]:0"), Forward: ipvs.ForwardRoute, Weight: 1, UpperThreshold: 100, LowerThreshold: 10}}},
	}
}

func TestToProto(t *testing.T) {
	pb := ToProto(goldenTable())
	web := pb[0]
	if web.GetProtocol() != "tcp" || web.GetAddress() != "10.0.0.1" || web.GetPort() != 80 || web.GetAddressFamily() != "inet" ||
		web.GetPersistenceNetmask() != "255.255.255.0" || web.GetPersistenceTimeoutSeconds() != 300 {
		t.Errorf("web %v", web)
	}
	if rs := web.GetRealServers()[0]; rs.GetForwarding() != "masq" || rs.GetWeight() != 3 || rs.GetPort() != 8080 {
		t.Errorf("real server %v", rs)
	}
	if m := pb[4]; m.GetFwmark() != 8 || m.GetAddress() != "" || m.GetProtocol() != "" || m.GetAddressFamily() != "inet6" || m.GetPersistenceNetmask() != "64" {
		t.Errorf("fwmark %v", m)
	}
	if f := pb[2].GetFlags(); strings.Join(f, ",") != "hashed,one-packet,mh-fallback,mh-port" {
		t.Errorf("flags %v", f)
	}
}

func TestLister(t *testing.T) {
	k := newFakeKernel(goldenTable())
	got, err := Lister{Kernel: k}.ListServices(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	list, _ := k.List(t.Context())
	want := ToProto(list)
	if len(got) != 5 || len(got) != len(want) {
		t.Fatalf("listed %d services, want 5", len(got))
	}
	for i := range want {
		if !proto.Equal(got[i], want[i]) {
			t.Errorf("service %d listed as %v, want %v", i, got[i], want[i])
		}
	}
}
