package sharedmac

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"

	"github.com/jsimonetti/rtnetlink/v2"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// Helper configures interfaces over rtnetlink, in the caller's network
// namespace or the one given by WithNetNS.
type Helper struct {
	conn  *rtnetlink.Conn
	netns int
}

// Option configures Dial.
type Option func(*Helper)

// WithNetNS makes the helper act in the network namespace referred to by the
// open file descriptor fd.
func WithNetNS(fd int) Option { return func(h *Helper) { h.netns = fd } }

// Dial opens the rtnetlink socket.
func Dial(opts ...Option) (*Helper, error) {
	h := &Helper{}
	for _, o := range opts {
		o(h)
	}
	c, err := rtnetlink.Dial(&netlink.Config{NetNS: h.netns})
	if err != nil {
		return nil, fmt.Errorf("open rtnetlink socket: %w", err)
	}
	h.conn = c
	return h, nil
}

// Close closes the socket.
func (h *Helper) Close() error { return h.conn.Close() }

func (h *Helper) link(ifname string) (rtnetlink.LinkMessage, error) {
	links, err := h.conn.Link.List()
	if err != nil {
		return rtnetlink.LinkMessage{}, fmt.Errorf("list links: %w", err)
	}
	for _, l := range links {
		if l.Attributes != nil && l.Attributes.Name == ifname {
			return l, nil
		}
	}
	return rtnetlink.LinkMessage{}, fmt.Errorf("interface %q: %w", ifname, os.ErrNotExist)
}

// SetMAC gives ifname the shared unicast MAC. An interface that already has
// it is left alone; otherwise it is taken down for the change (most drivers
// refuse a new address while up) and brought back up if it was up.
func (h *Helper) SetMAC(ctx context.Context, ifname string, mac net.HardwareAddr) error {
	if len(mac) != 6 {
		return fmt.Errorf("mac: invalid value %q: want a 6-byte Ethernet address", mac)
	}
	if mac[0]&1 != 0 {
		return fmt.Errorf("mac: invalid value %q: a multicast address cannot be an interface address", mac)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	l, err := h.link(ifname)
	if err != nil {
		return err
	}
	if l.Attributes.Address.String() == mac.String() {
		return nil
	}
	up := l.Flags&unix.IFF_UP != 0
	if up {
		if err := h.conn.Link.Set(&rtnetlink.LinkMessage{Index: l.Index, Flags: 0, Change: unix.IFF_UP}); err != nil {
			return fmt.Errorf("set %s down: %w", ifname, err)
		}
	}
	if err := h.conn.Link.Set(&rtnetlink.LinkMessage{Index: l.Index, Attributes: &rtnetlink.LinkAttributes{Address: mac}}); err != nil {
		return fmt.Errorf("set %s address %s: %w", ifname, mac, err)
	}
	if up {
		if err := h.conn.Link.Set(&rtnetlink.LinkMessage{Index: l.Index, Flags: unix.IFF_UP, Change: unix.IFF_UP}); err != nil {
			return fmt.Errorf("set %s up: %w", ifname, err)
		}
	}
	return nil
}

// AddVIPs adds the VIPs (address and on-link prefix length) to ifname, IPv6
// ones with nodad. A VIP already present is left alone.
func (h *Helper) AddVIPs(ctx context.Context, ifname string, vips []netip.Prefix) error {
	l, err := h.link(ifname)
	if err != nil {
		return err
	}
	for i, p := range vips {
		if err := ctx.Err(); err != nil {
			return err
		}
		if !p.IsValid() || p.Addr().Zone() != "" || p.Addr().Is4In6() {
			return fmt.Errorf("vips[%d]: invalid value %q: want an address with prefix length, e.g. 192.0.2.1/24", i, p)
		}
		err := h.conn.Address.New(addrMessage(l.Index, p))
		if err != nil && !errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("add VIP %s to %s: %w", p, ifname, err)
		}
	}
	return nil
}

// RemoveVIPs deletes the VIPs from ifname; absent ones are ignored.
func (h *Helper) RemoveVIPs(ctx context.Context, ifname string, vips []netip.Prefix) error {
	l, err := h.link(ifname)
	if err != nil {
		return err
	}
	for _, p := range vips {
		if err := ctx.Err(); err != nil {
			return err
		}
		err := h.conn.Address.Delete(addrMessage(l.Index, p))
		if err != nil && !errors.Is(err, unix.EADDRNOTAVAIL) && !errors.Is(err, unix.ENOENT) {
			return fmt.Errorf("remove VIP %s from %s: %w", p, ifname, err)
		}
	}
	return nil
}

func addrMessage(index uint32, p netip.Prefix) *rtnetlink.AddressMessage {
	a := p.Addr()
	m := &rtnetlink.AddressMessage{
		Family: unix.AF_INET, PrefixLength: uint8(p.Bits()), Index: index,
		Attributes: &rtnetlink.AddressAttributes{Address: a.AsSlice(), Local: a.AsSlice()},
	}
	if a.Is6() {
		m.Family = unix.AF_INET6
		m.Flags = unix.IFA_F_NODAD
		m.Attributes.Flags = unix.IFA_F_NODAD
		m.Attributes.Local = nil
	}
	return m
}

// inNetNS runs fn on an OS thread in the helper's namespace (or directly
// when none was given): ioctls and /proc/sys/net follow the thread's
// namespace.
func (h *Helper) inNetNS(fn func() error) error {
	if h.netns == 0 {
		return fn()
	}
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			errc <- err
			return
		}
		defer unix.Close(orig)
		if err := unix.Setns(h.netns, unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("enter network namespace: %w", err)
			return
		}
		ferr := fn()
		if err := unix.Setns(orig, unix.CLONE_NEWNET); err != nil {
			// The thread stays locked and the runtime discards it.
			errc <- errors.Join(ferr, fmt.Errorf("leave network namespace: %w", err))
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

// Check reads ifname's settings and the VIPs' address flags and returns the
// problems Evaluate finds.
func (h *Helper) Check(ctx context.Context, ifname string, vips []netip.Addr) ([]Problem, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	l, err := h.link(ifname)
	if err != nil {
		return nil, err
	}
	s := Settings{Interface: ifname, VIPFlags: map[netip.Addr]uint32{}}
	err = h.inNetNS(func() error {
		var err error
		if s.RPFilter, err = maxSysctl("ipv4", ifname, "rp_filter"); err != nil {
			return err
		}
		if s.ArpIgnore, err = maxSysctl("ipv4", ifname, "arp_ignore"); err != nil {
			return err
		}
		if s.ArpAnnounce, err = maxSysctl("ipv4", ifname, "arp_announce"); err != nil {
			return err
		}
		s.AcceptDAD, err = readSysctl(filepath.Join("/proc/sys/net/ipv6/conf", ifname, "accept_dad"))
		if errors.Is(err, os.ErrNotExist) {
			s.AcceptDAD, err = -1, nil
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("read settings of %s: %w", ifname, err)
	}
	addrs, err := h.conn.Address.List()
	if err != nil {
		return nil, fmt.Errorf("list addresses: %w", err)
	}
	for _, a := range addrs {
		if a.Index != l.Index || a.Attributes == nil {
			continue
		}
		ip, ok := netip.AddrFromSlice(a.Attributes.Address)
		if !ok {
			continue
		}
		s.VIPFlags[ip.Unmap()] = a.Attributes.Flags | uint32(a.Flags)
	}
	return Evaluate(s, vips), nil
}

func maxSysctl(family, ifname, key string) (int, error) {
	all, err := readSysctl(filepath.Join("/proc/sys/net", family, "conf/all", key))
	if err != nil {
		return 0, err
	}
	dev, err := readSysctl(filepath.Join("/proc/sys/net", family, "conf", ifname, key))
	if err != nil {
		return 0, err
	}
	return max(all, dev), nil
}

func readSysctl(path string) (int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	v, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return 0, fmt.Errorf("%s: %w", path, err)
	}
	return v, nil
}
