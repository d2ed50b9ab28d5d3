package ipvs

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/mdlayher/netlink"

	"github.com/saru-lb/saru/filter/bucket"
)

func encodeNested(t testing.TB, typ uint16, fn func(ae *netlink.AttributeEncoder)) []byte {
	t.Helper()
	ae := netlink.NewAttributeEncoder()
	ae.Nested(typ, func(nae *netlink.AttributeEncoder) error { fn(nae); return nil })
	b, err := ae.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestServiceRoundTrip(t *testing.T) {
	for _, s := range []Service{
		{ServiceID: ServiceID{Protocol: bucket.TCP, Address: netip.MustParseAddrPort("10.0.0.1:80")}, Scheduler: "rr", Timeout: 300, NetmaskBits: 24},
		{ServiceID: ServiceID{Protocol: bucket.UDP, Address: netip.MustParseAddrPort("[2001:db8::1]:53")}, Scheduler: "mh", Flags: FlagSched1, NetmaskBits: 64, Timeout: 10},
		{ServiceID: ServiceID{Family: FamilyIPv6, FWMark: 42}, Scheduler: "wlc", NetmaskBits: 128},
		{ServiceID: ServiceID{Protocol: bucket.SCTP, Address: netip.MustParseAddrPort("192.0.2.1:0")}, Scheduler: "sh", NetmaskBits: 32, PEName: "sip", Timeout: 1},
	} {
		b := encodeNested(t, cmdAttrService, func(ae *netlink.AttributeEncoder) { encodeService(ae, s) })
		got, err := parseServiceMessage(b)
		if err != nil {
			t.Fatalf("%s: %v", s.ServiceID, err)
		}
		want := s
		if want.Timeout != 0 {
			want.Flags |= FlagPersistent
		}
		if !want.IsFWMark() {
			want.Family = FamilyUnspec
		}
		if got != want {
			t.Errorf("round trip of %s:\n got %+v\nwant %+v", s.ServiceID, got, want)
		}
	}
}

func TestDestinationRoundTrip(t *testing.T) {
	for _, d := range []Destination{
		{Address: netip.MustParseAddrPort("10.0.1.1:8080"), Forward: ForwardMasq, Weight: 7, UpperThreshold: 100, LowerThreshold: 5},
		{Address: netip.MustParseAddrPort("[2001:db8::2]:80"), Forward: ForwardRoute},
		{Address: netip.MustParseAddrPort("10.0.1.3:0"), Forward: ForwardTunnel, Weight: 1, TunnelType: 1, TunnelPort: 6080, TunnelFlags: 1},
	} {
		b := encodeNested(t, cmdAttrDest, func(ae *netlink.AttributeEncoder) { encodeDest(ae, d) })
		got, err := parseDestMessage(b, FamilyIPv4)
		if err != nil {
			t.Fatalf("%s: %v", d.Address, err)
		}
		if got != d {
			t.Errorf("round trip:\n got %+v\nwant %+v", got, d)
		}
	}
}

func TestStatsWidths(t *testing.T) {
	// STATS carries u32 packet counters and u64 byte counters; STATS64 all u64.
	b := encodeNested(t, cmdAttrService, func(ae *netlink.AttributeEncoder) {
		encodeServiceID(ae, ServiceID{Protocol: bucket.TCP, Address: netip.MustParseAddrPort("10.0.0.1:80")})
		ae.Nested(svcAttrStats, func(nae *netlink.AttributeEncoder) error {
			nae.Uint32(statsAttrConns, 1)
			nae.Uint64(statsAttrInBytes, 2)
			return nil
		})
	})
	s, err := parseServiceMessage(b)
	if err != nil {
		t.Fatal(err)
	}
	if s.Stats.Connections != 1 || s.Stats.BytesIn != 2 {
		t.Errorf("stats %+v", s.Stats)
	}
	b = encodeNested(t, cmdAttrService, func(ae *netlink.AttributeEncoder) {
		encodeServiceID(ae, ServiceID{Protocol: bucket.TCP, Address: netip.MustParseAddrPort("10.0.0.1:80")})
		ae.Nested(svcAttrStats, func(nae *netlink.AttributeEncoder) error { nae.Uint32(statsAttrConns, 1); return nil })
		ae.Nested(svcAttrStats64, func(nae *netlink.AttributeEncoder) error {
			nae.Uint64(statsAttrConns, 1<<40)
			nae.Uint64(statsAttrOutBPS, 9)
			return nil
		})
	})
	if s, err = parseServiceMessage(b); err != nil {
		t.Fatal(err)
	}
	if s.Stats.Connections != 1<<40 || s.Stats.BPSOut != 9 {
		t.Errorf("stats64 not preferred: %+v", s.Stats)
	}
}

func TestDaemonRoundTrip(t *testing.T) {
	for _, d := range []SyncDaemon{
		{State: DaemonMaster, Interface: "sync0", SyncID: 3, MaxLen: 1400, Group: netip.MustParseAddr("239.0.0.9"), Port: 9000, TTL: 3},
		{State: DaemonBackup, Interface: "sync0", Group: netip.MustParseAddr("ff02::81")},
	} {
		b := encodeNested(t, cmdAttrDaemon, func(ae *netlink.AttributeEncoder) { encodeDaemon(ae, d) })
		ad, err := netlink.NewAttributeDecoder(b)
		if err != nil {
			t.Fatal(err)
		}
		var got SyncDaemon
		for ad.Next() {
			ad.Nested(func(nad *netlink.AttributeDecoder) error {
				got, err = decodeDaemon(nad)
				return err
			})
		}
		if err := ad.Err(); err != nil {
			t.Fatal(err)
		}
		if got != d {
			t.Errorf("round trip:\n got %+v\nwant %+v", got, d)
		}
	}
}

func TestValidate(t *testing.T) {
	vip := ServiceID{Protocol: bucket.TCP, Address: netip.MustParseAddrPort("10.0.0.1:80")}
	for _, tc := range []struct {
		name string
		err  error
		want string
	}{
		{"unknown scheduler", Service{ServiceID: vip, Scheduler: "fastest"}.Validate(), `unknown scheduler "fastest"`},
		{"persistence", Service{ServiceID: vip, Timeout: MaxPersistence + 1}.Validate(), "persistence timeout"},
		{"netmask", Service{ServiceID: vip, NetmaskBits: 33}.Validate(), "netmask /33"},
		{"family mismatch", Service{ServiceID: ServiceID{Family: FamilyIPv6, Protocol: bucket.TCP, Address: vip.Address}}.Validate(), "family inet6 does not match"},
		{"fwmark family", Service{ServiceID: ServiceID{FWMark: 3}}.Validate(), "needs family"},
		{"weight", Destination{Address: netip.MustParseAddrPort("10.0.1.1:80"), Weight: -1}.Validate(vip), "weight -1 out of range"},
		{"dest family", Destination{Address: netip.MustParseAddrPort("[2001:db8::1]:80"), Forward: ForwardMasq}.Validate(vip), "differs from the service's inet"},
		{"thresholds", Destination{Address: netip.MustParseAddrPort("10.0.1.1:80"), UpperThreshold: 1, LowerThreshold: 2}.Validate(vip), "lower threshold 2 above upper threshold 1"},
		{"daemon group", SyncDaemon{State: DaemonMaster, Interface: "x", Group: netip.MustParseAddr("10.0.0.1")}.Validate(), "not a multicast"},
	} {
		if tc.err == nil || !contains(tc.err.Error(), tc.want) {
			t.Errorf("%s: error %v, want one containing %q", tc.name, tc.err, tc.want)
		}
	}
	if err := (Destination{Address: netip.MustParseAddrPort("[2001:db8::1]:80"), Forward: ForwardTunnel}).Validate(vip); err != nil {
		t.Errorf("IPv6 tunnel destination of an IPv4 service refused: %v", err)
	}
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }

// Fuzz the decoders of kernel replies: never panic, and anything decoded
// re-encodes to something that decodes the same.
func FuzzParseServiceMessage(f *testing.F) {
	f.Add(encodeNested(f, cmdAttrService, func(ae *netlink.AttributeEncoder) {
		encodeService(ae, Service{ServiceID: ServiceID{Protocol: bucket.TCP, Address: netip.MustParseAddrPort("10.0.0.1:80")}, Scheduler: "rr", Timeout: 5})
	}))
	f.Add(encodeNested(f, cmdAttrService, func(ae *netlink.AttributeEncoder) {
		encodeService(ae, Service{ServiceID: ServiceID{Family: FamilyIPv6, FWMark: 1}})
	}))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := parseServiceMessage(b)
		if err != nil {
			return
		}
		if s.Validate() != nil || s.Scheduler == "" {
			return
		}
		b2 := encodeNested(t, cmdAttrService, func(ae *netlink.AttributeEncoder) { encodeService(ae, s) })
		s2, err := parseServiceMessage(b2)
		if err != nil {
			t.Fatalf("re-encoded service does not decode: %v", err)
		}
		s.Stats, s.Flags = Stats{}, s.Flags&^FlagHashed
		if s.Timeout != 0 {
			s.Flags |= FlagPersistent
		} else {
			s.Flags &^= FlagPersistent
		}
		s.NetmaskBits = s.netmaskBits()
		if s2 != s {
			t.Fatalf("re-decoded %+v, want %+v", s2, s)
		}
	})
}

func FuzzParseDestMessage(f *testing.F) {
	f.Add(encodeNested(f, cmdAttrDest, func(ae *netlink.AttributeEncoder) {
		encodeDest(ae, Destination{Address: netip.MustParseAddrPort("10.0.1.1:80"), Weight: 1})
	}), uint16(2))
	f.Add(encodeNested(f, cmdAttrDest, func(ae *netlink.AttributeEncoder) {
		encodeDest(ae, Destination{Address: netip.MustParseAddrPort("[2001:db8::1]:80"), Forward: ForwardTunnel})
	}), uint16(10))
	f.Fuzz(func(t *testing.T, b []byte, fam uint16) {
		d, err := parseDestMessage(b, Family(fam))
		if err != nil {
			return
		}
		if !d.Address.Addr().IsValid() {
			t.Fatalf("decoded destination without an address: %+v", d)
		}
	})
}
