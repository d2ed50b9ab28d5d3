package filter

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
)

func validConfig() Config {
	return Config{Buckets: 4096, Seed: 7, Services: []Service{
		{VIP: netip.MustParseAddr("192.0.2.10"), Protocol: ProtocolBoth},
		{VIP: netip.MustParseAddr("2001:db8::10"), Protocol: ProtocolTCP, Port: 443, Sense: SenseSrcAddr},
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
		{"protocol zero", func(c *Config) { c.Services[0].Protocol = 0 }, "services[0].protocol"},
		{"protocol unknown", func(c *Config) { c.Services[1].Protocol = 9 }, "services[1].protocol"},
		{"sense unknown", func(c *Config) { c.Services[1].Sense = 17 }, "services[1].sense"},
		{"port with dst-port sense", func(c *Config) { c.Services[1].Sense = SenseDstPort }, "services[1].port"},
		{"duplicate service", func(c *Config) {
			c.Services = append(c.Services, Service{VIP: c.Services[0].VIP, Protocol: ProtocolUDP})
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

func TestParseSenseProtocol(t *testing.T) {
	for s := SenseSrcPort; s <= SenseSrcAddrSrcPort; s++ {
		got, err := ParseSense(s.String())
		if err != nil || got != s {
			t.Errorf("ParseSense(%q) = %v, %v", s, got, err)
		}
	}
	if s, err := ParseSense(""); err != nil || s != SenseSrcPort {
		t.Errorf("ParseSense(\"\") = %v, %v; want the seed's default src-port", s, err)
	}
	if _, err := ParseSense("dst-addr+dst-port"); err == nil {
		t.Error("ParseSense accepted an unknown sense")
	}
	for _, p := range []Protocol{ProtocolTCP, ProtocolUDP, ProtocolBoth} {
		got, err := ParseProtocol(p.String())
		if err != nil || got != p {
			t.Errorf("ParseProtocol(%q) = %v, %v", p, got, err)
		}
	}
	if _, err := ParseProtocol("sctp"); err == nil {
		t.Error("ParseProtocol accepted sctp")
	}
}
