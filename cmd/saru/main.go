// Command saru is the director coordinator daemon: membership, leader,
// bucket assignment, the nftables filter and the saru.v1.Cluster gRPC API.
//
//	saru -config /etc/saru/saru.yaml [-id dir1] [-grpc-listen :7400] ...
//
// SIGTERM drains the director (its buckets move to peers once they hold
// its connections), leaves the cluster and removes the filter table.
// SIGKILL is handled by the peers' failure detection.
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/saru-lb/saru/filter"
	"github.com/saru-lb/saru/filter/sharedmac"
	sarupb "github.com/saru-lb/saru/proto/saru/v1"
	"github.com/saru-lb/saru/saru/config"
	"github.com/saru-lb/saru/saru/ipvs"
	"github.com/saru-lb/saru/saru/node"
	"github.com/saru-lb/saru/saru/services"
)

var version = "dev"

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "saru:", err)
		os.Exit(1)
	}
}

type flags struct {
	config, id, grpcListen, gossipBind, seeds, joinDelay, syncd, logLevel, metrics string
	noFilter, noInterface, showVersion, checkOnly                                  bool
}

func run() error {
	var f flags
	fs := flag.NewFlagSet("saru", flag.ContinueOnError)
	fs.StringVar(&f.config, "config", "/etc/saru/saru.yaml", "configuration file")
	fs.StringVar(&f.id, "id", "", "override node.id")
	fs.StringVar(&f.grpcListen, "grpc-listen", "", "override grpc.listen")
	fs.StringVar(&f.gossipBind, "gossip-bind", "", "override gossip.bind (ip:port)")
	fs.StringVar(&f.seeds, "seeds", "", "override gossip.seeds (comma-separated host:port)")
	fs.StringVar(&f.joinDelay, "join-delay", "", "override join_delay")
	fs.StringVar(&f.syncd, "syncd", "", "override syncd.address")
	fs.StringVar(&f.metrics, "metrics-listen", "", "override metrics.listen")
	fs.StringVar(&f.logLevel, "log-level", "", "override log_level")
	fs.BoolVar(&f.noFilter, "no-filter", false, "do not install nftables rules (membership and API only; for testing)")
	fs.BoolVar(&f.noInterface, "no-interface", false, "do not configure the shared MAC and VIPs on the interface")
	fs.BoolVar(&f.checkOnly, "check", false, "validate the configuration and exit")
	fs.BoolVar(&f.showVersion, "version", false, "print the version and exit")
	if err := fs.Parse(os.Args[1:]); err != nil {
		return err
	}
	if f.showVersion {
		fmt.Println(version)
		return nil
	}
	cfg, err := load(f)
	if err != nil {
		return err
	}
	if f.checkOnly {
		fmt.Printf("%s: ok (node %s, %d services, %d buckets)\n", f.config, cfg.ID, len(cfg.Services), cfg.Buckets)
		return nil
	}
	var lvl slog.Level
	_ = lvl.UnmarshalText([]byte(cfg.LogLevel))
	log := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: lvl}))
	slog.SetDefault(log)
	return daemon(cfg, f, log)
}

func load(f flags) (config.Config, error) {
	b, err := os.ReadFile(f.config)
	if err != nil {
		return config.Config{}, fmt.Errorf("read config: %w", err)
	}
	raw, err := config.Parse(b)
	if err != nil {
		return config.Config{}, fmt.Errorf("%s: %w", f.config, err)
	}
	set := func(dst *string, v string) {
		if v != "" {
			*dst = v
		}
	}
	set(&raw.Node.ID, f.id)
	set(&raw.GRPC.Listen, f.grpcListen)
	set(&raw.Gossip.Bind, f.gossipBind)
	set(&raw.JoinDelay, f.joinDelay)
	set(&raw.Syncd.Address, f.syncd)
	set(&raw.Metrics.Listen, f.metrics)
	set(&raw.LogLevel, f.logLevel)
	if f.seeds != "" {
		raw.Gossip.Seeds = strings.Split(f.seeds, ",")
	}
	cfg, err := config.For(raw)
	if err != nil {
		return config.Config{}, fmt.Errorf("%s: %w", f.config, err)
	}
	return cfg, nil
}

func daemon(cfg config.Config, f flags, log *slog.Logger) error {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	opts := node.Options{Config: cfg, Logger: log, Version: version, FilterTable: "inet " + filter.DefaultTable}
	if cfg.TokenFile != "" {
		b, err := os.ReadFile(cfg.TokenFile)
		if err != nil {
			return fmt.Errorf("grpc.token_file: %w", err)
		}
		opts.Token = strings.TrimSpace(string(b))
		if len(opts.Token) < 16 {
			return fmt.Errorf("grpc.token_file %s: token must be at least 16 characters", cfg.TokenFile)
		}
	}
	if cfg.GossipKeyFile != "" {
		b, err := os.ReadFile(cfg.GossipKeyFile)
		if err != nil {
			return fmt.Errorf("gossip.key_file: %w", err)
		}
		key, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(b)))
		if err != nil || (len(key) != 16 && len(key) != 24 && len(key) != 32) {
			return fmt.Errorf("gossip.key_file %s: want a base64 16, 24 or 32-byte key", cfg.GossipKeyFile)
		}
		opts.GossipKey = key
	}
	if cfg.CertFile != "" {
		server, client, err := tlsCreds(cfg)
		if err != nil {
			return err
		}
		opts.ServerCreds, opts.ClientCreds = server, client
	}

	if cfg.StateDir != "" {
		if err := os.MkdirAll(cfg.StateDir, 0o750); err != nil {
			log.Warn("state_dir unusable: an operator's drain will not survive a restart", "state_dir", cfg.StateDir, "err", err)
		} else {
			opts.DrainMarker = filepath.Join(cfg.StateDir, "drained")
		}
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	opts.Registry = reg

	if f.noFilter {
		opts.Filter = &nullFilter{}
		log.Warn("running without a filter: this director accepts every packet")
	} else {
		fl, err := openFilter(ctx, cfg, log)
		if err != nil {
			return err
		}
		defer func() {
			cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := fl.f.Close(cctx); err != nil {
				log.Error("remove filter table", "err", err)
			}
		}()
		opts.Filter = fl
	}
	if cfg.Interface != "" && !f.noInterface {
		undo, err := setupInterface(ctx, cfg, log)
		if err != nil {
			return err
		}
		defer undo()
	}
	if ipvsClient, err := ipvs.Dial(ipvs.Config{}); err != nil {
		log.Warn("IPVS not available: ListServices disabled", "err", err)
	} else {
		defer ipvsClient.Close()
		opts.Services = services.Lister{Kernel: ipvsClient}
	}
	if cfg.SyncdAddress != "" {
		conn, err := grpc.NewClient(cfg.SyncdAddress, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			return fmt.Errorf("syncd.address %s: %w", cfg.SyncdAddress, err)
		}
		defer conn.Close()
		opts.Sync = node.NewSyncdClient(conn, cfg.MaxSyncLag)
	} else {
		log.Warn("no syncd configured: joins wait join_delay, drains wait drain.confirm_timeout", "join_delay", cfg.JoinDelay, "confirm_timeout", cfg.DrainConfirmTimeout)
	}

	n, err := node.New(opts)
	if err != nil {
		return err
	}
	if err := n.Start(ctx); err != nil {
		return err
	}
	if cfg.MetricsListen != "" {
		srv := &http.Server{Addr: cfg.MetricsListen, Handler: promhttp.HandlerFor(reg, promhttp.HandlerOpts{}), ReadHeaderTimeout: 5 * time.Second}
		go func() {
			if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
				log.Error("metrics server", "err", err)
			}
		}()
		defer srv.Close()
	}
	notify(log, "READY=1\nSTATUS=serving")

	<-ctx.Done()
	stop()
	notify(log, "STOPPING=1\nSTATUS=draining")
	log.Info("stopping: draining before leaving")
	dctx, cancel := context.WithTimeout(context.Background(), cfg.DrainTimeout)
	if e, err := n.DrainSelf(dctx); err != nil {
		log.Warn("drain before exit incomplete; leaving anyway", "err", err)
	} else {
		log.Info("drained", "epoch", e)
	}
	cancel()
	if err := n.Leave(2 * time.Second); err != nil {
		log.Warn("leave", "err", err)
	}
	n.Stop()
	log.Info("stopped")
	return nil
}

// notify sends a systemd readiness notification when run under systemd
// (Type=notify): a datagram to $NOTIFY_SOCKET.
func notify(log *slog.Logger, state string) {
	path := os.Getenv("NOTIFY_SOCKET")
	if path == "" {
		return
	}
	if strings.HasPrefix(path, "@") {
		path = "\x00" + path[1:]
	}
	conn, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		log.Warn("sd_notify", "err", err)
		return
	}
	defer conn.Close()
	if _, err := conn.Write([]byte(state)); err != nil {
		log.Warn("sd_notify", "err", err)
	}
}

func tlsCreds(cfg config.Config) (server, client credentials.TransportCredentials, err error) {
	cert, err := tls.LoadX509KeyPair(cfg.CertFile, cfg.KeyFile)
	if err != nil {
		return nil, nil, fmt.Errorf("grpc.cert_file/key_file: %w", err)
	}
	st := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS13}
	ct := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS13}
	if cfg.ClientCAFile != "" {
		pem, err := os.ReadFile(cfg.ClientCAFile)
		if err != nil {
			return nil, nil, fmt.Errorf("grpc.client_ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, nil, fmt.Errorf("grpc.client_ca_file %s: no PEM certificates", cfg.ClientCAFile)
		}
		// Reads stay open; a verified client certificate authorises drain
		// and undrain.
		st.ClientAuth, st.ClientCAs = tls.VerifyClientCertIfGiven, pool
		ct.RootCAs = pool
	}
	return credentials.NewTLS(st), credentials.NewTLS(ct), nil
}

// setupInterface gives the interface the shared MAC (when configured) and
// the VIPs, and reports kernel settings that break a shared-MAC director.
// The returned function removes the VIPs.
func setupInterface(ctx context.Context, cfg config.Config, log *slog.Logger) (func(), error) {
	h, err := sharedmac.Dial()
	if err != nil {
		return nil, fmt.Errorf("interface %s: %w", cfg.Interface, err)
	}
	if cfg.SharedMAC != nil {
		if err := h.SetMAC(ctx, cfg.Interface, cfg.SharedMAC); err != nil {
			h.Close()
			return nil, fmt.Errorf("shared_mac: %w", err)
		}
	}
	var vips []netip.Addr
	var prefixes []netip.Prefix
	for _, s := range cfg.Services {
		if !slices.Contains(vips, s.VIP) {
			vips = append(vips, s.VIP)
			prefixes = append(prefixes, netip.PrefixFrom(s.VIP, s.VIP.BitLen()))
		}
	}
	if err := h.AddVIPs(ctx, cfg.Interface, prefixes); err != nil {
		h.Close()
		return nil, fmt.Errorf("interface %s: %w", cfg.Interface, err)
	}
	problems, err := h.Check(ctx, cfg.Interface, vips)
	if err != nil {
		log.Warn("check interface settings", "interface", cfg.Interface, "err", err)
	}
	for _, p := range problems {
		lvl := slog.LevelWarn
		if p.Severity == sharedmac.Fatal {
			lvl = slog.LevelError
		}
		log.Log(ctx, lvl, "interface setting", "interface", cfg.Interface, "problem", p.String())
	}
	log.Info("interface ready", "interface", cfg.Interface, "vips", len(prefixes), "shared_mac", cfg.SharedMAC.String())
	return func() {
		rctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := h.RemoveVIPs(rctx, cfg.Interface, prefixes); err != nil {
			log.Error("remove VIPs", "err", err)
		}
		h.Close()
	}, nil
}

// nftFilter adapts package filter to node.Filter.
type nftFilter struct {
	f       *filter.Filter
	buckets int
}

func openFilter(ctx context.Context, cfg config.Config, log *slog.Logger) (*nftFilter, error) {
	fc := filter.Config{Buckets: cfg.Buckets, Seed: cfg.Seed}
	for i, s := range cfg.Services {
		p, err := filter.ParseProtocol(s.Protocol)
		if err != nil {
			return nil, fmt.Errorf("services[%d].protocol: %w", i, err)
		}
		sense, err := filter.ParseSense(s.Sense.String())
		if err != nil {
			return nil, fmt.Errorf("services[%d].sense: %w", i, err)
		}
		fc.Services = append(fc.Services, filter.Service{VIP: s.VIP, Protocol: p, Port: s.Port, Sense: sense})
	}
	f, err := filter.Open(ctx, fc, filter.WithLogger(log.With("component", "filter")))
	if err != nil {
		return nil, fmt.Errorf("install filter: %w", err)
	}
	return &nftFilter{f: f, buckets: cfg.Buckets}, nil
}

func (a *nftFilter) Apply(ctx context.Context, owned []uint32) error {
	s, err := filter.NewBucketSet(a.buckets, owned...)
	if err != nil {
		return err
	}
	return a.f.Apply(ctx, s)
}

func (a *nftFilter) Counters(ctx context.Context) ([]*sarupb.RuleCounter, error) {
	rs, err := a.f.Counters(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]*sarupb.RuleCounter, 0, len(rs))
	for _, r := range rs {
		out = append(out, &sarupb.RuleCounter{Chain: r.Chain, Handle: r.Handle, Description: r.Description, Packets: r.Packets, Bytes: r.Bytes})
	}
	return out, nil
}

// nullFilter installs nothing (-no-filter).
type nullFilter struct{}

func (nullFilter) Apply(context.Context, []uint32) error { return nil }
func (nullFilter) Counters(context.Context) ([]*sarupb.RuleCounter, error) {
	return nil, errors.New("no filter installed (-no-filter)")
}
