package filter_test

import (
	"fmt"
	"net/netip"

	"github.com/saru-lb/saru/filter"
	"github.com/saru-lb/saru/filter/bucket"
)

// The seed's example: one VIP, tcp and udp by source port, 4096 buckets.
func ExampleBuild() {
	cfg := filter.Config{
		Buckets: 4096,
		Seed:    0x5a5a,
		Services: []filter.Service{
			{VIP: netip.MustParseAddr("172.17.60.201"), Protocols: []bucket.Protocol{bucket.TCP, bucket.UDP}},
		},
	}
	owned, _ := filter.NewBucketSet(cfg.Buckets, 0, 1, 2, 3)
	rs, err := filter.Build(cfg, owned)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("table inet %s, set %s with %d elements\n", rs.Table.Name, rs.Owned.Name, len(rs.Elements))
	for _, r := range rs.Rules {
		fmt.Println(r.Chain+":", r.Description)
	}
	// Output:
	// table inet saru, set owned with 4 elements
	// prerouting: 172.17.60.201 tcp/* sense src-port: owned, accept
	// prerouting: 172.17.60.201 tcp/* sense src-port: not owned, drop
	// prerouting: 172.17.60.201 udp/* sense src-port: owned, accept
	// prerouting: 172.17.60.201 udp/* sense src-port: not owned, drop
	// prerouting: 172.17.60.201 icmp echo-request sense src-addr: owned, accept
	// prerouting: 172.17.60.201 icmp other than echo-request: accept
	// prerouting: 172.17.60.201 everything else: drop
}

func ExampleConfig_Validate() {
	cfg := filter.Config{Buckets: 1000, Seed: 0, Services: []filter.Service{{Protocols: []bucket.Protocol{bucket.TCP}}}}
	fmt.Println(cfg.Validate())
	// Output:
	// buckets: invalid value "1000": want a power of two from 16 to 65536
	// seed: invalid value "0": must be non-zero (a zero seed lets the kernel pick a random one per rule)
	// services[0].vip: invalid value "invalid IP": want an IPv4 or IPv6 address
}
