package lab

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/saru-lb/saru/deploy/kernellab"
)

// Address plan. Every address lives only inside the lab's namespaces.
var (
	VIP         = netip.MustParseAddr("10.77.0.100")
	lanShared   = netip.MustParseAddr("10.77.0.1")  // every director, lan0
	realGateway = netip.MustParseAddr("10.77.1.1")  // every director, real0 (NAT)
	lanMAC      = "02:5a:52:55:00:01"               // shared by every director's lan0
	realMAC     = "02:5a:52:55:00:02"               // shared by every director's real0 (NAT)
	syncGroup   = netip.MustParseAddr("239.77.0.1") // syncd's peer multicast group on mgmt
)

// Service ports on the VIP.
const (
	HTTPPort   = 80
	StreamPort = 9000
	saruPort   = 7400
	syncdPort  = 7401
	gossipPort = 7946
	syncPort   = 8849
)

func clientAddr(i int) netip.Addr { return netip.AddrFrom4([4]byte{10, 77, 0, byte(11 + i)}) }
func mgmtAddr(i int) netip.Addr   { return netip.AddrFrom4([4]byte{10, 77, 9, byte(11 + i)}) }
func serverAddr(m Mode, i int) netip.Addr {
	if m == ModeNAT {
		return netip.AddrFrom4([4]byte{10, 77, 1, byte(21 + i)})
	}
	return netip.AddrFrom4([4]byte{10, 77, 0, byte(21 + i)})
}

// Mode is the LVS forwarding method.
type Mode string

// Modes.
const (
	ModeNAT Mode = "nat"
	ModeDR  Mode = "dr"
)

// ParseMode checks a mode name.
func ParseMode(s string) (Mode, error) {
	switch Mode(s) {
	case ModeNAT, ModeDR:
		return Mode(s), nil
	}
	return "", fmt.Errorf("mode %q: want nat or dr", s)
}

// Options configure a lab.
type Options struct {
	Mode      Mode
	Directors int // default 3
	Servers   int // default 3
	Clients   int // default 2
	Buckets   int // default 1024
	// BinDir holds saru, syncd and saructl (and grpcurl); empty: $PATH.
	BinDir string
	// Out receives the human narrative; nil: discarded.
	Out io.Writer
	// LossPercent drops this share of syncd's peer packets on every
	// director (an nftables numgen rule on mgmt0).
	LossPercent int
	// Gossip timings for saru's memberlist; zero leaves saru's defaults
	// (100ms, 50ms, 2), the ones the lab measures.
	// SARULAB_GOSSIP=interval/timeout/mult overrides them.
	ProbeInterval, ProbeTimeout time.Duration
	SuspicionMult               int
	// NoSync runs saru without syncd: the baseline showing what connection
	// sync is for.
	NoSync bool
	// WorkDir holds configurations and logs (default: a temporary
	// directory removed by Close unless SARULAB_KEEP is set).
	WorkDir string
}

func (o *Options) defaults() error {
	if o.Mode == "" {
		o.Mode = ModeDR
	}
	if _, err := ParseMode(string(o.Mode)); err != nil {
		return err
	}
	if o.Directors == 0 {
		o.Directors = 3
	}
	if o.Servers == 0 {
		o.Servers = 3
	}
	if o.Clients == 0 {
		o.Clients = 2
	}
	if o.Buckets == 0 {
		o.Buckets = 1024
	}
	switch {
	case o.Directors < 1 || o.Directors > 8:
		return fmt.Errorf("directors: %d not in 1-8", o.Directors)
	case o.Servers < 1 || o.Servers > 50:
		return fmt.Errorf("servers: %d not in 1-50", o.Servers)
	case o.Clients < 1 || o.Clients > 50:
		return fmt.Errorf("clients: %d not in 1-50", o.Clients)
	case o.LossPercent < 0 || o.LossPercent > 90:
		return fmt.Errorf("loss: %d%% not in 0-90", o.LossPercent)
	}
	if o.Out == nil {
		o.Out = io.Discard
	}
	if v := os.Getenv("SARULAB_GOSSIP"); v != "" {
		// interval/timeout/mult, e.g. 200ms/100ms/2
		var pi, pt string
		var m int
		parts := strings.Split(v, "/")
		if len(parts) == 3 {
			pi, pt = parts[0], parts[1]
			fmt.Sscan(parts[2], &m)
		}
		a, err1 := time.ParseDuration(pi)
		b, err2 := time.ParseDuration(pt)
		if err1 != nil || err2 != nil || m < 1 {
			return fmt.Errorf("SARULAB_GOSSIP %q: want interval/timeout/suspicion-mult, e.g. 200ms/100ms/2", v)
		}
		o.ProbeInterval, o.ProbeTimeout, o.SuspicionMult = a, b, m
	}
	return nil
}

// Lab is a running topology.
type Lab struct {
	opts    Options
	prefix  string
	hub     string
	work    string
	ownWork bool

	Clients   []string // namespace names
	Servers   []*Server
	Directors []*Director

	mu       sync.Mutex
	closers  []func()
	closed   bool
	bins     binaries
	token    string
	nsMade   []string
	startAll time.Time

	// upEpoch is the assignment epoch the mesh settled on in Up; acted
	// is set when a scenario starts changing the cluster.
	upEpoch uint64
	upAt    time.Time
	acted   bool
}

// Server is a real server.
type Server struct {
	NS   string
	Addr netip.Addr
}

// Director is one director's namespace and daemons.
type Director struct {
	Index int
	ID    string
	NS    string
	Mgmt  netip.Addr
	saru  *proc
	syncd *proc
	hubIf []string // its ports on the hub's bridges
}

// SaruAddr is the director's saru.v1.Cluster address.
func (d *Director) SaruAddr() string { return netip.AddrPortFrom(d.Mgmt, saruPort).String() }

// SyncdAddr is the director's syncd.v1.Sync address.
func (d *Director) SyncdAddr() string { return netip.AddrPortFrom(d.Mgmt, syncdPort).String() }

// New builds the topology (no daemons yet). The caller must Close it.
func New(ctx context.Context, opts Options) (_ *Lab, err error) {
	if err := opts.defaults(); err != nil {
		return nil, err
	}
	l := &Lab{opts: opts, prefix: fmt.Sprintf("sl%d", os.Getpid())}
	if n := os.Getenv("SARULAB_PREFIX"); n != "" {
		l.prefix = n
	}
	l.hub = l.prefix + "-hub"
	defer func() {
		if err != nil {
			l.Close()
		}
	}()
	if opts.WorkDir == "" {
		if l.work, err = os.MkdirTemp("", "sarulab-"); err != nil {
			return nil, err
		}
		l.ownWork = true
	} else {
		l.work = opts.WorkDir
		if err := os.MkdirAll(l.work, 0o755); err != nil {
			return nil, err
		}
	}
	if kernellab.Inside() {
		// Every frame to the shared MAC is flooded to every director, and
		// the emulated CPUs drain the per-CPU backlog slowly: at the
		// default 1000 packets a burst overflows it, and the gossip
		// packets dropped with it make memberlist suspect live directors.
		// (Global, so set only in the lab's own VM.)
		if err := os.WriteFile("/proc/sys/net/core/netdev_max_backlog", []byte("5000"), 0o644); err != nil {
			return nil, fmt.Errorf("netdev_max_backlog: %w", err)
		}
		if err := raiseSoftirqThreads(); err != nil {
			return nil, err
		}
	}
	if err := l.addNS(ctx, l.hub); err != nil {
		return nil, err
	}
	lines := []string{"link set lo up"}
	for _, br := range []string{"lan", "real", "mgmt"} {
		lines = append(lines, "link add "+br+" type bridge", "link set "+br+" up")
	}
	if err := ipBatch(ctx, l.hub, lines); err != nil {
		return nil, fmt.Errorf("hub: %w", err)
	}
	if err := sysctl(l.hub, map[string]string{"net.ipv6.conf.all.disable_ipv6": "1"}); err != nil {
		return nil, err
	}
	for i := 0; i < opts.Clients; i++ {
		ns := fmt.Sprintf("%s-c%d", l.prefix, i+1)
		if err := l.addNS(ctx, ns); err != nil {
			return nil, err
		}
		if err := l.plug(ctx, ns, fmt.Sprintf("c%d", i+1), "lan", "lan0", ""); err != nil {
			return nil, err
		}
		if err := ipBatch(ctx, ns, []string{"addr add " + clientAddr(i).String() + "/24 dev lan0"}); err != nil {
			return nil, err
		}
		if err := sysctl(ns, map[string]string{
			"net.ipv4.ip_local_port_range": "20000 60999",
			"net.ipv4.tcp_retries2":        "15",
		}); err != nil {
			return nil, err
		}
		l.Clients = append(l.Clients, ns)
	}
	for i := 0; i < opts.Servers; i++ {
		s, err := l.addServer(ctx, i)
		if err != nil {
			return nil, err
		}
		l.Servers = append(l.Servers, s)
	}
	for i := 0; i < opts.Directors; i++ {
		if _, err := l.AddDirector(ctx); err != nil {
			return nil, err
		}
	}
	return l, nil
}

// Mode is the lab's forwarding method.
func (l *Lab) Mode() Mode { return l.opts.Mode }

// WorkDir holds the generated configurations and the daemons' logs.
func (l *Lab) WorkDir() string { return l.work }

func (l *Lab) addNS(ctx context.Context, ns string) error {
	if err := run(ctx, "ip", "netns", "add", ns); err != nil {
		return err
	}
	l.mu.Lock()
	l.nsMade = append(l.nsMade, ns)
	l.mu.Unlock()
	if err := ipBatch(ctx, ns, []string{"link set lo up"}); err != nil {
		return err
	}
	return sysctl(ns, map[string]string{"net.ipv6.conf.all.disable_ipv6": "1", "net.ipv6.conf.default.disable_ipv6": "1"})
}

// plug connects ns to a hub bridge with a veth pair named hubName (hub side)
// and ifName (inside ns), with mac when non-empty.
//
// On the lan and real bridges, director ports (those given the shared mac)
// never learn, so the shared MAC is never learned and every frame to it is
// flooded to every director, as a switch floods a MAC it has not learned.
// The other ports learn but take no flooded unknown unicast, so clients and
// real servers see only their own frames (and broadcasts): a switch, with
// the shared MAC behaving as on a hub.
func (l *Lab) plug(ctx context.Context, ns, hubName, bridge, ifName, mac string) error {
	tmp := hubName + "p"
	lines := []string{
		"link add " + hubName + " type veth peer name " + tmp,
		"link set " + hubName + " master " + bridge,
	}
	switch {
	case bridge == "mgmt":
	case mac != "":
		lines = append(lines, "link set "+hubName+" type bridge_slave learning off flood on")
	default:
		lines = append(lines, "link set "+hubName+" type bridge_slave learning on flood off")
	}
	lines = append(lines, "link set "+hubName+" up", "link set "+tmp+" netns "+ns)
	if err := ipBatch(ctx, l.hub, lines); err != nil {
		return fmt.Errorf("plug %s into %s: %w", ns, bridge, err)
	}
	in := []string{"link set " + tmp + " name " + ifName}
	if mac != "" {
		in = append(in, "link set "+ifName+" address "+mac)
	}
	in = append(in, "link set "+ifName+" up")
	return ipBatch(ctx, ns, in)
}

func (l *Lab) addServer(ctx context.Context, i int) (*Server, error) {
	ns := fmt.Sprintf("%s-r%d", l.prefix, i+1)
	if err := l.addNS(ctx, ns); err != nil {
		return nil, err
	}
	s := &Server{NS: ns, Addr: serverAddr(l.opts.Mode, i)}
	if l.opts.Mode == ModeNAT {
		if err := l.plug(ctx, ns, fmt.Sprintf("r%d", i+1), "real", "real0", ""); err != nil {
			return nil, err
		}
		if err := ipBatch(ctx, ns, []string{
			"addr add " + s.Addr.String() + "/24 dev real0",
			"route add default via " + realGateway.String(),
		}); err != nil {
			return nil, err
		}
	} else {
		if err := l.plug(ctx, ns, fmt.Sprintf("r%d", i+1), "lan", "lan0", ""); err != nil {
			return nil, err
		}
		if err := sysctl(ns, map[string]string{
			"net.ipv4.conf.all.arp_ignore":    "1",
			"net.ipv4.conf.all.arp_announce":  "2",
			"net.ipv4.conf.lan0.arp_ignore":   "1",
			"net.ipv4.conf.lan0.arp_announce": "2",
		}); err != nil {
			return nil, err
		}
		if err := ipBatch(ctx, ns, []string{
			"addr add " + s.Addr.String() + "/24 dev lan0",
			"addr add " + VIP.String() + "/32 dev lo",
		}); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// AddDirector creates the next director's namespace and links (no
// daemons).
func (l *Lab) AddDirector(ctx context.Context) (*Director, error) {
	i := len(l.Directors)
	d := &Director{Index: i, ID: fmt.Sprintf("dir%d", i+1), NS: fmt.Sprintf("%s-d%d", l.prefix, i+1), Mgmt: mgmtAddr(i)}
	debugf(l.opts.Out, "%s: new namespace", d.ID)
	if err := l.addNS(ctx, d.NS); err != nil {
		return nil, err
	}
	if err := l.wireDirector(ctx, d); err != nil {
		return nil, err
	}
	l.Directors = append(l.Directors, d)
	return d, nil
}

// Reboot stops the director's daemons and replaces its namespace with a
// fresh one (empty IPVS and conntrack tables, no filter), as a reboot
// would. The daemons are not started.
func (l *Lab) Reboot(ctx context.Context, d *Director) error {
	d.saru.kill()
	d.syncd.kill()
	if err := run(ctx, "ip", "netns", "del", d.NS); err != nil {
		return err
	}
	// Namespace teardown is asynchronous: wait for its links to leave the hub.
	for _, p := range d.hubIf {
		for start := time.Now(); run(ctx, "ip", "-n", l.hub, "link", "show", p) == nil; {
			if time.Since(start) > 15*time.Second {
				return fmt.Errorf("reboot %s: hub port %s still present after 15s", d.ID, p)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	if err := run(ctx, "ip", "netns", "add", d.NS); err != nil {
		return err
	}
	if err := ipBatch(ctx, d.NS, []string{"link set lo up"}); err != nil {
		return err
	}
	if err := sysctl(d.NS, map[string]string{"net.ipv6.conf.all.disable_ipv6": "1", "net.ipv6.conf.default.disable_ipv6": "1"}); err != nil {
		return err
	}
	return l.wireDirector(ctx, d)
}

// wireDirector plugs the director's namespace into the hub and sets its
// addresses and sysctls.
func (l *Lab) wireDirector(ctx context.Context, d *Director) error {
	i := d.Index
	lan, mg := fmt.Sprintf("d%dl", i+1), fmt.Sprintf("d%dm", i+1)
	if err := l.plug(ctx, d.NS, lan, "lan", "lan0", lanMAC); err != nil {
		return err
	}
	if err := l.plug(ctx, d.NS, mg, "mgmt", "mgmt0", ""); err != nil {
		return err
	}
	d.hubIf = []string{lan, mg}
	lines := []string{
		// saru adds the VIP (after installing its filter) and removes it.
		"addr add " + lanShared.String() + "/24 dev lan0",
		"addr add " + d.Mgmt.String() + "/24 dev mgmt0",
		// Multicast for syncd's peer group goes out on the management link.
		"route add 224.0.0.0/4 dev mgmt0",
	}
	if l.opts.Mode == ModeNAT {
		rl := fmt.Sprintf("d%dr", i+1)
		if err := l.plug(ctx, d.NS, rl, "real", "real0", realMAC); err != nil {
			return err
		}
		d.hubIf = append(d.hubIf, rl)
		lines = append(lines, "addr add "+realGateway.String()+"/24 dev real0")
	}
	if err := ipBatch(ctx, d.NS, lines); err != nil {
		return fmt.Errorf("director %s: %w", d.ID, err)
	}
	if err := sysctl(d.NS, map[string]string{
		// Off until saru's filter is in (StartDaemons): a NAT director
		// forwarding without it sends every real server's reply to the
		// clients un-NATed and every client packet back onto the lan.
		"net.ipv4.ip_forward":          "0",
		"net.ipv4.conf.all.rp_filter":  "0",
		"net.ipv4.conf.lan0.rp_filter": "0",
		// Shared-MAC directors must announce with the address of the
		// interface the ARP goes out of (saru checks this).
		"net.ipv4.conf.all.arp_announce":  "2",
		"net.ipv4.conf.lan0.arp_announce": "2",
	}); err != nil {
		return err
	}
	return nil
}

// Unplug takes a director's links down on the hub: as far as the network
// can tell, the machine is off.
func (l *Lab) Unplug(ctx context.Context, d *Director) error {
	return setLinks(l.hub, d.hubIf, false)
}

// onClose registers a cleanup run by Close, last registered first.
func (l *Lab) onClose(f func()) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.closers = append(l.closers, f)
}

// Close stops every daemon and driver and deletes every namespace. It is
// safe to call more than once and from a signal handler's goroutine.
func (l *Lab) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	closers := l.closers
	l.closers = nil
	nss := l.nsMade
	l.mu.Unlock()
	for _, d := range l.Directors {
		d.saru.kill()
		d.syncd.kill()
	}
	for i := len(closers) - 1; i >= 0; i-- {
		closers[i]()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var errs []error
	for i := len(nss) - 1; i >= 0; i-- {
		if err := run(ctx, "ip", "netns", "del", nss[i]); err != nil {
			errs = append(errs, err)
		}
	}
	if l.ownWork && os.Getenv("SARULAB_KEEP") == "" {
		os.RemoveAll(l.work)
	}
	return errors.Join(errs...)
}

// Cleanup removes namespaces left behind by an earlier run that was killed
// before it could clean up (their prefix's pid no longer runs).
func Cleanup(ctx context.Context) []string {
	ents, err := os.ReadDir(netnsDir)
	if err != nil {
		return nil
	}
	var gone []string
	for _, e := range ents {
		name := e.Name()
		var pid int
		if _, err := fmt.Sscanf(name, "sl%d-", &pid); err != nil || !strings.HasPrefix(name, fmt.Sprintf("sl%d-", pid)) {
			continue
		}
		if _, err := os.Stat(filepath.Join("/proc", fmt.Sprint(pid))); err == nil {
			continue
		}
		if run(ctx, "ip", "netns", "del", name) == nil {
			gone = append(gone, name)
		}
	}
	return gone
}
