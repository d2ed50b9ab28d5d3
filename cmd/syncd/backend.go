package main

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/saru-lb/saru/syncd/conn"
	"github.com/saru-lb/saru/syncd/daemon"
)

func openKernelBackend(_ context.Context, cfg daemon.Config, _ *slog.Logger) (conn.Backend, func(), error) {
	return nil, nil, fmt.Errorf("backend: %q is not available in this build", cfg.Backend)
}
