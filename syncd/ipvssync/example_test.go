package ipvssync_test

import (
	"fmt"
	"net/netip"

	"github.com/saru-lb/saru/syncd/conn"
	"github.com/saru-lb/saru/syncd/ipvssync"
)

func ExamplePack() {
	entries := []conn.Entry{{
		Protocol: conn.ProtoTCP, Flags: conn.FlagDRoute, State: ipvssync.TCPEstablished,
		ClientAddr: netip.MustParseAddr("192.0.2.1"), ClientPort: 50000,
		VirtualAddr: netip.MustParseAddr("198.51.100.10"), VirtualPort: 80,
		DestAddr: netip.MustParseAddr("10.0.0.11"), DestPort: 80,
		Timeout: 900,
	}}
	msgs, refused := ipvssync.Pack(0, entries, ipvssync.DefaultMaxLen)
	if refused != nil {
		panic(refused)
	}
	m, err := ipvssync.Decode(msgs[0])
	if err != nil {
		panic(err)
	}
	e := m.Entries[0]
	fmt.Printf("%d datagram of %d bytes: %s:%d -> %s:%d via %s, %s, %d s\n",
		len(msgs), len(msgs[0]), e.ClientAddr, e.ClientPort, e.VirtualAddr, e.VirtualPort, e.DestAddr,
		ipvssync.StateName(e.Protocol, e.Flags.Template(), e.State), e.Timeout)
	// Output: 1 datagram of 44 bytes: 192.0.2.1:50000 -> 198.51.100.10:80 via 10.0.0.11, ESTABLISHED, 900 s
}
