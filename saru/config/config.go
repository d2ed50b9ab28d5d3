package config

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/saru-lb/saru/filter/bucket"
	"github.com/saru-lb/saru/saru/ipvs"
	"github.com/saru-lb/saru/saru/services"
)

// Raw is the configuration file as written. Durations are Go duration
// strings ("200ms", "30s").
type Raw struct {
	// Node describes this director.
	Node struct {
		ID   string `yaml:"id"`
		Name string `yaml:"name"`
		// Weight is nil when the file leaves it out (then 1); an explicit
		// value is never rewritten.
		Weight *int `yaml:"weight"`
	} `yaml:"node"`
	// Interface carries the VIPs (shared VIP and MAC).
	Interface string `yaml:"interface"`
	// SharedMAC is the MAC every director uses on Interface (optional).
	SharedMAC string       `yaml:"shared_mac"`
	Services  []RawService `yaml:"services"`
	// NAT turns on the LVS-NAT filter rules: the real servers' networks,
	// whose replies only the owner of the client's bucket forwards.
	NAT struct {
		RealServers []string `yaml:"real_servers"`
	} `yaml:"nat"`
	// Buckets defaults to 4096 when left out; HashSeed must be set,
	// non-zero.
	Buckets  *int   `yaml:"buckets"`
	HashSeed string `yaml:"hash_seed"`
	GRPC     struct {
		Listen    string `yaml:"listen"`
		Advertise string `yaml:"advertise"`
		TokenFile string `yaml:"token_file"`
		CertFile  string `yaml:"cert_file"`
		KeyFile   string `yaml:"key_file"`
		ClientCA  string `yaml:"client_ca_file"`
	} `yaml:"grpc"`
	Metrics struct {
		Listen string `yaml:"listen"`
	} `yaml:"metrics"`
	Gossip struct {
		Bind           string   `yaml:"bind"`
		Advertise      string   `yaml:"advertise"`
		Seeds          []string `yaml:"seeds"`
		ProbeInterval  string   `yaml:"probe_interval"`
		ProbeTimeout   string   `yaml:"probe_timeout"`
		SuspicionMult  *int     `yaml:"suspicion_mult"`
		GossipInterval string   `yaml:"gossip_interval"`
		KeyFile        string   `yaml:"key_file"`
	} `yaml:"gossip"`
	Tick         string `yaml:"tick"`
	JoinDelay    string `yaml:"join_delay"`
	Settle       string `yaml:"settle"`
	FastFailover *bool  `yaml:"fast_failover"`
	Drain        struct {
		ConfirmTimeout string `yaml:"confirm_timeout"`
		MaxSyncLag     string `yaml:"max_sync_lag"`
		Timeout        string `yaml:"timeout"`
	} `yaml:"drain"`
	Syncd struct {
		Address string `yaml:"address"`
	} `yaml:"syncd"`
	IPVS struct {
		// ResyncInterval is how often the director re-reads IPVS and
		// repairs differences from the configured services ("0s": only at
		// start and reload).
		ResyncInterval string `yaml:"resync_interval"`
	} `yaml:"ipvs"`
	// StateDir keeps what must survive a restart (an operator's drain).
	StateDir string `yaml:"state_dir"`
	LogLevel string `yaml:"log_level"`
}

// RawService is one virtual service as written. VIP, Protocol, Port and
// Sense say which packets the filter splits into buckets. The other fields
// are the service's IPVS side, with the names and meaning of package
// saru/services (ipvsadm and ldirectord semantics); a service that sets none
// of them is not an IPVS service and saru leaves IPVS alone for it.
type RawService struct {
	VIP      string `yaml:"vip"`
	Protocol string `yaml:"protocol"`
	Port     int    `yaml:"port"`
	Sense    string `yaml:"sense"`

	// Name labels the service in errors and logs.
	Name string `yaml:"name"`
	// FWMark makes the IPVS service select packets by firewall mark (the
	// family is the VIP's); VIP, Protocol and Port still drive the filter.
	FWMark uint32 `yaml:"fwmark"`
	// Scheduler is rr, wrr, lc, wlc (default), lblc, lblcr, dh, sh, sed,
	// nq, mh, fo or ovf.
	Scheduler          string   `yaml:"scheduler"`
	SchedulerFlags     []string `yaml:"scheduler_flags"`
	OnePacket          bool     `yaml:"one_packet"`
	PersistenceTimeout int64    `yaml:"persistence_timeout"`
	PersistenceNetmask string   `yaml:"persistence_netmask"`
	// Forwarding is the real servers' default: route (default), masq or
	// tunnel.
	Forwarding string `yaml:"forwarding"`
	// RealServers with weights (0 = quiescent) and thresholds. An empty
	// list ("real_servers: []") makes an IPVS service with no real servers.
	RealServers []services.RealServerConfig `yaml:"real_servers"`
}

// IsIPVS reports whether the service has an IPVS side.
func (s RawService) IsIPVS() bool {
	return s.RealServers != nil || s.FWMark != 0 || s.Scheduler != "" || len(s.SchedulerFlags) > 0 || s.OnePacket ||
		s.PersistenceTimeout != 0 || s.PersistenceNetmask != "" || s.Forwarding != ""
}

// Service is a checked virtual service.
type Service struct {
	VIP netip.Addr
	// Protocols are bucket.TCP, bucket.UDP or both ("both" in the file).
	Protocols []bucket.Protocol
	// Port 0 means every port.
	Port  uint16
	Sense bucket.Sense
	// Name is the configured label (may be empty).
	Name string
	// IPVS is the service's IPVS side: one entry per IPVS service (protocol
	// "both" gives a tcp and a udp service; a fwmark service is one), nil
	// when the service is for the filter only.
	IPVS []ipvs.Entry
}

// Config is a checked configuration with defaults filled in.
type Config struct {
	ID, Name  string
	Weight    int
	Interface string
	SharedMAC net.HardwareAddr
	Services  []Service
	// NATRealServers are the real servers' networks in LVS-NAT mode; empty
	// when the directors do not NAT.
	NATRealServers []netip.Prefix
	Buckets        int
	Seed           uint32

	GRPCListen    string
	GRPCAdvertise string
	TokenFile     string
	CertFile      string
	KeyFile       string
	ClientCAFile  string
	MetricsListen string

	GossipBind      netip.AddrPort
	GossipAdvertise netip.AddrPort
	Seeds           []string
	ProbeInterval   time.Duration
	ProbeTimeout    time.Duration
	SuspicionMult   int
	GossipInterval  time.Duration
	GossipKeyFile   string

	Tick                time.Duration
	JoinDelay           time.Duration
	Settle              time.Duration
	FastFailover        bool
	DrainConfirmTimeout time.Duration
	MaxSyncLag          time.Duration
	DrainTimeout        time.Duration
	SyncdAddress        string
	IPVSResync          time.Duration
	StateDir            string
	LogLevel            string
}

// Defaults.
const (
	DefaultGRPCListen     = ":7400"
	DefaultGossipBind     = "0.0.0.0:7946"
	DefaultProbeInterval  = 100 * time.Millisecond
	DefaultProbeTimeout   = 50 * time.Millisecond
	DefaultSuspicionMult  = 2
	DefaultGossipInterval = 50 * time.Millisecond
	DefaultTick           = 100 * time.Millisecond
	DefaultJoinDelay      = 30 * time.Second
	DefaultSettle         = 2 * time.Second
	DefaultConfirmTimeout = 10 * time.Second
	DefaultMaxSyncLag     = time.Second
	DefaultDrainTimeout   = 60 * time.Second
	DefaultStateDir       = "/var/lib/saru"
	DefaultIPVSResync     = 30 * time.Second
	// MaxWeight is the largest node.weight.
	MaxWeight = 1000
)

// Parse decodes a YAML configuration. Unknown fields are errors.
func Parse(b []byte) (Raw, error) {
	var r Raw
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&r); err != nil {
		return Raw{}, fmt.Errorf("parse config: %w", err)
	}
	return r, nil
}

// FieldError names the field at fault.
type FieldError struct {
	Field, Value, Msg string
}

func (e *FieldError) Error() string {
	return fmt.Sprintf("%s: invalid value %q: %s", e.Field, e.Value, e.Msg)
}

func ferr(field string, value any, format string, args ...any) error {
	return &FieldError{Field: field, Value: fmt.Sprint(value), Msg: fmt.Sprintf(format, args...)}
}

// For checks r and fills defaults. The error lists every bad field: each
// section is checked on its own and adds its problems to one list.
func For(r Raw) (Config, error) {
	var k checker
	c := Config{Interface: r.Interface}
	k.node(r, &c)
	k.sharedMAC(r, &c)
	k.nat(r, &c)
	k.buckets(r, &c)
	k.services(r, &c)
	k.grpc(r, &c)
	k.metrics(r, &c)
	k.gossip(r, &c)
	k.timing(r, &c)
	k.syncd(r, &c)
	k.local(r, &c)
	if len(k.errs) > 0 {
		return Config{}, fmt.Errorf("config: %w", errors.Join(k.errs...))
	}
	return c, nil
}

// checker collects the problems of every section.
type checker struct {
	errs []error
}

func (k *checker) fail(field string, value any, format string, args ...any) {
	k.errs = append(k.errs, ferr(field, value, format, args...))
}

// duration parses v, def when empty; outside lo..hi is an error. The
// bounds keep a daemon out of what cripples it (a 1ns heartbeat) while
// leaving room for any sane deployment.
func (k *checker) duration(field, v string, def, lo, hi time.Duration) time.Duration {
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < lo || d > hi {
		k.fail(field, v, "want a duration from %s to %s, like \"%s\"", lo, hi, def)
	}
	return d
}

// hostPort checks a host:port field; the host may be empty (every
// address) only for a listen address.
func (k *checker) hostPort(field, v string, listen bool) {
	if err := CheckHostPort(v, listen); err != nil {
		k.fail(field, v, "%v", err)
	}
}

// CheckHostPort checks a host:port address: a port from 1 to 65535, and a
// host unless listen allows an empty one (every local address).
func CheckHostPort(v string, listen bool) error {
	host, port, err := net.SplitHostPort(v)
	if err != nil {
		return errors.New("want host:port with a port from 1 to 65535")
	}
	if p, err := strconv.ParseUint(port, 10, 16); err != nil || p == 0 {
		return fmt.Errorf("port %q: want 1 to 65535", port)
	}
	if host == "" && !listen {
		return errors.New("want host:port: the host is missing")
	}
	return nil
}

// node checks the node section: the director's id, name and weight.
func (k *checker) node(r Raw, c *Config) {
	c.ID, c.Name, c.Weight = r.Node.ID, r.Node.Name, 1
	if err := CheckID(c.ID); err != nil {
		k.fail("node.id", c.ID, "%v", err)
	}
	if c.Name == "" {
		c.Name = c.ID
	}
	if r.Node.Weight != nil {
		c.Weight = *r.Node.Weight
		if c.Weight < 1 || c.Weight > MaxWeight {
			k.fail("node.weight", c.Weight, "want 1 to %d (leave it out for 1; drain a director to take its buckets away)", MaxWeight)
		}
	}
}

func (k *checker) sharedMAC(r Raw, c *Config) {
	if r.SharedMAC == "" {
		return
	}
	mac, err := net.ParseMAC(r.SharedMAC)
	if err != nil || len(mac) != 6 {
		k.fail("shared_mac", r.SharedMAC, "want a 6-byte MAC like 02:00:5e:00:00:01")
	}
	c.SharedMAC = mac
}

// nat checks the real servers' networks of LVS-NAT mode.
func (k *checker) nat(r Raw, c *Config) {
	for i, v := range r.NAT.RealServers {
		p, err := netip.ParsePrefix(v)
		if err != nil {
			k.fail(fmt.Sprintf("nat.real_servers[%d]", i), v, "want a network like 10.0.1.0/24")
			continue
		}
		c.NATRealServers = append(c.NATRealServers, p.Masked())
	}
}

// buckets checks the bucket count and the cluster's hash seed.
func (k *checker) buckets(r Raw, c *Config) {
	c.Buckets = bucket.Default
	if r.Buckets != nil {
		c.Buckets = *r.Buckets
	}
	if bucket.CheckCount(c.Buckets) != nil {
		k.fail("buckets", c.Buckets, "want a power of two from %d to %d", bucket.Min, bucket.Max)
	}
	if r.HashSeed == "" {
		k.fail("hash_seed", "", "required: an explicit non-zero 32-bit seed shared by every director")
	} else if s, err := strconv.ParseUint(r.HashSeed, 0, 32); err != nil || s == 0 {
		k.fail("hash_seed", r.HashSeed, "want a non-zero 32-bit number (decimal or 0x hex)")
	} else {
		c.Seed = uint32(s)
	}
}

// services checks the virtual services: each one's filter side, overlaps
// between them, and their IPVS sides.
func (k *checker) services(r Raw, c *Config) {
	if len(r.Services) == 0 {
		k.fail("services", "[]", "at least one virtual service is required")
	}
	ipvsSeen := map[ipvs.ServiceID]int{}
	for i, s := range r.Services {
		f := fmt.Sprintf("services[%d]", i)
		svc := k.service(f, s)
		overlap := false
		for j, o := range c.Services {
			if o.VIP == svc.VIP && o.Port == svc.Port && sharesProtocol(o.Protocols, svc.Protocols) {
				k.fail(f, s.VIP, "overlaps services[%d]", j)
				overlap = true
			}
		}
		if s.IsIPVS() && svc.VIP.IsValid() && len(svc.Protocols) > 0 && !overlap {
			entries, err := ipvsEntries(f, s, svc)
			if err != nil {
				k.errs = append(k.errs, err)
			}
			for _, e := range entries {
				if j, dup := ipvsSeen[e.Service.Key()]; dup {
					k.fail(f+".fwmark", s.FWMark, "IPVS service %s is already defined by services[%d]", e.Service.ServiceID, j)
				}
				ipvsSeen[e.Service.Key()] = i
			}
			svc.IPVS = entries
		}
		c.Services = append(c.Services, svc)
	}
}

// service checks the filter side of service f: VIP, protocol, port, sense.
func (k *checker) service(f string, s RawService) Service {
	svc := Service{Name: s.Name}
	a, err := netip.ParseAddr(s.VIP)
	if err != nil || a.Zone() != "" || a.IsUnspecified() || a.IsMulticast() || a.IsLoopback() {
		k.fail(f+".vip", s.VIP, "want a unicast IPv4 or IPv6 address")
	}
	svc.VIP = a.Unmap()
	if svc.Protocols = parseProtocols(s.Protocol); svc.Protocols == nil {
		k.fail(f+".protocol", s.Protocol, "want tcp, udp or both")
	}
	if s.Port < 0 || s.Port > 65535 {
		k.fail(f+".port", s.Port, "want 0 (every port) to 65535")
	}
	svc.Port = uint16(s.Port)
	sense, err := bucket.ParseSense(s.Sense)
	if err != nil {
		k.fail(f+".sense", s.Sense, "want %s", bucket.SenseNames())
	}
	svc.Sense = sense
	return svc
}

// parseProtocols parses a service's protocol: tcp (the default), udp or
// both; nil if none of these.
func parseProtocols(s string) []bucket.Protocol {
	switch s {
	case "", "tcp":
		return []bucket.Protocol{bucket.TCP}
	case "udp":
		return []bucket.Protocol{bucket.UDP}
	case "both":
		return []bucket.Protocol{bucket.TCP, bucket.UDP}
	}
	return nil
}

func sharesProtocol(a, b []bucket.Protocol) bool {
	return slices.ContainsFunc(a, func(p bucket.Protocol) bool { return slices.Contains(b, p) })
}

// grpc checks the API's listen and advertised addresses and its
// credentials.
func (k *checker) grpc(r Raw, c *Config) {
	c.GRPCAdvertise, c.TokenFile = r.GRPC.Advertise, r.GRPC.TokenFile
	c.CertFile, c.KeyFile, c.ClientCAFile = r.GRPC.CertFile, r.GRPC.KeyFile, r.GRPC.ClientCA
	c.GRPCListen = or(r.GRPC.Listen, DefaultGRPCListen)
	k.hostPort("grpc.listen", c.GRPCListen, true)
	if c.GRPCAdvertise != "" {
		if ap, err := netip.ParseAddrPort(c.GRPCAdvertise); err != nil || ap.Port() == 0 || ap.Addr().IsUnspecified() {
			k.fail("grpc.advertise", c.GRPCAdvertise, "want ip:port, a port from 1 to 65535")
		}
	}
	if (c.CertFile == "") != (c.KeyFile == "") {
		k.fail("grpc.cert_file", c.CertFile, "cert_file and key_file go together")
	}
	if c.ClientCAFile != "" && c.CertFile == "" {
		k.fail("grpc.client_ca_file", c.ClientCAFile, "needs cert_file and key_file")
	}
}

func (k *checker) metrics(r Raw, c *Config) {
	c.MetricsListen = r.Metrics.Listen
	if c.MetricsListen != "" {
		k.hostPort("metrics.listen", c.MetricsListen, true)
	}
}

// gossip checks memberlist's addresses, peers, timings and key.
func (k *checker) gossip(r Raw, c *Config) {
	c.Seeds, c.GossipKeyFile = r.Gossip.Seeds, r.Gossip.KeyFile
	bind := or(r.Gossip.Bind, DefaultGossipBind)
	if ap, err := netip.ParseAddrPort(bind); err != nil || ap.Port() == 0 {
		k.fail("gossip.bind", bind, "want ip:port, a port from 1 to 65535")
	} else {
		c.GossipBind = ap
	}
	if r.Gossip.Advertise != "" {
		if ap, err := netip.ParseAddrPort(r.Gossip.Advertise); err != nil || ap.Port() == 0 || ap.Addr().IsUnspecified() {
			k.fail("gossip.advertise", r.Gossip.Advertise, "want ip:port, a port from 1 to 65535")
		} else {
			c.GossipAdvertise = ap
		}
	}
	for i, s := range c.Seeds {
		k.hostPort(fmt.Sprintf("gossip.seeds[%d]", i), s, false)
	}
	c.ProbeInterval = k.duration("gossip.probe_interval", r.Gossip.ProbeInterval, DefaultProbeInterval, 10*time.Millisecond, time.Minute)
	c.ProbeTimeout = k.duration("gossip.probe_timeout", r.Gossip.ProbeTimeout, DefaultProbeTimeout, 5*time.Millisecond, 30*time.Second)
	c.GossipInterval = k.duration("gossip.gossip_interval", r.Gossip.GossipInterval, DefaultGossipInterval, 5*time.Millisecond, time.Minute)
	if c.ProbeTimeout >= c.ProbeInterval && c.ProbeInterval > 0 {
		k.fail("gossip.probe_timeout", c.ProbeTimeout, "must be shorter than probe_interval (%s)", c.ProbeInterval)
	}
	c.SuspicionMult = DefaultSuspicionMult
	if r.Gossip.SuspicionMult != nil {
		c.SuspicionMult = *r.Gossip.SuspicionMult
		if c.SuspicionMult < 1 || c.SuspicionMult > 10 {
			k.fail("gossip.suspicion_mult", c.SuspicionMult, "want 1 to 10")
		}
	}
}

// timing checks the coordinator's tick, join, drain and IPVS resync times.
// The upper bounds are far beyond any use; they catch a unit slip ("30h"
// for "30s") that would stall a director.
func (k *checker) timing(r Raw, c *Config) {
	c.Tick = k.duration("tick", r.Tick, DefaultTick, time.Millisecond, 10*time.Second)
	c.JoinDelay = k.duration("join_delay", r.JoinDelay, DefaultJoinDelay, 0, time.Hour)
	c.Settle = k.duration("settle", r.Settle, DefaultSettle, 0, 10*time.Minute)
	c.DrainConfirmTimeout = k.duration("drain.confirm_timeout", r.Drain.ConfirmTimeout, DefaultConfirmTimeout, 0, time.Hour)
	c.MaxSyncLag = k.duration("drain.max_sync_lag", r.Drain.MaxSyncLag, DefaultMaxSyncLag, 0, 10*time.Minute)
	c.DrainTimeout = k.duration("drain.timeout", r.Drain.Timeout, DefaultDrainTimeout, time.Second, time.Hour)
	c.FastFailover = r.FastFailover == nil || *r.FastFailover
	c.IPVSResync = k.duration("ipvs.resync_interval", r.IPVS.ResyncInterval, DefaultIPVSResync, 0, 24*time.Hour)
}

func (k *checker) syncd(r Raw, c *Config) {
	c.SyncdAddress = r.Syncd.Address
	if c.SyncdAddress != "" {
		k.hostPort("syncd.address", c.SyncdAddress, false)
	}
}

// local checks what concerns this process only: state directory and log
// level.
func (k *checker) local(r Raw, c *Config) {
	c.StateDir = or(r.StateDir, DefaultStateDir)
	c.LogLevel = or(r.LogLevel, "info")
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		k.fail("log_level", c.LogLevel, "want debug, info, warn or error")
	}
}

// ipvsEntries checks the IPVS side of service f (whose VIP, protocol and
// port are valid) with package services and returns its IPVS services.
func ipvsEntries(f string, s RawService, svc Service) ([]ipvs.Entry, error) {
	o := services.Options{Name: s.Name, Scheduler: s.Scheduler, SchedulerFlags: s.SchedulerFlags, OnePacket: s.OnePacket,
		PersistenceTimeout: s.PersistenceTimeout, PersistenceNetmask: s.PersistenceNetmask, Forwarding: s.Forwarding,
		RealServers: s.RealServers}
	if s.FWMark != 0 {
		e, err := services.Spec{ID: ipvs.ServiceID{FWMark: s.FWMark, Family: ipvs.FamilyOf(svc.VIP)}, Options: o}.Entry(f)
		if err != nil {
			return nil, err
		}
		return []ipvs.Entry{e}, nil
	}
	if svc.Port == 0 && s.PersistenceTimeout == 0 {
		return nil, ferr(f+".port", 0, "an IPVS service on every port needs persistence_timeout, as in ipvsadm")
	}
	var out []ipvs.Entry
	for _, p := range svc.Protocols {
		e, err := services.Spec{ID: ipvs.ServiceID{Protocol: p, Address: netip.AddrPortFrom(svc.VIP, svc.Port)}, Options: o}.Entry(f)
		if err != nil {
			return nil, err // the second protocol would repeat the same errors
		}
		out = append(out, e)
	}
	return out, nil
}

// String names the service as "address:port/protocol", e.g.
// "192.0.2.10:80/tcp" or "192.0.2.10:0/both".
func (s Service) String() string {
	proto := "both"
	if len(s.Protocols) == 1 {
		proto = s.Protocols[0].String()
	}
	return fmt.Sprintf("%s/%s", netip.AddrPortFrom(s.VIP, s.Port), proto)
}

// IPVS returns the IPVS table the configuration describes: every service's
// IPVS side, sorted by service and destination (empty when no service has
// one).
func (c Config) IPVS() []ipvs.Entry {
	var out []ipvs.Entry
	for _, s := range c.Services {
		out = append(out, s.IPVS...)
	}
	slices.SortFunc(out, func(a, b ipvs.Entry) int { return a.Service.Compare(b.Service.ServiceID) })
	return out
}

// Ticks converts a duration to a tick count, rounding up.
func (c Config) Ticks(d time.Duration) int {
	return int((d + c.Tick - 1) / c.Tick)
}

func or(s, d string) string {
	if s == "" {
		return d
	}
	return s
}
