package director

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/saru-lb/saru/filter"
	"github.com/saru-lb/saru/saru/config"
	"github.com/saru-lb/saru/saru/ipvs"
	"github.com/saru-lb/saru/saru/node"
	"github.com/saru-lb/saru/saru/services"
)

// Options configure [Run].
type Options struct {
	// Config is the checked configuration.
	Config config.Config
	// Logger receives the director's logs; nil uses slog.Default.
	Logger *slog.Logger
	// Version is reported by the gRPC API.
	Version string
	// NoFilter runs without nftables rules (membership and API only; for
	// testing): the director accepts every packet.
	NoFilter bool
	// NoInterface leaves the interface's MAC and addresses alone.
	NoInterface bool
	// Reload, when it delivers, makes the director re-read its
	// configuration with Load (SIGHUP). Only the services' IPVS side can
	// change without a restart; any other change is refused and logged, and
	// the director carries on as it was.
	Reload <-chan os.Signal
	// Load reads and checks the configuration again; required with Reload.
	Load func() (config.Config, error)
}

// Run assembles the director and runs it until ctx is done, then drains
// it, leaves the cluster and removes the filter. It returns an error when
// the director cannot start; in particular when IPVS refuses the configured
// services (the error names the service or destination) or the kernel has
// no IPVS while services are configured for it.
func Run(ctx context.Context, opts Options) error {
	cfg := opts.Config
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	nopts := node.Options{Config: cfg, Logger: log, Version: opts.Version, FilterTable: "inet " + filter.DefaultTable}
	if cfg.TokenFile != "" {
		tok, err := readToken(cfg.TokenFile)
		if err != nil {
			return err
		}
		nopts.Token = tok
	}
	if cfg.GossipKeyFile != "" {
		key, err := readGossipKey(cfg.GossipKeyFile)
		if err != nil {
			return err
		}
		nopts.GossipKey = key
	}
	if cfg.CertFile != "" {
		server, client, err := tlsCreds(cfg)
		if err != nil {
			return err
		}
		nopts.ServerCreds, nopts.ClientCreds = server, client
	}

	var record services.Record
	if cfg.StateDir != "" {
		if err := os.MkdirAll(cfg.StateDir, 0o750); err != nil {
			log.Warn("state_dir unusable: an operator's drain will not survive a restart, and IPVS services removed from the configuration while saru is down will stay", "state_dir", cfg.StateDir, "err", err)
		} else {
			nopts.DrainMarker = filepath.Join(cfg.StateDir, "drained")
			record.Path = filepath.Join(cfg.StateDir, services.RecordFile)
		}
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	nopts.Registry = reg
	m := newMetrics(reg)

	// IPVS first: a refusal stops the start before the filter, the
	// interface or the cluster are touched.
	rec, closeIPVS, err := openIPVS(ctx, cfg, record, log, m)
	if err != nil {
		return err
	}
	defer closeIPVS()
	if rec != nil {
		nopts.Services = services.Lister{Kernel: rec.Kernel}
	}

	if opts.NoFilter {
		nopts.Filter = &nullFilter{}
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
		nopts.Filter = fl
	}
	if cfg.Interface != "" && !opts.NoInterface {
		undo, err := setupInterface(ctx, cfg, log)
		if err != nil {
			return err
		}
		defer undo()
	}
	if cfg.SyncdAddress != "" {
		conn, err := grpc.NewClient(cfg.SyncdAddress, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			return fmt.Errorf("syncd.address %s: %w", cfg.SyncdAddress, err)
		}
		defer conn.Close()
		nopts.Sync = node.NewSyncdClient(conn, cfg.MaxSyncLag)
	} else {
		log.Warn("no syncd configured: joins wait join_delay, drains wait drain.confirm_timeout", "join_delay", cfg.JoinDelay, "confirm_timeout", cfg.DrainConfirmTimeout)
	}

	n, err := node.New(nopts)
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
	Notify(log, "READY=1\nSTATUS=serving")

	var resync <-chan time.Time
	if rec != nil && cfg.IPVSResync > 0 {
		tk := time.NewTicker(cfg.IPVSResync)
		defer tk.Stop()
		resync = tk.C
	}
	for running := true; running; {
		select {
		case <-ctx.Done():
			running = false
		case <-resync:
			// Repair what changed behind saru's back (ipvsadm by hand, a
			// restarted module); the configuration is the truth.
			if err := reconcileIPVS(ctx, rec, cfg.IPVS(), m, true); err != nil {
				log.Error("IPVS resync failed; retrying at the next interval", "err", err)
			}
		case <-opts.Reload:
			if opts.Load == nil {
				log.Warn("reload requested but no way to read the configuration")
				continue
			}
			Notify(log, "RELOADING=1")
			if next, err := reload(ctx, cfg, opts.Load, rec, log, m); err != nil {
				log.Error("reload refused; running configuration kept", "err", err)
			} else {
				cfg = next
			}
			Notify(log, "READY=1\nSTATUS=serving")
		}
	}
	Notify(log, "STOPPING=1\nSTATUS=draining")
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
	log.Info("stopped; IPVS services left in place for the next start")
	return nil
}

// openIPVS dials IPVS and reconciles it with the configured services. With
// no IPVS in the kernel it carries on only when no service has an IPVS side.
// The Reconciler is nil when IPVS is unavailable.
func openIPVS(ctx context.Context, cfg config.Config, record services.Record, log *slog.Logger, m *metrics) (*services.Reconciler, func(), error) {
	desired := cfg.IPVS()
	c, err := ipvs.Dial(ipvs.Config{})
	if err != nil {
		if len(desired) > 0 {
			return nil, nil, fmt.Errorf("%d IPVS services configured, but this kernel's IPVS is unavailable (modprobe ip_vs?): %w", len(desired), err)
		}
		log.Warn("IPVS not available; no IPVS services configured, so carrying on (ListServices disabled)", "err", err)
		return nil, func() {}, nil
	}
	rec := &services.Reconciler{Kernel: c, Record: record, Log: log.With("component", "ipvs")}
	if err := reconcileIPVS(ctx, rec, desired, m, false); err != nil {
		c.Close()
		return nil, nil, err
	}
	return rec, func() { c.Close() }, nil
}

// reconcileIPVS reconciles and logs. periodic runs log only changes.
func reconcileIPVS(ctx context.Context, rec *services.Reconciler, desired []ipvs.Entry, m *metrics, periodic bool) error {
	start := time.Now()
	res, err := rec.Reconcile(ctx, desired)
	m.reconcileSeconds.Observe(time.Since(start).Seconds())
	m.foreign.Set(float64(len(res.Foreign)))
	if !periodic {
		for _, id := range res.Foreign {
			rec.Log.Info("IPVS service not in the configuration and not created by saru: left alone", "service", id.String())
		}
	}
	if err != nil {
		m.failures.Inc()
		return err
	}
	for _, op := range res.Ops {
		m.ops.WithLabelValues(op.Kind.String()).Inc()
		rec.Log.Info("IPVS changed", "op", op.String())
	}
	lvl := slog.LevelInfo
	if periodic && len(res.Ops) == 0 {
		lvl = slog.LevelDebug
	}
	rec.Log.Log(ctx, lvl, "IPVS reconciled", "services", len(desired), "operations", len(res.Ops), "foreign", len(res.Foreign), "periodic", periodic)
	return nil
}

// reload reads the configuration again and applies its IPVS side.
func reload(ctx context.Context, cur config.Config, load func() (config.Config, error), rec *services.Reconciler, log *slog.Logger, m *metrics) (config.Config, error) {
	next, err := load()
	if err != nil {
		return cur, err
	}
	if changed := RestartFields(cur, next); len(changed) > 0 {
		return cur, fmt.Errorf("changes to %v need a restart (a reload applies only the services' IPVS fields)", changed)
	}
	desired := next.IPVS()
	if rec == nil {
		if len(desired) > 0 {
			return cur, fmt.Errorf("%d IPVS services configured, but this kernel's IPVS is unavailable", len(desired))
		}
		return next, nil
	}
	if err := reconcileIPVS(ctx, rec, desired, m, false); err != nil {
		return cur, err
	}
	log.Info("configuration reloaded")
	return next, nil
}

// RestartFields names the fields of config.Config that differ between a
// and b beyond the services' IPVS side and name: what a reload cannot
// apply.
func RestartFields(a, b config.Config) []string {
	strip := func(c config.Config) config.Config {
		svcs := make([]config.Service, len(c.Services))
		for i, s := range c.Services {
			s.IPVS, s.Name = nil, ""
			svcs[i] = s
		}
		c.Services = svcs
		return c
	}
	va, vb := reflect.ValueOf(strip(a)), reflect.ValueOf(strip(b))
	var out []string
	for i := range va.NumField() {
		if !reflect.DeepEqual(va.Field(i).Interface(), vb.Field(i).Interface()) {
			out = append(out, va.Type().Field(i).Name)
		}
	}
	return out
}

type metrics struct {
	ops              *prometheus.CounterVec
	failures         prometheus.Counter
	foreign          prometheus.Gauge
	reconcileSeconds prometheus.Histogram
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		ops: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "saru_ipvs_operations_total",
			Help: "IPVS changes made by reconciliation, by kind."}, []string{"kind"}),
		failures: prometheus.NewCounter(prometheus.CounterOpts{Name: "saru_ipvs_reconcile_failures_total",
			Help: "IPVS reconciliations refused by the plan check or the kernel."}),
		foreign: prometheus.NewGauge(prometheus.GaugeOpts{Name: "saru_ipvs_foreign_services",
			Help: "IPVS services neither configured nor created by saru, left alone."}),
		reconcileSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "saru_ipvs_reconcile_seconds",
			Help: "Time to reconcile IPVS with the configuration.", Buckets: prometheus.ExponentialBuckets(0.0005, 4, 8)}),
	}
	reg.MustRegister(m.ops, m.failures, m.foreign, m.reconcileSeconds)
	return m
}
