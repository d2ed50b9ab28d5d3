package director

import (
	"fmt"
	"slices"
	"testing"

	"github.com/saru-lb/saru/filter/bucket"
	"github.com/saru-lb/saru/saru/config"
)

func TestFilterConfig(t *testing.T) {
	const svcs = "  - {vip: 192.0.2.10, port: 80}\n" +
		"  - {vip: 192.0.2.10, port: 53, protocol: both, sense: src-addr}\n" +
		"  - {vip: '2001:db8::10', protocol: udp, sense: dst-port}\n"
	r, _ := config.Parse([]byte("node: {id: d1}\nhash_seed: '9'\nbuckets: 64\nservices:\n" + svcs))
	c, err := config.For(r)
	if err != nil {
		t.Fatal(err)
	}
	fc := FilterConfig(c)
	if fc.Buckets != 64 || fc.Seed != 9 || len(fc.Services) != 3 || fmt.Sprint(fc.Services[1].VIP) != "192.0.2.10" || fc.Services[1].Port != 53 {
		t.Fatalf("filter config %+v", fc)
	}
	if s := fc.Services[1]; s.Sense != bucket.SrcAddr || !slices.Equal(s.Protocols, []bucket.Protocol{bucket.TCP, bucket.UDP}) {
		t.Fatalf("services[1] reached the filter as %+v", s)
	}
	if s := fc.Services[2]; s.Sense != bucket.DstPort || !slices.Equal(s.Protocols, []bucket.Protocol{bucket.UDP}) {
		t.Fatalf("services[2] reached the filter as %+v", s)
	}
	if fc.NAT != nil {
		t.Fatalf("NAT rules without nat.real_servers: %+v", fc.NAT)
	}
	if err := fc.Validate(); err != nil {
		t.Fatalf("filter refuses the config: %v", err)
	}
	r, _ = config.Parse([]byte("node: {id: d1}\nhash_seed: '9'\nbuckets: 64\nnat: {real_servers: [10.0.3.0/24]}\nservices:\n" + svcs))
	if c, err = config.For(r); err != nil {
		t.Fatal(err)
	}
	fc = FilterConfig(c)
	if fc.NAT == nil || fmt.Sprint(fc.NAT.RealServers) != "[10.0.3.0/24]" {
		t.Fatalf("nat.real_servers did not reach the filter: %+v", fc.NAT)
	}
	if err := fc.Validate(); err != nil {
		t.Fatalf("filter refuses the NAT config: %v", err)
	}
}
