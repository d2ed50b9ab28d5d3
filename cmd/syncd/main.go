// Command syncd is the Saru connection sync daemon: it streams every local
// connection entry to every peer director over authenticated multicast and
// installs the peers' entries locally. See syncd/daemon.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	sd "github.com/coreos/go-systemd/v22/daemon"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/saru-lb/saru/syncd/conn"
	"github.com/saru-lb/saru/syncd/daemon"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "syncd:", err)
		os.Exit(1)
	}
}

func run() error {
	configPath := flag.String("config", "/etc/saru/syncd.yaml", "YAML configuration file")
	nodeID := flag.String("node-id", "", "director id (overrides node_id)")
	apiListen := flag.String("api-listen", "", "gRPC listen address (overrides api_listen)")
	logLevel := flag.String("log-level", "", "debug, info, warn or error (overrides log_level)")
	check := flag.Bool("check", false, "check the configuration, the key file and the interface, then exit")
	flag.Parse()

	data, err := os.ReadFile(*configPath)
	if err != nil {
		return err
	}
	var f daemon.File
	if err := daemon.DecodeFile(data, &f); err != nil {
		return fmt.Errorf("%s: %w", *configPath, err)
	}
	if *nodeID != "" {
		f.NodeID = *nodeID
	}
	if *apiListen != "" {
		f.APIListen = *apiListen
	}
	if *logLevel != "" {
		f.LogLevel = *logLevel
	}
	cfg, err := f.Check()
	if err != nil {
		return fmt.Errorf("%s: %w", *configPath, err)
	}
	// The start checks the key file and interface exactly as -check does.
	if err := cfg.CheckEnvironment(); err != nil {
		return fmt.Errorf("%s: %w", *configPath, err)
	}
	if *check {
		fmt.Println("configuration ok")
		return nil
	}
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.LogLevel))
	log := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: level}))

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	be, closeBackend, err := openBackend(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer closeBackend()
	d, err := daemon.New(cfg, daemon.Deps{Backend: be, Logger: log})
	if err != nil {
		return err
	}

	if cfg.MetricsListen != "" {
		reg := prometheus.NewRegistry()
		reg.MustRegister(d, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
		mux := http.NewServeMux()
		mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
		srv := &http.Server{Addr: cfg.MetricsListen, Handler: mux, ReadHeaderTimeout: 5 * time.Second}
		go func() {
			if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
				log.Error("metrics server failed", "error", err)
			}
		}()
		defer srv.Close()
	}

	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	go func() {
		for range hup {
			if err := d.ReloadKeys(); err != nil {
				log.Error("key reload failed; keeping the current keys", "error", err)
			}
		}
	}()
	go func() {
		if d.WaitReady(ctx.Done()) {
			if _, err := sd.SdNotify(false, sd.SdNotifyReady+"\nSTATUS=snapshot complete"); err != nil {
				log.Warn("sd_notify failed", "error", err)
			}
		}
	}()
	go watchdog(ctx, d, log)
	err = d.Run(ctx)
	_, _ = sd.SdNotify(false, sd.SdNotifyStopping)
	return err
}

// watchdog pings systemd's watchdog at half its interval while ctx lives
// and the daemon's protocol loop runs, when the unit enables it
// (WatchdogSec=): a wedged syncd is restarted.
func watchdog(ctx context.Context, d *daemon.Daemon, log *slog.Logger) {
	iv, err := sd.SdWatchdogEnabled(false)
	if err != nil {
		log.Warn("systemd watchdog", "error", err)
		return
	}
	if iv <= 0 {
		return
	}
	t := time.NewTicker(iv / 2)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			if !d.TickedWithin(now, iv) {
				log.Warn("sync loop stalled; not pinging the systemd watchdog")
				continue
			}
			if _, err := sd.SdNotify(false, sd.SdNotifyWatchdog); err != nil {
				log.Warn("sd_notify watchdog failed", "error", err)
			}
		}
	}
}

func openBackend(ctx context.Context, cfg daemon.Config, log *slog.Logger) (conn.Backend, func(), error) {
	switch cfg.Backend {
	case "memory":
		return conn.NewMemoryBackend(), func() {}, nil
	}
	return openKernelBackend(ctx, cfg, log)
}
