package services

import (
	"context"
	"fmt"
	"log/slog"
	"slices"

	"github.com/saru-lb/saru/saru/ipvs"
)

// Kernel is what the applier needs from IPVS; *ipvs.Client implements it.
type Kernel interface {
	List(ctx context.Context) ([]ipvs.Entry, error)
	NewService(ctx context.Context, s ipvs.Service) error
	UpdateService(ctx context.Context, s ipvs.Service) error
	DeleteService(ctx context.Context, id ipvs.ServiceID) error
	NewDestination(ctx context.Context, id ipvs.ServiceID, d ipvs.Destination) error
	UpdateDestination(ctx context.Context, id ipvs.ServiceID, d ipvs.Destination) error
	DeleteDestination(ctx context.Context, id ipvs.ServiceID, d ipvs.Destination) error
}

// Apply checks ops against current (see [Check]) and, only if the whole plan
// is sound, runs them in order. It stops at the first kernel refusal; the
// error names the operation, and so the service or destination.
func Apply(ctx context.Context, k Kernel, current []ipvs.Entry, ops []Op) error {
	if _, err := Check(current, ops); err != nil {
		return fmt.Errorf("plan refused, nothing applied: %w", err)
	}
	for i, o := range ops {
		var err error
		id := o.Service.ServiceID
		switch o.Kind {
		case CreateService:
			err = k.NewService(ctx, o.Service)
		case UpdateService:
			err = k.UpdateService(ctx, o.Service)
		case DeleteService:
			err = k.DeleteService(ctx, id)
		case CreateDestination:
			err = k.NewDestination(ctx, id, o.Destination)
		case UpdateDestination:
			err = k.UpdateDestination(ctx, id, o.Destination)
		case DeleteDestination:
			err = k.DeleteDestination(ctx, id, o.Destination)
		}
		if err != nil {
			return fmt.Errorf("operation %d of %d (%s): %w", i+1, len(ops), o, err)
		}
	}
	return nil
}

// Reconciler keeps the kernel's IPVS table equal to the configured services
// on the services saru manages (see [Plan]). It is the one way saru changes
// IPVS: the director and the lab both reconcile through it.
type Reconciler struct {
	Kernel Kernel
	// Record keeps the services this director created; the zero Record
	// keeps them in memory only.
	Record Record
	// Log receives warnings about the record; nil discards them.
	Log *slog.Logger

	owned  []ipvs.ServiceID
	loaded bool
}

// Result is what one reconciliation did.
type Result struct {
	// Ops ran, in order (none when the reconciliation failed: see the
	// error for how far it got).
	Ops []Op
	// Foreign services were found and left alone.
	Foreign []ipvs.ServiceID
}

// Reconcile creates, updates and deletes until the managed part of the
// kernel's table equals desired. The plan is checked as a whole before the
// first change ([Apply]); a kernel refusal stops it and names the
// service or destination. Run again, it does nothing.
func (r *Reconciler) Reconcile(ctx context.Context, desired []ipvs.Entry) (Result, error) {
	if !r.loaded {
		owned, err := r.Record.Load()
		if err != nil {
			r.logger().Warn("IPVS record unreadable: services removed from the configuration while saru was down stay in IPVS", "record", r.Record.Path, "err", err)
		}
		r.owned, r.loaded = owned, true
	}
	current, err := r.Kernel.List(ctx)
	if err != nil {
		return Result{}, fmt.Errorf("IPVS: list: %w", err)
	}
	ops, managed, foreign := Plan(desired, current, r.owned)
	want := make([]ipvs.ServiceID, 0, len(desired))
	for _, e := range desired {
		want = append(want, e.Service.Key())
	}
	if len(ops) > 0 {
		// Record first what may exist after this run, so that a crash in
		// the middle forgets nothing saru created.
		if err := r.Record.Save(append(slices.Clone(r.owned), want...)); err != nil {
			r.logger().Warn("IPVS record not saved: services removed from the configuration may stay in IPVS after a restart", "err", err)
		}
	}
	if err := Apply(ctx, r.Kernel, managed, ops); err != nil {
		r.owned = append(r.owned, want...)
		return Result{Foreign: foreign}, fmt.Errorf("IPVS: %w", err)
	}
	r.owned = want
	if err := r.Record.Save(want); err != nil {
		r.logger().Warn("IPVS record not saved: services removed from the configuration may stay in IPVS after a restart", "err", err)
	}
	return Result{Ops: ops, Foreign: foreign}, nil
}

func (r *Reconciler) logger() *slog.Logger {
	if r.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return r.Log
}
