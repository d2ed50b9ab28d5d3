package filter

import (
	"encoding/binary"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/google/nftables/expr"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
	"pgregory.net/rapid"

	"github.com/saru-lb/saru/filter/bucket"
)

func genConfig(t *rapid.T) Config {
	vips := []netip.Addr{netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("198.51.100.7"), netip.MustParseAddr("2001:db8::5")}
	cfg := Config{
		Buckets: 1 << rapid.IntRange(4, 16).Draw(t, "log2"),
		Seed:    rapid.Uint32Range(1, ^uint32(0)).Draw(t, "seed"),
	}
	type key struct {
		v    netip.Addr
		port uint16
	}
	used := map[key]bool{}
	for range rapid.IntRange(1, 6).Draw(t, "services") {
		s := Service{
			VIP:       rapid.SampledFrom(vips).Draw(t, "vip"),
			Protocols: rapid.SampledFrom([][]bucket.Protocol{{bucket.TCP}, {bucket.UDP}, {bucket.TCP, bucket.UDP}}).Draw(t, "proto"),
			Port:      rapid.SampledFrom([]uint16{0, 80, 443, 53}).Draw(t, "port"),
			Sense:     bucket.Sense(rapid.IntRange(0, int(bucket.SrcAddrPort)).Draw(t, "sense")),
		}
		if s.Port != 0 && s.Sense == bucket.DstPort || used[key{s.VIP, s.Port}] {
			continue
		}
		used[key{s.VIP, s.Port}] = true
		cfg.Services = append(cfg.Services, s)
	}
	if len(cfg.Services) == 0 {
		cfg.Services = []Service{{VIP: vips[0], Protocols: []bucket.Protocol{bucket.TCP}}}
	}
	if rapid.Bool().Draw(t, "nat") {
		cfg.NAT = &NATConfig{RealServers: []netip.Prefix{netip.MustParsePrefix("10.6.0.0/16"), netip.MustParsePrefix("fd00:6::/64")}}
	}
	return cfg
}

// Every jhash carries the configured seed (never zero: the kernel would pick
// a random one per rule) and modulus B, every bucket mask is B-1, and every
// lookup reads the owned set.
func TestBuildHashSeedAndModulus(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		cfg := genConfig(t)
		rs, err := Build(cfg, nil)
		if err != nil {
			t.Fatal(err)
		}
		hashes, lookups := 0, 0
		for _, r := range rs.Rules {
			for i, e := range r.Exprs {
				switch e := e.(type) {
				case *expr.Hash:
					hashes++
					if e.Seed != cfg.Seed || e.Seed == 0 || e.Modulus != uint32(cfg.Buckets) || e.Offset != 0 || e.Type != expr.HashTypeJenkins {
						t.Fatalf("rule %q: hash %+v", r.Description, e)
					}
					if e.Length != 4 && e.Length != 8 && e.Length != 16 && e.Length != 20 {
						t.Fatalf("rule %q: hash length %d", r.Description, e.Length)
					}
				case *expr.Byteorder:
					mask := r.Exprs[i+1].(*expr.Bitwise)
					if got := binary.NativeEndian.Uint32(mask.Mask); got != uint32(cfg.Buckets-1) {
						t.Fatalf("rule %q: port mask %#x, want %#x", r.Description, got, cfg.Buckets-1)
					}
				case *expr.Lookup:
					lookups++
					if e.SetName != SetOwned || e.Invert {
						t.Fatalf("rule %q: lookup %+v", r.Description, e)
					}
					if _, ok := r.Exprs[i+2].(*expr.Verdict); !ok || r.Exprs[i+2].(*expr.Verdict).Kind != expr.VerdictAccept {
						t.Fatalf("rule %q: an owned lookup must lead to accept", r.Description)
					}
				}
			}
		}
		if lookups == 0 || hashes == 0 {
			t.Fatalf("%d lookups, %d hashes: every VIP splits echo-requests by jhash", lookups, hashes)
		}
	})
}

// The prerouting rules of every VIP follow the seed: per service and
// protocol an owned-accept then a drop, single-port services before
// all-port ones, then ICMP echo by src-addr, other ICMP accepted, the rest
// dropped.
func TestBuildPreroutingShape(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		cfg := genConfig(t)
		rs, err := Build(cfg, nil)
		if err != nil {
			t.Fatal(err)
		}
		var pre []Rule
		for _, r := range rs.Rules {
			if r.Chain == ChainPrerouting {
				pre = append(pre, r)
			}
		}
		i := 0
		for _, vip := range cfg.vips() {
			seenAllPorts := false
			n := 0
			for _, s := range cfg.Services {
				if s.VIP == vip {
					n += len(s.Protocols)
				}
			}
			for range n {
				acc, drp := pre[i], pre[i+1]
				i += 2
				if !strings.HasPrefix(acc.Description, vip.String()+" ") || !strings.HasSuffix(acc.Description, "owned, accept") ||
					!strings.HasSuffix(drp.Description, "not owned, drop") {
					t.Fatalf("service rules out of shape: %q / %q", acc.Description, drp.Description)
				}
				allPorts := strings.Contains(acc.Description, "/* ")
				if seenAllPorts && !allPorts {
					t.Fatalf("single-port rule %q after an all-ports rule", acc.Description)
				}
				seenAllPorts = seenAllPorts || allPorts
			}
			tail := []string{"echo-request sense src-addr: owned, accept", "other than echo-request: accept"}
			if cfg.NAT != nil {
				tail = append(tail, "tcp to other ports sense dst-port (masqueraded real-server connections): owned, accept",
					"udp to other ports sense dst-port (masqueraded real-server connections): owned, accept")
			}
			tail = append(tail, "everything else: drop")
			for _, suffix := range tail {
				if !strings.HasPrefix(pre[i].Description, vip.String()+" ") || !strings.HasSuffix(pre[i].Description, suffix) {
					t.Fatalf("rule %d is %q, want %s ... %s", i, pre[i].Description, vip, suffix)
				}
				i++
			}
		}
		if i != len(pre) {
			t.Fatalf("%d prerouting rules, %d accounted for", len(pre), i)
		}
		chains := []string{}
		for _, c := range rs.Chains {
			chains = append(chains, c.Name)
		}
		want := []string{ChainPrerouting}
		if cfg.NAT != nil {
			want = append(want, ChainForward, ChainNAT)
		}
		if !slices.Equal(chains, want) {
			t.Fatalf("chains %v, want %v", chains, want)
		}
		if *rs.Chains[0].Priority != PreroutingPriority || PreroutingPriority >= -200 {
			t.Fatalf("prerouting priority %d must run before conntrack (-200)", *rs.Chains[0].Priority)
		}
	})
}

func TestBuildElements(t *testing.T) {
	cfg := validConfig()
	owned, _ := NewBucketSet(cfg.Buckets, 0, 5, 4095)
	rs, err := Build(cfg, owned)
	if err != nil {
		t.Fatal(err)
	}
	var got []uint32
	for _, e := range rs.Elements {
		got = append(got, binary.NativeEndian.Uint32(e.Key))
	}
	if !slices.Equal(got, []uint32{0, 5, 4095}) {
		t.Fatalf("elements %v", got)
	}
	wrong, _ := NewBucketSet(1024, 1)
	if _, err := Build(cfg, wrong); err == nil || !strings.Contains(err.Error(), "owned") {
		t.Fatalf("Build with a 1024-bucket set for a 4096-bucket config: %v", err)
	}
}

// The hand-encoded element messages decode, with the generic netlink
// decoder, into the table, the set and the keys.
func TestElemBatcherEncoding(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		e := &elemBatcher{table: rapid.StringMatching(`[a-z]{1,20}`).Draw(t, "table"), set: SetOwned}
		keys := rapid.SliceOfN(rapid.Uint32Range(0, bucket.Max-1), 0, elementsPerMessage).Draw(t, "keys")
		m := e.message(msgNewSetElem, netlink.Request, keys)
		if len(m.Data)%4 != 0 || m.Data[0] != unix.NFPROTO_INET {
			t.Fatalf("bad header %x", m.Data[:4])
		}
		ad, err := netlink.NewAttributeDecoder(m.Data[4:])
		if err != nil {
			t.Fatal(err)
		}
		var table, set string
		var got []uint32
		for ad.Next() {
			switch ad.Type() {
			case unix.NFTA_SET_ELEM_LIST_TABLE:
				table = ad.String()
			case unix.NFTA_SET_ELEM_LIST_SET:
				set = ad.String()
			case unix.NFTA_SET_ELEM_LIST_ELEMENTS:
				ad.Nested(func(nd *netlink.AttributeDecoder) error {
					for nd.Next() {
						nd.Nested(func(ed *netlink.AttributeDecoder) error {
							for ed.Next() {
								if ed.Type() != unix.NFTA_SET_ELEM_KEY {
									t.Fatalf("element attribute %d", ed.Type())
								}
								ed.Nested(func(kd *netlink.AttributeDecoder) error {
									for kd.Next() {
										got = append(got, binary.NativeEndian.Uint32(kd.Bytes()))
									}
									return nil
								})
							}
							return nil
						})
					}
					return nil
				})
			}
		}
		if err := ad.Err(); err != nil {
			t.Fatal(err)
		}
		if table != e.table || set != SetOwned || !slices.Equal(got, keys) && len(keys) > 0 {
			t.Fatalf("decoded %q %q %v, want %q %q %v", table, set, got, e.table, SetOwned, keys)
		}
	})
}
