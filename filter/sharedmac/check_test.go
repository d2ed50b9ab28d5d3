package sharedmac

import (
	"net/netip"
	"slices"
	"testing"
)

func TestEvaluate(t *testing.T) {
	v4 := netip.MustParseAddr("192.0.2.1")
	v6 := netip.MustParseAddr("2001:db8::1")
	good := Settings{Interface: "eth0", RPFilter: 2, ArpIgnore: 1, ArpAnnounce: 2, AcceptDAD: 1,
		VIPFlags: map[netip.Addr]uint32{v4: 0, v6: ifaFNoDAD}}
	tests := []struct {
		name string
		edit func(*Settings)
		want []string // "severity setting"
	}{
		{"good", func(*Settings) {}, nil},
		{"loose rp_filter and dad off", func(s *Settings) { s.RPFilter, s.AcceptDAD = 0, 0; s.VIPFlags[v6] = 0 }, nil},
		{"strict rp_filter", func(s *Settings) { s.RPFilter = 1 }, []string{"warning net.ipv4.conf.eth0.rp_filter"}},
		{"arp_ignore 8", func(s *Settings) { s.ArpIgnore = 8 }, []string{"fatal net.ipv4.conf.eth0.arp_ignore"}},
		{"arp_ignore 2", func(s *Settings) { s.ArpIgnore = 2 }, []string{"warning net.ipv4.conf.eth0.arp_ignore"}},
		{"arp_announce 0", func(s *Settings) { s.ArpAnnounce = 0 }, []string{"warning net.ipv4.conf.eth0.arp_announce"}},
		{"dad failed", func(s *Settings) { s.VIPFlags[v6] = ifaFDADFailed | ifaFTentative }, []string{"fatal address 2001:db8::1"}},
		{"tentative", func(s *Settings) { s.VIPFlags[v6] = ifaFTentative }, []string{"fatal address 2001:db8::1"}},
		{"added with dad", func(s *Settings) { s.VIPFlags[v6] = 0 }, []string{"warning net.ipv6.conf.eth0.accept_dad"}},
		{"not yet added, dad on", func(s *Settings) { delete(s.VIPFlags, v6) }, []string{"warning net.ipv6.conf.eth0.accept_dad"}},
		{"everything wrong", func(s *Settings) {
			s.RPFilter, s.ArpIgnore, s.ArpAnnounce = 1, 8, 0
			s.VIPFlags[v6] = ifaFDADFailed
		}, []string{"warning net.ipv4.conf.eth0.rp_filter", "fatal net.ipv4.conf.eth0.arp_ignore",
			"warning net.ipv4.conf.eth0.arp_announce", "fatal address 2001:db8::1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := good
			s.VIPFlags = map[netip.Addr]uint32{v4: 0, v6: ifaFNoDAD}
			tt.edit(&s)
			var got []string
			for _, p := range Evaluate(s, []netip.Addr{v4, v6}) {
				got = append(got, p.Severity.String()+" "+p.Setting)
				if p.Message == "" || p.Want == "" {
					t.Errorf("problem without explanation: %+v", p)
				}
			}
			if !slices.Equal(got, tt.want) {
				t.Fatalf("problems %q, want %q", got, tt.want)
			}
		})
	}
}
