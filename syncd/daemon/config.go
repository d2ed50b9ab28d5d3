package daemon

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"path/filepath"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/saru-lb/saru/syncd/reliable"
	"github.com/saru-lb/saru/syncd/transport"
	"github.com/saru-lb/saru/syncd/wire"
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
	MTU           int    `yaml:"mtu"`
	Multicast     *struct {
		Group     string `yaml:"group"`
		Port      uint16 `yaml:"port"`
		Interface string `yaml:"interface"`
		TTL       int    `yaml:"ttl"`
		Loopback  bool   `yaml:"loopback"`
	} `yaml:"multicast"`
	Unicast *struct {
		Listen string   `yaml:"listen"`
		Peers  []string `yaml:"peers"`
	} `yaml:"unicast"`
	ReadBuffer int `yaml:"read_buffer"`
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
		Window       uint64 `yaml:"window"`
		Ring         int    `yaml:"ring"`
		NackDelay    string `yaml:"nack_delay"`
		NackInterval string `yaml:"nack_interval"`
		MaxNacks     int    `yaml:"max_nacks"`
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

func dur(field, s string, def time.Duration) (time.Duration, error) {
	if s == "" {
		return def, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("%s: %q is not a positive duration (e.g. 100ms, 5s)", field, s)
	}
	return d, nil
}

// Check turns the file into a checked Config.
func (f *File) Check() (Config, error) {
	c := Config{
		NodeID: f.NodeID, APIListen: f.APIListen, Advertise: f.Advertise, MetricsListen: f.MetricsListen,
		KeyFile: f.KeyFile, StateDir: f.StateDir, MTU: f.MTU, SnapshotPeers: f.Snapshot.Peers, Backend: f.Backend, LogLevel: f.LogLevel,
	}
	var errs []error
	add := func(err error) {
		if err != nil {
			errs = append(errs, err)
		}
	}
	if c.NodeID == "" {
		add(errors.New("node_id: missing"))
	} else if len(c.NodeID) > wire.MaxSenderLen || strings.ContainsAny(c.NodeID, " \t\n") {
		add(fmt.Errorf("node_id: %q must be 1-%d characters without spaces", c.NodeID, wire.MaxSenderLen))
	}
	if c.APIListen == "" {
		add(errors.New("api_listen: missing"))
	} else if _, err := netip.ParseAddrPort(c.APIListen); err != nil {
		add(fmt.Errorf("api_listen: %q is not address:port", c.APIListen))
	}
	if c.Advertise == "" {
		c.Advertise = c.APIListen
		if ap, err := netip.ParseAddrPort(c.APIListen); err == nil && ap.Addr().IsUnspecified() {
			add(fmt.Errorf("advertise: required when api_listen %s is a wildcard address (peers dial it for snapshots)", c.APIListen))
		}
	} else if _, err := netip.ParseAddrPort(c.Advertise); err != nil {
		add(fmt.Errorf("advertise: %q is not address:port", c.Advertise))
	}
	if c.KeyFile == "" {
		add(errors.New("key_file: missing"))
	}
	if c.StateDir == "" {
		c.StateDir = DefaultStateDir
	} else if !filepath.IsAbs(c.StateDir) {
		add(fmt.Errorf("state_dir: %q is not an absolute path", c.StateDir))
	}
	if c.MTU == 0 {
		c.MTU = DefaultMTU
	}
	if c.MTU < 576 || c.MTU > 65535 {
		add(fmt.Errorf("mtu: %d not in 576-65535", c.MTU))
	}
	var err error
	c.KeyGrace, err = dur("key_grace", f.KeyGrace, DefaultKeyGrace)
	add(err)
	c.SnapshotWait, err = dur("snapshot.wait", f.Snapshot.Wait, 3*time.Second)
	add(err)
	c.Heartbeat, err = dur("timing.heartbeat", f.Timing.Heartbeat, 100*time.Millisecond)
	add(err)
	c.Tick, err = dur("timing.tick", f.Timing.Tick, 5*time.Millisecond)
	add(err)
	c.Flush, err = dur("timing.flush", f.Timing.Flush, 2*time.Millisecond)
	add(err)
	c.Refresh, err = dur("timing.refresh", f.Timing.Refresh, 60*time.Second)
	add(err)
	c.Expire, err = dur("timing.expire", f.Timing.Expire, time.Second)
	add(err)
	nd, err := dur("reliable.nack_delay", f.Reliable.NackDelay, 2*time.Millisecond)
	add(err)
	ni, err := dur("reliable.nack_interval", f.Reliable.NackInterval, 30*time.Millisecond)
	add(err)
	c.Reliable = reliable.Config{Window: f.Reliable.Window, RingSize: f.Reliable.Ring, NackDelay: int64(nd), NackInterval: int64(ni), MaxNacks: f.Reliable.MaxNacks}
	if f.Reliable.Ring < 0 || f.Reliable.Ring > 1<<20 {
		add(fmt.Errorf("reliable.ring: %d not in 0-%d", f.Reliable.Ring, 1<<20))
	}
	if f.Reliable.Window > 1<<20 {
		add(fmt.Errorf("reliable.window: %d exceeds %d", f.Reliable.Window, 1<<20))
	}
	if f.Reliable.MaxNacks < 0 {
		add(fmt.Errorf("reliable.max_nacks: %d is negative", f.Reliable.MaxNacks))
	}
	switch {
	case f.Multicast != nil && f.Unicast != nil:
		add(errors.New("multicast, unicast: set one, not both"))
	case f.Multicast != nil:
		m := f.Multicast
		g, err := netip.ParseAddr(m.Group)
		if err != nil || !g.IsMulticast() {
			add(fmt.Errorf("multicast.group: %q is not a multicast address", m.Group))
		}
		port := m.Port
		if port == 0 {
			port = DefaultPort
		}
		if m.TTL < 0 || m.TTL > 255 {
			add(fmt.Errorf("multicast.ttl: %d not in 0-255", m.TTL))
		}
		c.Transport = transport.Config{Group: g, Port: port, Interface: m.Interface, TTL: m.TTL, Loopback: m.Loopback}
	case f.Unicast != nil:
		u := f.Unicast
		l, err := netip.ParseAddrPort(u.Listen)
		if err != nil {
			add(fmt.Errorf("unicast.listen: %q is not address:port", u.Listen))
		}
		c.Transport = transport.Config{Listen: l}
		if len(u.Peers) == 0 {
			add(errors.New("unicast.peers: empty"))
		}
		for i, p := range u.Peers {
			ap, err := netip.ParseAddrPort(p)
			if err != nil {
				add(fmt.Errorf("unicast.peers[%d]: %q is not address:port", i, p))
				continue
			}
			c.Transport.Peers = append(c.Transport.Peers, ap)
		}
	default:
		add(errors.New("multicast, unicast: one is required"))
	}
	c.Transport.ReadBuffer = f.ReadBuffer
	if c.Transport.ReadBuffer == 0 {
		c.Transport.ReadBuffer = 8 << 20
	}
	switch c.Backend {
	case "":
		c.Backend = "memory"
	case "memory", "conntrack", "ipvs":
	default:
		add(fmt.Errorf("backend: %q is not memory, conntrack or ipvs", c.Backend))
	}
	switch c.LogLevel {
	case "":
		c.LogLevel = "info"
	case "debug", "info", "warn", "error":
	default:
		add(fmt.Errorf("log_level: %q is not debug, info, warn or error", c.LogLevel))
	}
	if len(errs) > 0 {
		return Config{}, fmt.Errorf("config: %w", errors.Join(errs...))
	}
	return c, nil
}
