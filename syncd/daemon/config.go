package daemon

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/saru-lb/saru/syncd/reliable"
	"github.com/saru-lb/saru/syncd/transport"
)

// Config is a checked daemon configuration.
type Config struct {
	NodeID        string
	APIListen     string // gRPC listen address
	Advertise     string // gRPC address announced to peers; default APIListen
	MetricsListen string // Prometheus /metrics listen address; empty: none
	KeyFile       string
	KeyGrace      time.Duration
	StateDir      string // what must survive a restart: the incarnation
	MTU           int
	Transport     transport.Config
	SnapshotPeers []string
	SnapshotWait  time.Duration
	Heartbeat     time.Duration
	Tick          time.Duration
	Flush         time.Duration
	Refresh       time.Duration
	Expire        time.Duration
	Reliable      reliable.Config
	Backend       string
	LogLevel      string
}

// File is the YAML configuration file's shape.
type File struct {
	NodeID        string `yaml:"node_id"`
	APIListen     string `yaml:"api_listen"`
	Advertise     string `yaml:"advertise"`
	MetricsListen string `yaml:"metrics_listen"`
	KeyFile       string `yaml:"key_file"`
	KeyGrace      string `yaml:"key_grace"`
	StateDir      string `yaml:"state_dir"`
	// Numbers are pointers where a default fills a value the file leaves
	// out: a written value, 0 included, is checked, never replaced.
	MTU       *int `yaml:"mtu"`
	Multicast *struct {
		Group     string  `yaml:"group"`
		Port      *uint16 `yaml:"port"`
		Interface string  `yaml:"interface"`
		TTL       int     `yaml:"ttl"`
		Loopback  bool    `yaml:"loopback"`
	} `yaml:"multicast"`
	Unicast *struct {
		Listen string   `yaml:"listen"`
		Peers  []string `yaml:"peers"`
	} `yaml:"unicast"`
	ReadBuffer *int `yaml:"read_buffer"`
	Snapshot   struct {
		Peers []string `yaml:"peers"`
		Wait  string   `yaml:"wait"`
	} `yaml:"snapshot"`
	Timing struct {
		Heartbeat string `yaml:"heartbeat"`
		Tick      string `yaml:"tick"`
		Flush     string `yaml:"flush"`
		Refresh   string `yaml:"refresh"`
		Expire    string `yaml:"expire"`
	} `yaml:"timing"`
	Reliable struct {
		Window       *uint64 `yaml:"window"`
		Ring         *int    `yaml:"ring"`
		NackDelay    string  `yaml:"nack_delay"`
		NackInterval string  `yaml:"nack_interval"`
		MaxNacks     *int    `yaml:"max_nacks"`
	} `yaml:"reliable"`
	Backend  string `yaml:"backend"`
	LogLevel string `yaml:"log_level"`
}

// Defaults.
const (
	DefaultMTU      = 1500
	DefaultPort     = 8848
	DefaultKeyGrace = 5 * time.Minute
	DefaultStateDir = "/var/lib/syncd"
)

// ParseConfig parses and checks a YAML configuration. Unknown fields are
// errors; every error names the field.
func ParseConfig(data []byte) (Config, error) {
	var f File
	if err := DecodeFile(data, &f); err != nil {
		return Config{}, err
	}
	return f.Check()
}

// DecodeFile decodes YAML into f, refusing unknown fields (flags may
// then override fields before Check).
func DecodeFile(data []byte, f *File) error {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(f); err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("config: %w", err)
	}
	return nil
}

// checker collects the problems of every section, each naming its field.
type checker struct {
	errs []error
}

func (k *checker) fail(field string, value any, format string, args ...any) {
	k.errs = append(k.errs, fmt.Errorf("%s: invalid value %q: %s", field, fmt.Sprint(value), fmt.Sprintf(format, args...)))
}

// add keeps err, when not nil, as it is.
func (k *checker) add(err error) {
	if err != nil {
		k.errs = append(k.errs, err)
	}
}

// dur parses s, def when empty; outside lo..hi is an error. The bounds
// keep the daemon out of what cripples it (a 1ns heartbeat is 38,600
// heartbeats a second) while leaving room for any sane deployment.
func (k *checker) dur(field, s string, def, lo, hi time.Duration) time.Duration {
	if s == "" {
		return def
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < lo || d > hi {
		k.fail(field, s, "want a duration from %s to %s, like %q", lo, hi, def.String())
		return def
	}
	return d
}

// number returns *v, def when nil; outside lo..hi is an error.
func number[T int | uint16 | uint64](k *checker, field string, v *T, def, lo, hi T) T {
	if v == nil {
		return def
	}
	if *v < lo || *v > hi {
		k.fail(field, *v, "want %d to %d (leave it out for %d)", lo, hi, def)
	}
	return *v
}

// addrPort checks an ip:port field with a port from 1 to 65535.
func (k *checker) addrPort(field, v string) (netip.AddrPort, bool) {
	ap, err := netip.ParseAddrPort(v)
	if err != nil || ap.Port() == 0 {
		k.fail(field, v, "want ip:port with a port from 1 to 65535")
		return ap, false
	}
	return ap, true
}

// hostPort checks a host:port field: a port from 1 to 65535, and a host
// unless listen allows an empty one (every local address).
func (k *checker) hostPort(field, v string, listen bool) {
	host, port, err := net.SplitHostPort(v)
	p, perr := strconv.ParseUint(port, 10, 16)
	if err != nil || perr != nil || p == 0 || (host == "" && !listen) {
		k.fail(field, v, "want host:port with a port from 1 to 65535")
	}
}

// Check turns the file into a checked Config. It is pure: the files and
// the interface the configuration names are CheckEnvironment's. The error
// lists every bad field.
func (f *File) Check() (Config, error) {
	c := Config{
		NodeID: f.NodeID, APIListen: f.APIListen, Advertise: f.Advertise, MetricsListen: f.MetricsListen,
		KeyFile: f.KeyFile, SnapshotPeers: f.Snapshot.Peers, Backend: f.Backend, LogLevel: f.LogLevel,
	}
	var k checker
	k.node(f, &c)
	k.api(f, &c)
	k.transport(f, &c)
	k.timing(f, &c)
	k.reliable(f, &c)
	k.local(f, &c)
	if len(k.errs) > 0 {
		return Config{}, fmt.Errorf("config: %w", errors.Join(k.errs...))
	}
	return c, nil
}

// node checks the director's id and its cluster key file's name.
func (k *checker) node(f *File, c *Config) {
	if err := CheckID(c.NodeID); err != nil {
		k.fail("node_id", c.NodeID, "%v", err)
	}
	if c.KeyFile == "" {
		k.fail("key_file", "", "required: the cluster key file")
	}
	c.KeyGrace = k.dur("key_grace", f.KeyGrace, DefaultKeyGrace, time.Second, 7*24*time.Hour)
}

// api checks the gRPC and metrics addresses and the snapshot peers.
func (k *checker) api(f *File, c *Config) {
	if c.APIListen == "" {
		k.fail("api_listen", "", "required: ip:port")
	} else {
		k.addrPort("api_listen", c.APIListen)
	}
	if c.Advertise == "" {
		c.Advertise = c.APIListen
		if ap, err := netip.ParseAddrPort(c.APIListen); err == nil && ap.Addr().IsUnspecified() {
			k.add(fmt.Errorf("advertise: required when api_listen %s is a wildcard address (peers dial it for snapshots)", c.APIListen))
		}
	} else if ap, ok := k.addrPort("advertise", c.Advertise); ok && ap.Addr().IsUnspecified() {
		k.fail("advertise", c.Advertise, "peers cannot dial a wildcard address")
	}
	if c.MetricsListen != "" {
		k.hostPort("metrics_listen", c.MetricsListen, true)
	}
	for i, p := range c.SnapshotPeers {
		k.hostPort(fmt.Sprintf("snapshot.peers[%d]", i), p, false)
	}
	c.SnapshotWait = k.dur("snapshot.wait", f.Snapshot.Wait, 3*time.Second, 10*time.Millisecond, 10*time.Minute)
}

// transport checks the sync network: multicast or unicast, MTU and
// receive buffer.
func (k *checker) transport(f *File, c *Config) {
	c.MTU = number(k, "mtu", f.MTU, DefaultMTU, 576, 65535)
	switch {
	case f.Multicast != nil && f.Unicast != nil:
		k.add(errors.New("multicast, unicast: set one, not both"))
	case f.Multicast != nil:
		m := f.Multicast
		g, err := netip.ParseAddr(m.Group)
		if err != nil || !g.IsMulticast() {
			k.add(fmt.Errorf("multicast.group: %q is not a multicast address", m.Group))
		}
		port := number(k, "multicast.port", m.Port, DefaultPort, 1, 65535)
		if m.TTL < 0 || m.TTL > 255 {
			k.add(fmt.Errorf("multicast.ttl: %d not in 0-255", m.TTL))
		}
		if m.Interface != "" && !validIfName(m.Interface) {
			k.fail("multicast.interface", m.Interface, "want an interface name of 1 to 15 characters without '/', ':' or spaces")
		}
		c.Transport = transport.Config{Group: g, Port: port, Interface: m.Interface, TTL: m.TTL, Loopback: m.Loopback}
	case f.Unicast != nil:
		u := f.Unicast
		l, _ := k.addrPort("unicast.listen", u.Listen)
		c.Transport = transport.Config{Listen: l}
		if len(u.Peers) == 0 {
			k.add(errors.New("unicast.peers: empty"))
		}
		for i, p := range u.Peers {
			if ap, ok := k.addrPort(fmt.Sprintf("unicast.peers[%d]", i), p); ok {
				c.Transport.Peers = append(c.Transport.Peers, ap)
			}
		}
	default:
		k.add(errors.New("multicast, unicast: one is required"))
	}
	c.Transport.ReadBuffer = number(k, "read_buffer", f.ReadBuffer, 8<<20, 4096, 1<<30)
}

// timing checks the protocol's periods. Heartbeats bound tail-loss
// detection, so a second-long heartbeat is the slowest useful one.
func (k *checker) timing(f *File, c *Config) {
	c.Heartbeat = k.dur("timing.heartbeat", f.Timing.Heartbeat, 100*time.Millisecond, 10*time.Millisecond, time.Minute)
	c.Tick = k.dur("timing.tick", f.Timing.Tick, 5*time.Millisecond, time.Millisecond, time.Second)
	c.Flush = k.dur("timing.flush", f.Timing.Flush, 2*time.Millisecond, 100*time.Microsecond, time.Second)
	c.Refresh = k.dur("timing.refresh", f.Timing.Refresh, 60*time.Second, time.Second, 24*time.Hour)
	c.Expire = k.dur("timing.expire", f.Timing.Expire, time.Second, 10*time.Millisecond, time.Hour)
}

// reliable checks the NACK-driven retransmission's sizes and periods.
func (k *checker) reliable(f *File, c *Config) {
	r := f.Reliable
	nd := k.dur("reliable.nack_delay", r.NackDelay, 2*time.Millisecond, 100*time.Microsecond, 10*time.Second)
	ni := k.dur("reliable.nack_interval", r.NackInterval, 30*time.Millisecond, time.Millisecond, time.Minute)
	c.Reliable = reliable.Config{
		Window:    number(k, "reliable.window", r.Window, 8192, 64, 1<<20),
		RingSize:  number(k, "reliable.ring", r.Ring, 8192, 64, 1<<20),
		MaxNacks:  number(k, "reliable.max_nacks", r.MaxNacks, 10, 1, 100),
		NackDelay: int64(nd), NackInterval: int64(ni),
	}
}

// local checks what concerns this process only: state directory, backend
// and log level.
func (k *checker) local(f *File, c *Config) {
	c.StateDir = f.StateDir
	if c.StateDir == "" {
		c.StateDir = DefaultStateDir
	} else if !filepath.IsAbs(c.StateDir) {
		k.fail("state_dir", c.StateDir, "want an absolute path")
	}
	switch c.Backend {
	case "":
		c.Backend = "memory"
	case "memory", "conntrack", "ipvs":
	default:
		k.add(fmt.Errorf("backend: %q is not memory, conntrack or ipvs", c.Backend))
	}
	switch c.LogLevel {
	case "":
		c.LogLevel = "info"
	case "debug", "info", "warn", "error":
	default:
		k.add(fmt.Errorf("log_level: %q is not debug, info, warn or error", c.LogLevel))
	}
}

// validIfName reports whether s can name a network interface (the kernel's
// dev_valid_name).
func validIfName(s string) bool {
	return len(s) >= 1 && len(s) < 16 && s != "." && s != ".." && !strings.ContainsAny(s, "/: \t\n")
}
