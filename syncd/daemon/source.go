package daemon

import (
	"context"

	syncdpb "github.com/saru-lb/saru/proto/syncd/v1"
	"github.com/saru-lb/saru/syncd/conn"
	"github.com/saru-lb/saru/syncd/mesh"
	"github.com/saru-lb/saru/syncd/table"
)

// Status implements server.Source.
func (d *Daemon) Status() *syncdpb.GetStatusResponse {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.core.Status(d.now())
}

// Stats implements server.Source.
func (d *Daemon) Stats(only string) *syncdpb.GetStatsResponse {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.core.Stats(only, d.now())
}

// List implements server.Source.
func (d *Daemon) List(f table.Filter, cursor uint32, max int) ([]conn.Entry, uint32) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.core.Scan(cursor, max, f, d.now(), nil)
}

// snapshotChunk is how many entries are copied per lock hold.
const snapshotChunk = 16384

// Snapshot implements server.Source. Expiry pauses while it streams, so
// every entry held at its start (and not replaced) is sent.
func (d *Daemon) Snapshot(ctx context.Context, origin string, send func([]conn.Entry, uint64) error) error {
	d.mu.Lock()
	d.core.ServeStart(d.now())
	d.mu.Unlock()
	defer func() {
		d.mu.Lock()
		d.core.ServeDone()
		d.mu.Unlock()
	}()
	var es []conn.Entry
	cursor := uint32(0)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		d.mu.Lock()
		total := uint64(d.core.Len())
		if origin != "" {
			total = d.core.Count(origin)
		}
		es, cursor = d.core.Scan(cursor, snapshotChunk, table.Filter{Origin: origin}, d.now(), es[:0])
		d.mu.Unlock()
		if err := send(es, total); err != nil {
			return err
		}
		if cursor == 0 {
			return nil
		}
	}
}

// TableLen returns the number of entries held.
func (d *Daemon) TableLen() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.core.Len()
}

// Entry returns the entry held for k.
func (d *Daemon) Entry(k conn.Key) (conn.Entry, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.core.Get(k, d.now())
}

// counters is a copy of the core's counters, for tests.
func (d *Daemon) counters() mesh.Counters {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.core.Counters(d.now())
}
