package main

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/saru-lb/saru/saru/ipvs"
	"github.com/saru-lb/saru/syncd/conn"
	"github.com/saru-lb/saru/syncd/conntrack"
	"github.com/saru-lb/saru/syncd/daemon"
	"github.com/saru-lb/saru/syncd/ipvssync/bridge"
)

func openKernelBackend(ctx context.Context, cfg daemon.Config, log *slog.Logger) (conn.Backend, func(), error) {
	switch cfg.Backend {
	case "conntrack":
		be, err := conntrack.Open(conntrack.Config{DumpInterval: cfg.Refresh / 2, Logger: log})
		if err != nil {
			return nil, nil, fmt.Errorf("backend conntrack: %w", err)
		}
		return be, func() { be.Close() }, nil
	case "ipvs":
		c, err := ipvs.Dial(ipvs.Config{})
		if err != nil {
			return nil, nil, fmt.Errorf("backend ipvs: %w", err)
		}
		b, err := bridge.Open(ctx, bridge.Config{Logger: log}, ipvsDaemons{c})
		if err != nil {
			c.Close()
			return nil, nil, fmt.Errorf("backend ipvs: %w", err)
		}
		return b, func() {
			if err := b.Close(context.WithoutCancel(ctx)); err != nil {
				log.Warn("closing the IPVS sync bridge", "error", err)
			}
			c.Close()
		}, nil
	}
	return nil, nil, fmt.Errorf("backend: %q is not available in this build", cfg.Backend)
}

// ipvsDaemons starts and stops the kernel's sync threads for the bridge
// over saru/ipvs's generic netlink client.
type ipvsDaemons struct{ c *ipvs.Client }

func (d ipvsDaemons) StartDaemon(ctx context.Context, cfg bridge.DaemonConfig) error {
	return d.c.StartDaemon(ctx, ipvs.SyncDaemon{
		State: ipvs.DaemonState(cfg.State), Interface: cfg.Interface, SyncID: cfg.SyncID,
		MaxLen: uint16(cfg.MaxLen), Group: cfg.Group, Port: cfg.Port, TTL: cfg.TTL,
	})
}

func (d ipvsDaemons) StopDaemon(ctx context.Context, st bridge.DaemonState) error {
	return d.c.StopDaemon(ctx, ipvs.DaemonState(st))
}
