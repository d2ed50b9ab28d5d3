// Command saru is the director coordinator daemon: membership, leader,
// bucket assignment, the nftables filter, the IPVS virtual services and the
// saru.v1.Cluster gRPC API.
//
//	saru -config /etc/saru/saru.yaml [-id dir1] [-grpc-listen :7400] ...
//
// The daemon itself is package saru/director; this command parses flags,
// loads the configuration and turns signals into a context and reloads.
// SIGTERM drains the director (its buckets move to peers once they hold
// its connections), leaves the cluster and removes the filter table.
// SIGHUP re-reads the configuration and reconciles IPVS with the services'
// IPVS side (other changes need a restart). SIGKILL is handled by the
// peers' failure detection.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/saru-lb/saru/saru/config"
	"github.com/saru-lb/saru/saru/director"
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
	fs.BoolVar(&f.checkOnly, "check", false, "validate the configuration, the files it names and the interface, then exit")
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
	// The start checks the files and interface exactly as -check does.
	if err := cfg.CheckEnvironment(config.EnvOptions{NoInterface: f.noInterface}); err != nil {
		return fmt.Errorf("%s: %w", f.config, err)
	}
	if f.checkOnly {
		fmt.Printf("%s: ok (node %s, %d services, %d IPVS services, %d buckets)\n", f.config, cfg.ID, len(cfg.Services), len(cfg.IPVS()), cfg.Buckets)
		return nil
	}
	var lvl slog.Level
	_ = lvl.UnmarshalText([]byte(cfg.LogLevel))
	log := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: lvl}))
	slog.SetDefault(log)

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	go func() {
		<-ctx.Done()
		stop() // a second SIGTERM or SIGINT kills at once, even while draining
	}()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	return director.Run(ctx, director.Options{Config: cfg, Logger: log, Version: version,
		NoFilter: f.noFilter, NoInterface: f.noInterface,
		Reload: hup, Load: func() (config.Config, error) { return load(f) }})
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
