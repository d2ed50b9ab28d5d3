package bridge

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"sync"
	"time"

	"github.com/jsimonetti/rtnetlink/v2"
	"golang.org/x/sys/unix"

	"github.com/saru-lb/saru/syncd/conn"
	"github.com/saru-lb/saru/syncd/ipvssync"
)

// DaemonState selects the kernel's master or backup sync thread
// (IP_VS_STATE_MASTER, IP_VS_STATE_BACKUP).
type DaemonState int

// Sync daemon states.
const (
	Master DaemonState = 1
	Backup DaemonState = 2
)

func (s DaemonState) String() string {
	switch s {
	case Master:
		return "master"
	case Backup:
		return "backup"
	}
	return fmt.Sprintf("state(%d)", int(s))
}

// DaemonConfig is what IPVS_CMD_NEW_DAEMON takes. Zero values leave the
// kernel's defaults.
type DaemonConfig struct {
	State     DaemonState
	Interface string
	SyncID    uint8
	MaxLen    int        // IPVS_DAEMON_ATTR_SYNC_MAXLEN
	Group     netip.Addr // IPVS_DAEMON_ATTR_MCAST_GROUP
	Port      uint16     // IPVS_DAEMON_ATTR_MCAST_PORT
	TTL       uint8      // IPVS_DAEMON_ATTR_MCAST_TTL
}

// SyncDaemons starts and stops the kernel's sync threads (saru/ipvs does,
// over genetlink).
type SyncDaemons interface {
	StartDaemon(ctx context.Context, cfg DaemonConfig) error
	StopDaemon(ctx context.Context, state DaemonState) error
}

// ErrClosed is returned by Import once the bridge is closed.
var ErrClosed = errors.New("ipvs sync bridge closed")

// DefaultPollInterval is how often the bridge reads the kernel's table.
const DefaultPollInterval = 500 * time.Millisecond

// DefaultInterface is the dummy interface the bridge creates.
const DefaultInterface = "saru-sync0"

// Config configures a Bridge. Zero values take the defaults.
type Config struct {
	// Interface is the dummy link the kernel threads use; created if
	// missing (and then deleted on Close). Default DefaultInterface.
	Interface string
	// SyncID tags the master's messages and those the bridge injects; the
	// backup is started with it (0 accepts every syncid).
	SyncID uint8
	// Group and Port are the sync group; default 224.0.0.81:8848.
	Group netip.Addr
	Port  uint16
	// MasterMaxLen is the master's sync_maxlen; 0 is the kernel's default
	// (1472 on a 1500-byte link).
	MasterMaxLen int
	// BackupMaxLen is the backup's sync_maxlen, and the most the bridge
	// packs into one injected datagram. Default ipvssync.DefaultMaxLen.
	BackupMaxLen int
	// ProcConnPath is the connection table; default /proc/net/ip_vs_conn.
	ProcConnPath string
	// ProcConnSyncPath is the same table with each entry's origin (local
	// traffic or sync); default /proc/net/ip_vs_conn_sync.
	ProcConnSyncPath string
	// PollInterval is how often Run reads the table to export local
	// entries that are new, changed, or alive here longer than the peers
	// were told (ipvssync.Tracker). The kernel's master holds a lone export
	// for 2 to 3 s (IPVS_SYNC_FLUSH_TIME plus its 1 s check period) and
	// never resends a connection that carries fewer than sync_period
	// packets, so this is how an entry reaches the peers within a second
	// of its sync threshold and how a quiet long-lived connection stays
	// alive on them. Each read costs time proportional to the table.
	// Default DefaultPollInterval; negative: never (the master's exports
	// and the start-up read only).
	PollInterval time.Duration
	// RefreshSlack: see ipvssync.Tracker; default ipvssync.DefaultRefreshSlack.
	RefreshSlack time.Duration
	// LogInterval limits drop log lines to one per reason per interval;
	// default 10 s.
	LogInterval time.Duration
	Logger      *slog.Logger
}

func (c *Config) setDefaults() {
	if c.Interface == "" {
		c.Interface = DefaultInterface
	}
	if !c.Group.IsValid() {
		c.Group = ipvssync.DefaultGroup
	}
	if c.Port == 0 {
		c.Port = ipvssync.DefaultPort
	}
	if c.BackupMaxLen == 0 {
		c.BackupMaxLen = ipvssync.DefaultMaxLen
	}
	if c.ProcConnPath == "" {
		c.ProcConnPath = "/proc/net/ip_vs_conn"
	}
	if c.ProcConnSyncPath == "" {
		c.ProcConnSyncPath = "/proc/net/ip_vs_conn_sync"
	}
	if c.PollInterval == 0 {
		c.PollInterval = DefaultPollInterval
	}
	if c.LogInterval == 0 {
		c.LogInterval = 10 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

func (c *Config) validate() error {
	if len(c.Interface) >= unix.IFNAMSIZ {
		return fmt.Errorf("interface: name %q longer than %d bytes", c.Interface, unix.IFNAMSIZ-1)
	}
	if !c.Group.Is4() || !c.Group.IsMulticast() {
		return fmt.Errorf("group: %s is not an IPv4 multicast address", c.Group)
	}
	if c.BackupMaxLen < ipvssync.MinBackupMaxLen || c.BackupMaxLen > 65535-28 {
		return fmt.Errorf("backup_maxlen: %d outside %d..%d", c.BackupMaxLen, ipvssync.MinBackupMaxLen, 65535-28)
	}
	if c.PollInterval > 0 && c.PollInterval < 10*time.Millisecond {
		return fmt.Errorf("poll_interval: %v is below 10ms", c.PollInterval)
	}
	if c.RefreshSlack < 0 {
		return fmt.Errorf("refresh_slack: %v is negative", c.RefreshSlack)
	}
	if c.MasterMaxLen < 0 || c.MasterMaxLen > 65535-28 {
		return fmt.Errorf("master_maxlen: %d outside 0..%d", c.MasterMaxLen, 65535-28)
	}
	return nil
}

// Bridge is the IPVS conn.Backend. Open sets it up, Run exports, Import
// injects, Close tears down.
type Bridge struct {
	cfg     Config
	daemons SyncDaemons
	log     *slog.Logger
	drops   *Drops

	ifindex     int
	createdLink bool
	started     []DaemonState
	capFD       int // AF_PACKET socket
	injFD       int // UDP socket
	injPort     uint16

	sendMu sync.Mutex
	now    func() time.Time
}

var _ conn.Backend = (*Bridge)(nil)

// Open creates the dummy interface if needed, starts the kernel's backup
// and master sync threads on it and opens the capture and injection
// sockets. On error everything it did is undone.
func Open(ctx context.Context, cfg Config, daemons SyncDaemons) (_ *Bridge, err error) {
	cfg.setDefaults()
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("ipvs sync bridge config: %w", err)
	}
	b := &Bridge{cfg: cfg, daemons: daemons, log: cfg.Logger.With("component", "ipvssync"),
		drops: NewDrops(cfg.LogInterval), capFD: -1, injFD: -1, now: time.Now}
	defer func() {
		if err != nil {
			b.Close(context.WithoutCancel(ctx))
		}
	}()
	if err := b.setupLink(); err != nil {
		return nil, err
	}
	// The capture socket first, so that nothing the master sends after
	// it starts is missed.
	if err := b.openCapture(); err != nil {
		return nil, err
	}
	for _, st := range []DaemonState{Backup, Master} {
		// Defaults are left to the kernel (zero values), so only what the
		// operator changed crosses the netlink interface.
		dc := DaemonConfig{State: st, Interface: cfg.Interface, SyncID: cfg.SyncID, TTL: 1, MaxLen: cfg.MasterMaxLen}
		if cfg.Group != ipvssync.DefaultGroup {
			dc.Group = cfg.Group
		}
		if cfg.Port != ipvssync.DefaultPort {
			dc.Port = cfg.Port
		}
		if st == Backup {
			dc.MaxLen = cfg.BackupMaxLen
		}
		if err := daemons.StartDaemon(ctx, dc); err != nil {
			// The kernel runs one thread of each kind per namespace; one
			// left running (a crashed run, another sync daemon) is
			// replaced, since syncd owns IPVS sync on this director.
			if stopErr := daemons.StopDaemon(ctx, st); stopErr != nil {
				return nil, fmt.Errorf("start ipvs sync %s on %s: %w", st, cfg.Interface, err)
			}
			b.log.Warn("replaced a running ipvs sync thread", "state", st.String(), "error", err)
			if err := daemons.StartDaemon(ctx, dc); err != nil {
				return nil, fmt.Errorf("start ipvs sync %s on %s: %w", st, cfg.Interface, err)
			}
		}
		b.started = append(b.started, st)
	}
	if err := b.openInjector(); err != nil {
		return nil, err
	}
	b.log.Info("ipvs sync bridge up", "interface", cfg.Interface, "ifindex", b.ifindex,
		"group", cfg.Group, "port", cfg.Port, "syncid", cfg.SyncID, "inject_port", b.injPort)
	return b, nil
}

// Interface returns the interface index of the bridge's link.
func (b *Bridge) Interface() int { return b.ifindex }

// Drops returns the drop totals by reason.
func (b *Bridge) Drops() map[DropReason]uint64 { return b.drops.Counts() }

func (b *Bridge) drop(reason DropReason, n uint64, msg string, attrs ...any) {
	if log, s := b.drops.Add(reason, n, b.now()); log {
		b.log.Warn(msg, append(attrs, "reason", string(reason), "count", s)...)
	}
}

func (b *Bridge) setupLink() error {
	c, err := rtnetlink.Dial(nil)
	if err != nil {
		return fmt.Errorf("rtnetlink: %w", err)
	}
	defer c.Close()
	ifi, err := net.InterfaceByName(b.cfg.Interface)
	if err != nil {
		if err := c.Link.New(&rtnetlink.LinkMessage{
			Family:     unix.AF_UNSPEC,
			Attributes: &rtnetlink.LinkAttributes{Name: b.cfg.Interface, Info: &rtnetlink.LinkInfo{Kind: "dummy"}},
		}); err != nil {
			return fmt.Errorf("create dummy interface %s: %w", b.cfg.Interface, err)
		}
		b.createdLink = true
		if ifi, err = net.InterfaceByName(b.cfg.Interface); err != nil {
			return fmt.Errorf("interface %s: %w", b.cfg.Interface, err)
		}
	}
	b.ifindex = ifi.Index
	msg, err := c.Link.Get(uint32(ifi.Index))
	if err != nil {
		return fmt.Errorf("interface %s: %w", b.cfg.Interface, err)
	}
	if msg.Attributes == nil || msg.Attributes.Info == nil || msg.Attributes.Info.Kind != "dummy" {
		return fmt.Errorf("interface %s exists and is not a dummy interface: refusing to put the unauthenticated kernel sync threads on it", b.cfg.Interface)
	}
	// dummy_setup clears IFF_MULTICAST; the sync threads need it.
	if err := c.Link.Set(&rtnetlink.LinkMessage{
		Family: unix.AF_UNSPEC, Index: uint32(ifi.Index),
		Flags: unix.IFF_UP | unix.IFF_MULTICAST, Change: unix.IFF_UP | unix.IFF_MULTICAST,
	}); err != nil {
		return fmt.Errorf("set %s up with multicast: %w", b.cfg.Interface, err)
	}
	return nil
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

func (b *Bridge) openCapture() error {
	// Outgoing frames reach only ETH_P_ALL taps (dev_queue_xmit_nit walks
	// ptype_all), so a socket bound to ETH_P_IP would see nothing the
	// master sends; Run keeps the IPv4 ones.
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, int(htons(unix.ETH_P_ALL)))
	if err != nil {
		return fmt.Errorf("AF_PACKET socket (needs CAP_NET_RAW): %w", err)
	}
	b.capFD = fd
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: b.ifindex}); err != nil {
		return fmt.Errorf("bind AF_PACKET to %s: %w", b.cfg.Interface, err)
	}
	// Room for a burst of full-size messages while Run reads the table;
	// past rmem_max with CAP_NET_ADMIN.
	if unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 4<<20) != nil {
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, 4<<20)
	}
	return nil
}

func (b *Bridge) openInjector() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, unix.IPPROTO_UDP)
	if err != nil {
		return fmt.Errorf("udp socket: %w", err)
	}
	b.injFD = fd
	if err := unix.SetsockoptIPMreqn(fd, unix.IPPROTO_IP, unix.IP_MULTICAST_IF, &unix.IPMreqn{Ifindex: int32(b.ifindex)}); err != nil {
		return fmt.Errorf("IP_MULTICAST_IF %s: %w", b.cfg.Interface, err)
	}
	if err := unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_MULTICAST_LOOP, 1); err != nil {
		return fmt.Errorf("IP_MULTICAST_LOOP: %w", err)
	}
	if err := unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_MULTICAST_TTL, 1); err != nil {
		return fmt.Errorf("IP_MULTICAST_TTL: %w", err)
	}
	if unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, 4<<20) != nil {
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUF, 4<<20)
	}
	// An ephemeral port: the bridge never binds the sync port, which the
	// backup thread must hold. The port tells our injections apart from
	// the master's messages in the capture.
	if err := unix.Bind(fd, &unix.SockaddrInet4{}); err != nil {
		return fmt.Errorf("bind injector: %w", err)
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		return fmt.Errorf("injector address: %w", err)
	}
	b.injPort = uint16(sa.(*unix.SockaddrInet4).Port)
	return nil
}

// Close stops the kernel threads the bridge started, closes its sockets and
// deletes the interface if it created it. Cancel Run's context and wait
// for Run to return first; Import after Close returns ErrClosed. It
// returns every error joined.
func (b *Bridge) Close(ctx context.Context) error {
	var errs []error
	for i := len(b.started) - 1; i >= 0; i-- {
		if err := b.daemons.StopDaemon(ctx, b.started[i]); err != nil {
			errs = append(errs, fmt.Errorf("stop ipvs sync %s: %w", b.started[i], err))
		}
	}
	b.started = nil
	if b.capFD >= 0 {
		unix.Close(b.capFD)
		b.capFD = -1
	}
	b.sendMu.Lock()
	if b.injFD >= 0 {
		unix.Close(b.injFD)
		b.injFD = -1
	}
	b.sendMu.Unlock()
	if b.createdLink {
		c, err := rtnetlink.Dial(nil)
		if err == nil {
			err = c.Link.Delete(uint32(b.ifindex))
			c.Close()
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("delete %s: %w", b.cfg.Interface, err))
		}
		b.createdLink = false
	}
	return errors.Join(errs...)
}

// readTable reads the kernel's connection table with each entry's origin:
// the entries of ProcConnPath (which carries persistence-engine data), with
// Origin taken from ProcConnSyncPath, read second. An entry missing from
// the second read expired in between and is left out; an entry created in
// between is in neither.
func (b *Bridge) readTable() ([]ipvssync.ProcConn, error) {
	read := func(path string) ([]ipvssync.ProcConn, error) {
		f, err := os.Open(path)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		return ipvssync.ParseConnTable(f)
	}
	table, err := read(b.cfg.ProcConnPath)
	if err != nil {
		return nil, fmt.Errorf("read ipvs table: %w", err)
	}
	origins, err := read(b.cfg.ProcConnSyncPath)
	if err != nil {
		return nil, fmt.Errorf("read ipvs table origins: %w", err)
	}
	type key struct {
		k     ipvssync.TableKey
		daddr netip.Addr
	}
	fromSync := make(map[key]bool, len(origins))
	for _, o := range origins {
		fromSync[key{ipvssync.TableKey{Protocol: o.Protocol, CAddr: o.CAddr, CPort: o.CPort, VAddr: o.VAddr, VPort: o.VPort, Template: o.Template}, o.DAddr}] = o.FromSync()
	}
	out := table[:0]
	for _, t := range table {
		sync, ok := fromSync[key{ipvssync.TableKey{Protocol: t.Protocol, CAddr: t.CAddr, CPort: t.CPort, VAddr: t.VAddr, VPort: t.VPort, Template: t.Template}, t.DAddr}]
		if !ok {
			continue // gone between the two reads
		}
		t.Origin = "LOCAL"
		if sync {
			t.Origin = "SYNC"
		}
		out = append(out, t)
	}
	return out, nil
}

// Snapshot reads the kernel's connection table and returns every local
// entry (not created from a peer's message) in a state the kernel syncs,
// with the time it has left as its timeout. Entries the protocol cannot
// carry are counted as DropProcUnsyncable.
func (b *Bridge) Snapshot(ctx context.Context) ([]conn.Entry, error) {
	table, err := b.readTable()
	if err != nil {
		return nil, fmt.Errorf("snapshot: %w", err)
	}
	out, skipped := ipvssync.NewTracker().Changed(table, b.now())
	for _, err := range skipped {
		b.drop(DropProcUnsyncable, 1, "ipvs table entry not syncable", "error", err)
	}
	return out, ctx.Err()
}

// Run exports the kernel's table until ctx is done: first the local
// entries of a read of the table (those the master never sent), then
// every message the master sends and, with PollInterval, what each read
// of the table finds new or changed.
func (b *Bridge) Run(ctx context.Context, export func([]conn.Entry)) error {
	tracker := ipvssync.NewTracker()
	tracker.RefreshSlack = b.cfg.RefreshSlack
	exportConns := func(entries []conn.Entry) {
		for len(entries) > 0 {
			n := min(len(entries), 256)
			export(entries[:n])
			entries = entries[n:]
		}
	}
	pollTable := func() error {
		table, err := b.readTable()
		if err != nil {
			return err
		}
		conns, skipped := tracker.Changed(table, b.now())
		for _, err := range skipped {
			b.drop(DropProcUnsyncable, 1, "ipvs table entry not syncable", "error", err)
		}
		exportConns(conns)
		return nil
	}
	if err := pollTable(); err != nil {
		return fmt.Errorf("start-up read: %w", err)
	}
	lastPoll := b.now()
	buf := make([]byte, 65536+1)
	var conns []conn.Entry
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		wait := 100 * time.Millisecond
		if iv := b.cfg.PollInterval; iv > 0 {
			wait = min(wait, max(time.Until(lastPoll.Add(iv)), 0))
		}
		fds := []unix.PollFd{{Fd: int32(b.capFD), Events: unix.POLLIN}}
		n, err := unix.Poll(fds, int(wait/time.Millisecond))
		if err != nil && !errors.Is(err, unix.EINTR) {
			return fmt.Errorf("poll capture socket: %w", err)
		}
		for n > 0 {
			sz, from, err := unix.Recvfrom(b.capFD, buf, unix.MSG_DONTWAIT|unix.MSG_TRUNC)
			if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) {
				break
			}
			if err != nil {
				return fmt.Errorf("read capture socket: %w", err)
			}
			ll, ok := from.(*unix.SockaddrLinklayer)
			if !ok || ll.Pkttype != unix.PACKET_OUTGOING || ll.Protocol != htons(unix.ETH_P_IP) {
				continue
			}
			if sz > len(buf)-1 {
				b.drop(DropTruncated, 1, "captured frame larger than the read buffer", "bytes", sz)
				continue
			}
			payload, ok := b.syncPayload(buf[:sz])
			if !ok {
				continue
			}
			conns = b.decodeExport(payload, conns[:0])
			for i := range conns {
				tracker.Note(&conns[i], b.now())
			}
			exportConns(conns)
		}
		if iv := b.cfg.PollInterval; iv > 0 && b.now().Sub(lastPoll) >= iv {
			lastPoll = b.now()
			if err := pollTable(); err != nil {
				return err
			}
		}
		b.captureOverruns()
	}
}

// captureOverruns counts the frames the kernel dropped because the
// capture socket's buffer was full (PACKET_STATISTICS, reset on read).
func (b *Bridge) captureOverruns() {
	st, err := unix.GetsockoptTpacketStats(b.capFD, unix.SOL_PACKET, unix.PACKET_STATISTICS)
	if err == nil && st.Drops > 0 {
		b.drop(DropCaptureOverrun, uint64(st.Drops), "capture socket overrun: master messages lost")
	}
}

// syncPayload returns the UDP payload of an IPv4 packet from the master to
// the sync group (any of the sync ports), or false for anything else,
// including the bridge's own injections.
func (b *Bridge) syncPayload(p []byte) ([]byte, bool) {
	return SyncPayload(p, b.cfg.Group, b.cfg.Port, b.injPort)
}

// SyncPayload extracts the sync message from an IPv4 packet sent to group
// on one of the ports the kernel's threads use (port to port+7, one per
// sync_ports thread), excluding packets from source port skipSrc. It does
// no I/O.
func SyncPayload(p []byte, group netip.Addr, port, skipSrc uint16) ([]byte, bool) {
	if len(p) < 20 || p[0]>>4 != 4 {
		return nil, false
	}
	ihl := int(p[0]&0x0f) * 4
	total := int(binary.BigEndian.Uint16(p[2:4]))
	if ihl < 20 || total < ihl+8 || total > len(p) || p[9] != unix.IPPROTO_UDP {
		return nil, false
	}
	if binary.BigEndian.Uint16(p[6:8])&0x3fff != 0 { // fragment
		return nil, false
	}
	if netip.AddrFrom4([4]byte(p[16:20])) != group {
		return nil, false
	}
	udp := p[ihl:total]
	sport, dport := binary.BigEndian.Uint16(udp[0:2]), binary.BigEndian.Uint16(udp[2:4])
	ulen := int(binary.BigEndian.Uint16(udp[4:6]))
	if sport == skipSrc || dport < port || dport > port+7 || ulen < 8 || ulen > len(udp) {
		return nil, false
	}
	return udp[8:ulen], true
}

func (b *Bridge) decodeExport(payload []byte, out []conn.Entry) []conn.Entry {
	m, err := ipvssync.Decode(payload)
	if err != nil {
		b.drop(DropMalformed, 1, "malformed message from the kernel's master", "error", err)
		return out
	}
	for i := range m.Refused {
		b.drop(DropUnsyncable, 1, "kernel exported a record that cannot be synced", "error", &m.Refused[i])
	}
	return append(out, m.Entries...)
}

// Import injects peers' entries into the local kernel through its backup
// thread. Entries the backup would drop, or too large for a datagram, are
// counted (DropImportInvalid) and skipped; the rest are packed into as few
// datagrams as fit the backup's limit. It returns an error only when
// sending fails.
func (b *Bridge) Import(ctx context.Context, entries []conn.Entry) error {
	msgs, refused := ipvssync.Pack(b.cfg.SyncID, entries, b.cfg.BackupMaxLen)
	for i := range refused {
		b.drop(DropImportInvalid, 1, "peer entry the kernel would drop", "error", &refused[i])
	}
	return b.send(ctx, msgs)
}

func (b *Bridge) send(ctx context.Context, msgs [][]byte) error {
	b.sendMu.Lock()
	defer b.sendMu.Unlock()
	if b.injFD < 0 {
		return ErrClosed
	}
	to := &unix.SockaddrInet4{Port: int(b.cfg.Port), Addr: b.cfg.Group.As4()}
	for i, m := range msgs {
		if err := ctx.Err(); err != nil {
			return err
		}
		for {
			err := unix.Sendto(b.injFD, m, 0, to)
			if errors.Is(err, unix.EINTR) {
				continue
			}
			if errors.Is(err, unix.ENOBUFS) || errors.Is(err, unix.EAGAIN) {
				// The backup thread is behind; give it a moment.
				select {
				case <-ctx.Done():
					return ctx.Err()
				case <-time.After(time.Millisecond):
				}
				continue
			}
			if err != nil {
				b.drop(DropSendFailed, uint64(len(msgs)-i), "inject sync message", "error", err)
				return fmt.Errorf("inject sync message %d of %d: %w", i+1, len(msgs), err)
			}
			break
		}
	}
	return nil
}
