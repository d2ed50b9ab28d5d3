package main

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/saru-lb/saru/filter/bucket"
	"github.com/saru-lb/saru/saru/ipvs"
	"github.com/saru-lb/saru/saru/services"
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

const goldenPlain = `IP Virtual Server version 1.2.1 (size=4096)
Prot LocalAddress:Port Scheduler Flags
  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn
TCP  10.0.0.1:80 rr persistent 300 mask 255.255.255.0
  -> 10.0.1.1:8080                Masq    3      0          0         
  -> 10.0.1.2:80                  Route   0      0          0         
TCP  10.0.0.2:0 lc persistent 360
UDP  [2001:db8::1]:53 mh (mh-fallback,mh-port) ops
  -> [2001:db8::10]:53            Masq    1      0          0         
FWM  7 sh
FWM  8 IPv6 wrr persistent 60 mask 64
  -> [2001:db8::99]:0             Route   1      0          0         
`

const goldenStats = `Prot LocalAddress:Port               Conns   InPkts  OutPkts  InBytes OutBytes
  -> RemoteAddress:Port
TCP  10.0.0.1:80                         0        0        0        0        0
  -> 10.0.1.1:8080                       0        0        0        0        0
  -> 10.0.1.2:80                         0        0        0        0        0
TCP  10.0.0.2:0                          0        0        0        0        0
UDP  [2001:db8::1]:53                    0        0        0        0        0
  -> [2001:db8::10]:53                   0        0        0        0        0
FWM  7                                   0        0        0        0        0
FWM  8 IPv6                              0        0        0        0        0
  -> [2001:db8::99]:0                    0        0        0        0        0
`

const goldenRateHeader = `Prot LocalAddress:Port                 CPS    InPPS   OutPPS    InBPS   OutBPS
  -> RemoteAddress:Port
`

func TestRenderMatchesIpvsadm(t *testing.T) {
	tab := goldenTable()
	// The kernel lists in hash order; Render sorts as ipvsadm does.
	tab[0], tab[2], tab[4] = tab[4], tab[0], tab[2]
	tab[2].Destinations[0], tab[2].Destinations[1] = tab[2].Destinations[1], tab[2].Destinations[0]
	pb := services.ToProto(tab)
	if got := Render(pb, RenderOptions{Version: "1.2.1", ConnTabSize: 4096}); got != goldenPlain {
		t.Errorf("plain:\n%s\nwant:\n%s", got, goldenPlain)
	}
	if got := Render(pb, RenderOptions{Format: FormatStats}); got != goldenStats {
		t.Errorf("stats:\n%s\nwant:\n%s", got, goldenStats)
	}
	if got := Render(pb, RenderOptions{Format: FormatRate}); !strings.HasPrefix(got, goldenRateHeader) {
		t.Errorf("rate:\n%s", got)
	}
}

func TestRenderCounters(t *testing.T) {
	es := goldenTable()[:1]
	es[0].Service.Stats = ipvs.Stats{Connections: 99_999_999, PacketsIn: 100_000_000, PacketsOut: 5_000_000_000, BytesIn: 123_456_789_012_345, BytesOut: 1 << 62, CPS: 7}
	pb := services.ToProto(es)
	got := strings.SplitN(Render(pb, RenderOptions{Format: FormatStats}), "\n", 4)[2]
	want := "TCP  10.0.0.1:80                  99999999  100000K    5000M     123T 4611686T"
	if got != want {
		t.Errorf("stats line\n%q\nwant\n%q", got, want)
	}
	got = strings.SplitN(Render(pb, RenderOptions{Format: FormatStats, Exact: true}), "\n", 4)[2]
	want = "TCP  10.0.0.1:80                  99999999 100000000 5000000000 123456789012345 4611686018427387904"
	if got != want {
		t.Errorf("exact stats line\n%q\nwant\n%q", got, want)
	}
	got = strings.SplitN(Render(pb, RenderOptions{Format: FormatRate}), "\n", 4)[2]
	if !strings.HasSuffix(got, "        7        0        0        0        0") {
		t.Errorf("rate line %q", got)
	}
}
