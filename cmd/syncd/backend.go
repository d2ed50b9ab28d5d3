package main

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/saru-lb/saru/syncd/conn"
	"github.com/saru-lb/saru/syncd/conntrack"
	"github.com/saru-lb/saru/syncd/daemon"
)

func openKernelBackend(_ context.Context, cfg daemon.Config, log *slog.Logger) (conn.Backend, func(), error) {
	switch cfg.Backend {
	case "conntrack":
		be, err := conntrack.Open(conntrack.Config{DumpInterval: cfg.Refresh / 2, Logger: log})
		if err != nil {
			return nil, nil, fmt.Errorf("backend conntrack: %w", err)
		}
		return be, func() { be.Close() }, nil
	}
	return nil, nil, fmt.Errorf("backend: %q is not available in this build", cfg.Backend)
}
