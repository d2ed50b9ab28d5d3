package ipvssync_test

import (
	"fmt"
	"net/netip"

	"github.com/saru-lb/saru/syncd/ipvssync"
)

func ExamplePack() {
	conns := []ipvssync.Conn{{
		Protocol: ipvssync.ProtoTCP, Flags: ipvssync.FlagDRoute, State: ipvssync.TCPEstablished,
		CPort: 50000, VPort: 80, DPort: 80, Timeout: 900,
		CAddr: netip.MustParseAddr("192.0.2.1"), VAddr: netip.MustParseAddr("198.51.100.10"),
		DAddr: netip.MustParseAddr("10.0.0.11"),
	}}
	msgs, err := ipvssync.Pack(0, conns, ipvssync.DefaultMaxLen)
	if err != nil {
		panic(err)
	}
	m, err := ipvssync.Decode(msgs[0])
	if err != nil {
		panic(err)
	}
	c := m.Conns[0]
	fmt.Printf("%d datagram of %d bytes: %s:%d -> %s:%d via %s, %s, %d s\n",
		len(msgs), len(msgs[0]), c.CAddr, c.CPort, c.VAddr, c.VPort, c.DAddr,
		ipvssync.StateName(c.Protocol, c.Template(), c.State), c.Timeout)
	// Output: 1 datagram of 44 bytes: 192.0.2.1:50000 -> 198.51.100.10:80 via 10.0.0.11, ESTABLISHED, 900 s
}
