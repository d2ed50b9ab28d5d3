package transport

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"

	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
	"golang.org/x/sys/unix"
)

// Transport sends a datagram to every peer and receives the peers'.
type Transport interface {
	// Send sends b to every peer (the group, or each unicast peer).
	Send(b []byte) error
	// Recv blocks for the next datagram, copied into buf.
	Recv(buf []byte) (int, netip.AddrPort, error)
	// Close unblocks Recv and releases the socket.
	Close() error
}

// Config says how to reach the peers.
type Config struct {
	// Group is the multicast group (e.g. 239.255.84.1 or ff12::8448).
	// Leave it invalid to use Peers instead.
	Group netip.Addr
	// Port is the UDP port, for the group and for the local socket.
	Port uint16
	// Interface carries the multicast traffic (name, e.g. "eth1"); empty
	// lets the kernel choose by route.
	Interface string
	// TTL is the multicast TTL (IPv4) or hop limit (IPv6); 0 means 1.
	TTL int
	// Loopback delivers our own multicast to local sockets too (tests
	// and several instances on one host need it).
	Loopback bool
	// Listen is the local unicast address (unicast mode), e.g. 10.0.0.1:8848.
	Listen netip.AddrPort
	// Peers are the unicast destinations (unicast mode).
	Peers []netip.AddrPort
	// ReadBuffer sets SO_RCVBUF when nonzero.
	ReadBuffer int
}

// Validate checks the configuration; errors name the field.
func (c *Config) Validate() error {
	if c.Group.IsValid() {
		if !c.Group.IsMulticast() {
			return fmt.Errorf("group: %s is not a multicast address", c.Group)
		}
		if c.Port == 0 {
			return errors.New("port: missing")
		}
		if len(c.Peers) > 0 {
			return errors.New("peers: set together with group; choose multicast or unicast")
		}
		if c.TTL < 0 || c.TTL > 255 {
			return fmt.Errorf("ttl: %d not in 0-255", c.TTL)
		}
		if c.Group.IsLinkLocalMulticast() && c.Interface == "" {
			return fmt.Errorf("interface: required for the link-local group %s", c.Group)
		}
		return nil
	}
	if !c.Listen.IsValid() {
		return errors.New("listen: missing (needed without a multicast group)")
	}
	if len(c.Peers) == 0 {
		return errors.New("peers: empty (needed without a multicast group)")
	}
	for i, p := range c.Peers {
		if !p.IsValid() || p.Port() == 0 {
			return fmt.Errorf("peers[%d]: %s is not an address:port", i, p)
		}
	}
	return nil
}

func reuse(_, _ string, c syscall.RawConn) error {
	var serr error
	err := c.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEADDR, 1)
	})
	if err != nil {
		return err
	}
	return serr
}

// setReadBuffer sizes the receive buffer: SO_RCVBUFFORCE when privileged
// (beyond net.core.rmem_max), else SO_RCVBUF capped by the kernel.
func setReadBuffer(c *net.UDPConn, n int) {
	if n <= 0 {
		return
	}
	rc, err := c.SyscallConn()
	if err == nil {
		var serr error
		if err = rc.Control(func(fd uintptr) {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, n)
		}); err == nil && serr == nil {
			return
		}
	}
	_ = c.SetReadBuffer(n)
}

// Open opens the transport described by c.
func Open(ctx context.Context, c Config) (Transport, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	if c.Group.IsValid() {
		return openMulticast(ctx, c)
	}
	return openUnicast(ctx, c)
}

type udp struct {
	conn  *net.UDPConn
	dests []*net.UDPAddr
	self  netip.AddrPort
}

func (u *udp) Send(b []byte) error {
	var first error
	for _, d := range u.dests {
		if _, err := u.conn.WriteToUDP(b, d); err != nil && first == nil {
			first = fmt.Errorf("send to %s: %w", d, err)
		}
	}
	return first
}

func (u *udp) Recv(buf []byte) (int, netip.AddrPort, error) {
	n, from, err := u.conn.ReadFromUDPAddrPort(buf)
	if err != nil {
		return 0, from, fmt.Errorf("receive: %w", err)
	}
	return n, from, nil
}

func (u *udp) Close() error { return u.conn.Close() }

func openUnicast(ctx context.Context, c Config) (Transport, error) {
	lc := net.ListenConfig{}
	pc, err := lc.ListenPacket(ctx, "udp", c.Listen.String())
	if err != nil {
		return nil, fmt.Errorf("listen %s: %w", c.Listen, err)
	}
	u := &udp{conn: pc.(*net.UDPConn), self: c.Listen}
	setReadBuffer(u.conn, c.ReadBuffer)
	for _, p := range c.Peers {
		if p == c.Listen {
			continue // our own address in a shared peer list
		}
		u.dests = append(u.dests, net.UDPAddrFromAddrPort(p))
	}
	return u, nil
}

func openMulticast(ctx context.Context, c Config) (Transport, error) {
	var ifi *net.Interface
	if c.Interface != "" {
		var err error
		if ifi, err = net.InterfaceByName(c.Interface); err != nil {
			return nil, fmt.Errorf("interface %q: %w", c.Interface, err)
		}
	}
	ttl := c.TTL
	if ttl == 0 {
		ttl = 1
	}
	lc := net.ListenConfig{Control: reuse}
	network, bind := "udp4", fmt.Sprintf("0.0.0.0:%d", c.Port)
	if c.Group.Is6() {
		network, bind = "udp6", fmt.Sprintf("[::]:%d", c.Port)
	}
	pc, err := lc.ListenPacket(ctx, network, bind)
	if err != nil {
		return nil, fmt.Errorf("listen %s: %w", bind, err)
	}
	conn := pc.(*net.UDPConn)
	group := &net.UDPAddr{IP: c.Group.AsSlice(), Port: int(c.Port)}
	fail := func(what string, err error) (Transport, error) {
		conn.Close()
		return nil, fmt.Errorf("multicast %s on %q: %s: %w", c.Group, c.Interface, what, err)
	}
	if c.Group.Is4() {
		p := ipv4.NewPacketConn(conn)
		if err := p.JoinGroup(ifi, group); err != nil {
			return fail("join", err)
		}
		if ifi != nil {
			if err := p.SetMulticastInterface(ifi); err != nil {
				return fail("set interface", err)
			}
		}
		if err := p.SetMulticastTTL(ttl); err != nil {
			return fail("set ttl", err)
		}
		if err := p.SetMulticastLoopback(c.Loopback); err != nil {
			return fail("set loopback", err)
		}
	} else {
		p := ipv6.NewPacketConn(conn)
		if err := p.JoinGroup(ifi, group); err != nil {
			return fail("join", err)
		}
		if ifi != nil {
			if err := p.SetMulticastInterface(ifi); err != nil {
				return fail("set interface", err)
			}
		}
		if err := p.SetMulticastHopLimit(ttl); err != nil {
			return fail("set hop limit", err)
		}
		if err := p.SetMulticastLoopback(c.Loopback); err != nil {
			return fail("set loopback", err)
		}
	}
	setReadBuffer(conn, c.ReadBuffer)
	if ifi != nil && c.Group.Is6() {
		group.Zone = ifi.Name
	}
	return &udp{conn: conn, dests: []*net.UDPAddr{group}}, nil
}

// Lossy drops received datagrams at random with probability Loss, to test
// the layers above under loss: each receiver loses its own share, as on a
// lossy link. Sends pass through.
type Lossy struct {
	Transport
	// Loss is the drop probability in [0,1].
	Loss float64

	mu      sync.Mutex
	rng     *rand.Rand
	Dropped atomic.Uint64
}

// NewLossy wraps t, dropping with probability loss, seeded by seed.
func NewLossy(t Transport, loss float64, seed uint64) *Lossy {
	return &Lossy{Transport: t, Loss: loss, rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))}
}

// SetLoss changes the drop probability.
func (l *Lossy) SetLoss(p float64) {
	l.mu.Lock()
	l.Loss = p
	l.mu.Unlock()
}

func (l *Lossy) drop() bool {
	l.mu.Lock()
	d := l.rng.Float64() < l.Loss
	l.mu.Unlock()
	if d {
		l.Dropped.Add(1)
	}
	return d
}

// Recv implements Transport, dropping some datagrams.
func (l *Lossy) Recv(buf []byte) (int, netip.AddrPort, error) {
	for {
		n, from, err := l.Transport.Recv(buf)
		if err != nil || !l.drop() {
			return n, from, err
		}
	}
}
