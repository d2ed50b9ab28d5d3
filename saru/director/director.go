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

	"github.com/coreos/go-systemd/v22/daemon"
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
// services (the error names the service or destination), the kernel has
// no IPVS while services are configured for it, or a live director already
// has this one's node.id (the error names it and that director's address;
// the filter is removed again, owning nothing).
func Run(ctx context.Context, opts Options) error {
	d, err := assemble(ctx, opts)
	if err != nil {
		return err
	}
	defer d.close()
	if err := d.start(ctx); err != nil {
		return err
	}
	d.run(ctx)
	d.shutdown()
	return nil
}

// director is the assembled daemon: its parts, and what undoes them.
type director struct {
	opts Options
	cfg  config.Config // the running configuration; a reload replaces it
	log  *slog.Logger
	reg  *prometheus.Registry
	m    *metrics
	ipvs *services.Reconciler // nil when the kernel has no IPVS
	node *node.Node
	// undo closes what assemble and start opened, last first.
	undo []func()
}

// assemble reads the credentials, reconciles IPVS, installs the filter,
// sets up the interface and dials syncd, and builds the node (not started).
// On error it undoes what it did.
func assemble(ctx context.Context, opts Options) (_ *director, err error) {
	d := &director{opts: opts, cfg: opts.Config, log: opts.Logger, reg: prometheus.NewRegistry()}
	if d.log == nil {
		d.log = slog.Default()
	}
	defer func() {
		if err != nil {
			d.close()
		}
	}()
	cfg := d.cfg
	nopts := node.Options{Config: cfg, Logger: d.log, Version: opts.Version, FilterTable: "inet " + filter.DefaultTable, Registry: d.reg}
	if err := readCredentials(cfg, &nopts); err != nil {
		return nil, err
	}
	var record services.Record
	if cfg.StateDir != "" {
		if err := os.MkdirAll(cfg.StateDir, 0o750); err != nil {
			d.log.Warn("state_dir unusable: an operator's drain will not survive a restart, and IPVS services removed from the configuration while saru is down will stay", "state_dir", cfg.StateDir, "err", err)
		} else {
			nopts.DrainMarker = filepath.Join(cfg.StateDir, "drained")
			record.Path = filepath.Join(cfg.StateDir, services.RecordFile)
		}
	}
	d.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	d.m = newMetrics(d.reg)

	// IPVS first: a refusal stops the start before the filter, the
	// interface or the cluster are touched.
	if err := d.openIPVS(ctx, record); err != nil {
		return nil, err
	}
	if d.ipvs != nil {
		nopts.Services = services.Lister{Kernel: d.ipvs.Kernel}
	}
	if nopts.Filter, err = d.installFilter(ctx); err != nil {
		return nil, err
	}
	if cfg.Interface != "" && !opts.NoInterface {
		undo, err := setupInterface(ctx, cfg, d.log)
		if err != nil {
			return nil, err
		}
		d.onClose(undo)
	}
	if nopts.Sync, err = d.dialSyncd(); err != nil {
		return nil, err
	}
	if d.node, err = node.New(nopts); err != nil {
		return nil, err
	}
	return d, nil
}

// readCredentials reads the token, gossip key and TLS files the
// configuration names into the node's options.
func readCredentials(cfg config.Config, nopts *node.Options) error {
	if cfg.TokenFile != "" {
		tok, err := config.ReadToken(cfg.TokenFile)
		if err != nil {
			return err
		}
		nopts.Token = tok
	}
	if cfg.GossipKeyFile != "" {
		key, err := config.ReadGossipKey(cfg.GossipKeyFile)
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
	return nil
}

// onClose registers f to run at close, before what was registered earlier.
func (d *director) onClose(f func()) { d.undo = append(d.undo, f) }

// close undoes the assembly, last part first. The IPVS table stays as it
// is: closing only releases the netlink socket.
func (d *director) close() {
	for i := len(d.undo) - 1; i >= 0; i-- {
		d.undo[i]()
	}
	d.undo = nil
}

// openIPVS dials IPVS and reconciles it with the configured services. With
// no IPVS in the kernel it carries on (d.ipvs stays nil) only when no
// service has an IPVS side.
func (d *director) openIPVS(ctx context.Context, record services.Record) error {
	desired := d.cfg.IPVS()
	c, err := ipvs.Dial(ipvs.Config{})
	if err != nil {
		if len(desired) > 0 {
			return fmt.Errorf("%d IPVS services configured, but this kernel's IPVS is unavailable (modprobe ip_vs?): %w", len(desired), err)
		}
		d.log.Warn("IPVS not available; no IPVS services configured, so carrying on (ListServices disabled)", "err", err)
		return nil
	}
	d.onClose(func() { c.Close() })
	rec := &services.Reconciler{Kernel: c, Record: record, Log: d.log.With("component", "ipvs")}
	if err := reconcileIPVS(ctx, rec, desired, d.m, false); err != nil {
		return err
	}
	d.ipvs = rec
	return nil
}

// installFilter installs the nftables filter, or none with Options.NoFilter.
func (d *director) installFilter(ctx context.Context) (node.Filter, error) {
	if d.opts.NoFilter {
		d.log.Warn("running without a filter: this director accepts every packet")
		return nullFilter{}, nil
	}
	fl, err := openFilter(ctx, d.cfg, d.log)
	if err != nil {
		return nil, err
	}
	d.onClose(func() {
		cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := fl.f.Close(cctx); err != nil {
			d.log.Error("remove filter table", "err", err)
		}
	})
	return fl, nil
}

// dialSyncd connects to the local syncd, when one is configured.
func (d *director) dialSyncd() (node.Sync, error) {
	if d.cfg.SyncdAddress == "" {
		d.log.Warn("no syncd configured: joins wait join_delay, drains wait drain.confirm_timeout", "join_delay", d.cfg.JoinDelay, "confirm_timeout", d.cfg.DrainConfirmTimeout)
		return nil, nil
	}
	conn, err := grpc.NewClient(d.cfg.SyncdAddress, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, fmt.Errorf("syncd.address %s: %w", d.cfg.SyncdAddress, err)
	}
	d.onClose(func() { conn.Close() })
	return node.NewSyncdClient(conn, d.cfg.MaxSyncLag), nil
}

// start starts the node and the metrics server and tells systemd the
// director is ready.
func (d *director) start(ctx context.Context) error {
	if err := d.node.Start(ctx); err != nil {
		return err
	}
	if d.cfg.MetricsListen != "" {
		srv := &http.Server{Addr: d.cfg.MetricsListen, Handler: promhttp.HandlerFor(d.reg, promhttp.HandlerOpts{}), ReadHeaderTimeout: 5 * time.Second}
		go func() {
			if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
				d.log.Error("metrics server", "err", err)
			}
		}()
		d.onClose(func() { srv.Close() })
	}
	notify(d.log, daemon.SdNotifyReady+"\nSTATUS=serving")
	return nil
}

// run serves until ctx is done: it repairs IPVS every resync interval,
// reloads on request and pings systemd's watchdog.
func (d *director) run(ctx context.Context) {
	var resync <-chan time.Time
	if d.ipvs != nil && d.cfg.IPVSResync > 0 {
		tk := time.NewTicker(d.cfg.IPVSResync)
		defer tk.Stop()
		resync = tk.C
	}
	// The pings come from this loop, so a director stuck in a resync or a
	// reload stops pinging and systemd restarts it.
	var watchdog <-chan time.Time
	if every := watchdogInterval(d.log); every > 0 {
		tk := time.NewTicker(every)
		defer tk.Stop()
		watchdog = tk.C
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-resync:
			// Repair what changed behind saru's back (ipvsadm by hand, a
			// restarted module); the configuration is the truth.
			if err := reconcileIPVS(ctx, d.ipvs, d.cfg.IPVS(), d.m, true); err != nil {
				d.log.Error("IPVS resync failed; retrying at the next interval", "err", err)
			}
		case <-d.opts.Reload:
			d.reload(ctx)
		case <-watchdog:
			notify(d.log, daemon.SdNotifyWatchdog)
		}
	}
}

// reload reads the configuration again and applies it, or keeps the
// running one and logs why.
func (d *director) reload(ctx context.Context) {
	if d.opts.Load == nil {
		d.log.Warn("reload requested but no way to read the configuration")
		return
	}
	notify(d.log, daemon.SdNotifyReloading)
	if next, err := reloadConfig(ctx, d.cfg, d.opts.Load, d.ipvs, d.log, d.m); err != nil {
		d.log.Error("reload refused; running configuration kept", "err", err)
	} else {
		d.cfg = next
	}
	notify(d.log, daemon.SdNotifyReady+"\nSTATUS=serving")
}

// shutdown drains the director, leaves the cluster and stops the node.
// The IPVS table stays for the next start.
func (d *director) shutdown() {
	notify(d.log, daemon.SdNotifyStopping+"\nSTATUS=draining")
	d.log.Info("stopping: draining before leaving")
	dctx, cancel := context.WithTimeout(context.Background(), d.cfg.DrainTimeout)
	if e, err := d.node.DrainSelf(dctx); err != nil {
		d.log.Warn("drain before exit incomplete; leaving anyway", "err", err)
	} else {
		d.log.Info("drained", "epoch", e)
	}
	cancel()
	if err := d.node.Leave(2 * time.Second); err != nil {
		d.log.Warn("leave", "err", err)
	}
	d.node.Stop()
	d.log.Info("stopped; IPVS services left in place for the next start")
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

// reloadConfig reads the configuration again and applies its IPVS side.
func reloadConfig(ctx context.Context, cur config.Config, load func() (config.Config, error), rec *services.Reconciler, log *slog.Logger, m *metrics) (config.Config, error) {
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
