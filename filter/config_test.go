package filter

import (
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/saru-lb/saru/filter/bucket"
)

func validConfig() Config {
	return Config{Buckets: 4096, Seed: 7, Services: []Service{
		{VIP: netip.MustParseAddr("192.0.2.10"), Protocols: []bucket.Protocol{bucket.TCP, bucket.UDP}},
		{VIP: netip.MustParseAddr("2001:db8::10"), Protocols: []bucket.Protocol{bucket.TCP}, Port: 443, Sense: bucket.SrcAddr},
	}}
}

func TestConfigValidate(t *testing.T) {
	if err := validConfig().Validate(); err != nil {
		t.Fatalf("valid config: %v", err)
	}
	tests := []struct {
		name  string
		edit  func(*Config)
		field string
	}{
		{"buckets zero", func(c *Config) { c.Buckets = 0 }, "buckets"},
		{"buckets not power of two", func(c *Config) { c.Buckets = 1000 }, "buckets"},
		{"buckets too small", func(c *Config) { c.Buckets = 8 }, "buckets"},
		{"buckets too large", func(c *Config) { c.Buckets = 131072 }, "buckets"},
		{"seed zero", func(c *Config) { c.Seed = 0 }, "seed"},
		{"table name", func(c *Config) { c.Table = "bad name" }, "table"},
		{"no services", func(c *Config) { c.Services = nil }, "services"},
		{"vip missing", func(c *Config) { c.Services[0].VIP = netip.Addr{} }, "services[0].vip"},
		{"vip multicast", func(c *Config) { c.Services[0].VIP = netip.MustParseAddr("224.0.0.1") }, "services[0].vip"},
		{"vip loopback", func(c *Config) { c.Services[1].VIP = netip.MustParseAddr("::1") }, "services[1].vip"},
		{"vip mapped", func(c *Config) { c.Services[0].VIP = netip.MustParseAddr("::ffff:192.0.2.1") }, "services[0].vip"},
		{"vip zone", func(c *Config) { c.Services[1].VIP = netip.MustParseAddr("2001:db8::1%eth0") }, "services[1].vip"},
		{"vip unspecified", func(c *Config) { c.Services[0].VIP = netip.IPv4Unspecified() }, "services[0].vip"},
		{"protocol zero", func(c *Config) { c.Services[0].Protocols = nil }, "services[0].protocol"},
		{"protocol unknown", func(c *Config) { c.Services[1].Protocols = []bucket.Protocol{9} }, "services[1].protocol"},
		{"sense unknown", func(c *Config) { c.Services[1].Sense = 17 }, "services[1].sense"},
		{"port with dst-port sense", func(c *Config) { c.Services[1].Sense = bucket.DstPort }, "services[1].port"},
		{"duplicate service", func(c *Config) {
			c.Services = append(c.Services, Service{VIP: c.Services[0].VIP, Protocols: []bucket.Protocol{bucket.UDP}})
		}, "services[2]"},
		{"nat without prefixes", func(c *Config) { c.NAT = &NATConfig{} }, "nat.real_servers"},
		{"nat host bits", func(c *Config) {
			c.NAT = &NATConfig{RealServers: []netip.Prefix{netip.MustParsePrefix("192.168.6.1/24")}}
		}, "nat.real_servers[0]"},
		{"nat default route", func(c *Config) {
			c.NAT = &NATConfig{RealServers: []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0")}}
		}, "nat.real_servers[0]"},
		{"nat contains vip", func(c *Config) {
			c.NAT = &NATConfig{RealServers: []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}}
		}, "nat.real_servers[0]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := validConfig()
			tt.edit(&c)
			err := c.Validate()
			if err == nil {
				t.Fatal("accepted")
			}
			var fe *FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("%v: not a *FieldError", err)
			}
			if fe.Field != tt.field {
				t.Fatalf("error names field %q, want %q (%v)", fe.Field, tt.field, err)
			}
			if !strings.HasPrefix(err.Error(), tt.field+": ") {
				t.Fatalf("message %q does not start with the field", err)
			}
			if _, berr := Build(c, nil); berr == nil || !strings.Contains(berr.Error(), tt.field) {
				t.Fatalf("Build: %v, want an error naming %s", berr, tt.field)
			}
		})
	}
}

func TestProtocols(t *testing.T) {
	for _, ps := range [][]bucket.Protocol{{bucket.TCP}, {bucket.UDP}, {bucket.TCP, bucket.UDP}, {bucket.UDP, bucket.TCP}} {
		if !validProtocols(ps) {
			t.Errorf("%v refused", ps)
		}
	}
	for _, ps := range [][]bucket.Protocol{nil, {bucket.SCTP}, {bucket.TCP, bucket.TCP}, {bucket.TCP, bucket.UDP, bucket.TCP}} {
		if validProtocols(ps) {
			t.Errorf("%v accepted", ps)
		}
	}
}
