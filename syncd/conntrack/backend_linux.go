package conntrack

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"syscall"
	"time"

	"github.com/mdlayher/netlink"
	ct "github.com/ti-mo/conntrack"
	"github.com/ti-mo/netfilter"

	"github.com/saru-lb/saru/syncd/conn"
)

// Config tunes the backend. Zero values take the defaults.
type Config struct {
	// DumpInterval re-dumps the table and exports every flow, so idle
	// flows' timeouts stay fresh on the peers. Default 30s.
	DumpInterval time.Duration
	// SuppressFor is how long events for an imported flow are not
	// exported. Default 5s.
	SuppressFor time.Duration
	// BatchSize bounds an export batch. Default 256.
	BatchSize int
	Logger    *slog.Logger
}

// Backend is the nf_conntrack backend. Its sockets live in the network
// namespace of the thread that called Open.
type Backend struct {
	cfg    Config
	cmd    *ct.Conn // dumps and imports
	events *ct.Conn
	nf     *netfilter.Conn // NAT creates (ti-mo/conntrack cannot send CTA_NAT_*)

	mu       sync.Mutex
	imported map[conn.Key]time.Time
	skipped  map[Skip]uint64
	created  uint64
	updated  uint64
	failed   uint64
}

// Open dials conntrack netlink twice: for commands and for events.
func Open(cfg Config) (*Backend, error) {
	if cfg.DumpInterval == 0 {
		cfg.DumpInterval = 30 * time.Second
	}
	if cfg.SuppressFor == 0 {
		cfg.SuppressFor = 5 * time.Second
	}
	if cfg.BatchSize == 0 {
		cfg.BatchSize = 256
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	cmd, err := ct.Dial(nil)
	if err != nil {
		return nil, fmt.Errorf("conntrack: dial: %w", err)
	}
	ev, err := ct.Dial(nil)
	if err != nil {
		cmd.Close()
		return nil, fmt.Errorf("conntrack: dial events: %w", err)
	}
	nf, err := netfilter.Dial(nil)
	if err != nil {
		cmd.Close()
		ev.Close()
		return nil, fmt.Errorf("conntrack: dial netfilter: %w", err)
	}
	return &Backend{cfg: cfg, cmd: cmd, events: ev, nf: nf, imported: map[conn.Key]time.Time{}, skipped: map[Skip]uint64{}}, nil
}

// Close releases the sockets.
func (b *Backend) Close() error {
	return errors.Join(b.cmd.Close(), b.events.Close(), b.nf.Close())
}

// Counts returns the import counters and skipped flows by reason.
func (b *Backend) Counts() (created, updated, failed uint64, skipped map[Skip]uint64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	skipped = make(map[Skip]uint64, len(b.skipped))
	for k, v := range b.skipped {
		skipped[k] = v
	}
	return b.created, b.updated, b.failed, skipped
}

// suppressed reports whether e was imported recently (so its event is an
// echo of our own import).
func (b *Backend) suppressed(e *conn.Entry, now time.Time) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	t, ok := b.imported[e.Key()]
	return ok && now.Sub(t) < b.cfg.SuppressFor
}

func (b *Backend) convert(flows []ct.Flow, now time.Time, out []conn.Entry, suppress bool) []conn.Entry {
	for i := range flows {
		e, skip := FlowToEntry(&flows[i])
		if skip != NotSkipped {
			b.mu.Lock()
			b.skipped[skip]++
			b.mu.Unlock()
			continue
		}
		if suppress && b.suppressed(&e, now) {
			continue
		}
		out = append(out, e)
	}
	return out
}

func (b *Backend) dump(export func([]conn.Entry)) error {
	flows, err := b.cmd.Dump(nil)
	if err != nil {
		return fmt.Errorf("conntrack: dump: %w", err)
	}
	es := b.convert(flows, time.Now(), nil, true)
	for len(es) > 0 {
		k := min(len(es), b.cfg.BatchSize)
		export(es[:k])
		es = es[k:]
	}
	return nil
}

// Run implements conn.Backend: events first (so nothing between the dump
// and the subscription is missed), then the dump, then events and
// periodic dumps.
func (b *Backend) Run(ctx context.Context, export func([]conn.Entry)) error {
	evs := make(chan ct.Event, 1024)
	errc, err := b.events.Listen(evs, 1, []netfilter.NetlinkGroup{netfilter.GroupCTNew, netfilter.GroupCTUpdate})
	if err != nil {
		return fmt.Errorf("conntrack: listen: %w", err)
	}
	if err := b.dump(export); err != nil {
		return err
	}
	dumps := time.NewTicker(b.cfg.DumpInterval)
	defer dumps.Stop()
	prune := time.NewTicker(b.cfg.SuppressFor)
	defer prune.Stop()
	var batch []conn.Entry
	flush := time.NewTicker(10 * time.Millisecond)
	defer flush.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err := <-errc:
			return fmt.Errorf("conntrack: events: %w", err)
		case ev := <-evs:
			if ev.Flow == nil {
				continue
			}
			batch = b.convert([]ct.Flow{*ev.Flow}, time.Now(), batch, true)
			if len(batch) >= b.cfg.BatchSize {
				export(batch)
				batch = batch[:0]
			}
		case <-flush.C:
			if len(batch) > 0 {
				export(batch)
				batch = batch[:0]
			}
		case <-dumps.C:
			if err := b.dump(export); err != nil {
				b.cfg.Logger.Warn("conntrack periodic dump failed", "error", err)
			}
		case now := <-prune.C:
			b.mu.Lock()
			for k, t := range b.imported {
				if now.Sub(t) >= b.cfg.SuppressFor {
					delete(b.imported, k)
				}
			}
			b.mu.Unlock()
		}
	}
}

// Import implements conn.Backend: create each flow, or update it when it
// exists. Entries that are not conntrack entries are refused.
func (b *Backend) Import(ctx context.Context, es []conn.Entry) error {
	now := time.Now()
	var errs []error
	for i := range es {
		if err := ctx.Err(); err != nil {
			return err
		}
		f, err := EntryToFlow(&es[i])
		if err != nil {
			errs = append(errs, err)
			continue
		}
		b.mu.Lock()
		b.imported[es[i].Key()] = now
		b.mu.Unlock()
		err = b.create(&es[i], f)
		if errors.Is(err, syscall.EEXIST) {
			// Tuples cannot change; timeout, mark and state can. Status
			// bits can only be set, never cleared: leave them alone.
			f.TupleReply = ct.Tuple{}
			f.Status = 0
			err = b.cmd.Update(f)
			b.count(err, false)
		} else {
			b.count(err, true)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("conntrack: import %s:%d -> %s:%d: %w", es[i].ClientAddr, es[i].ClientPort, es[i].VirtualAddr, es[i].VirtualPort, err))
		}
		if len(errs) > 16 {
			break
		}
	}
	return errors.Join(errs...)
}

// create creates the flow: with its NAT bindings when it has NAT.
func (b *Backend) create(e *conn.Entry, f ct.Flow) error {
	attrs, family, nat, err := NATCreate(e)
	if err != nil {
		return err
	}
	if !nat {
		return b.cmd.Create(f)
	}
	req, err := netfilter.MarshalNetlink(netfilter.Header{
		SubsystemID: netfilter.NFSubsysCTNetlink,
		MessageType: netfilter.MessageType(ctNew),
		Family:      family,
		Flags:       netlink.Request | netlink.Acknowledge | netlink.Excl | netlink.Create,
	}, attrs)
	if err != nil {
		return err
	}
	_, err = b.nf.Query(req)
	return err
}

func (b *Backend) count(err error, create bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch {
	case err != nil:
		b.failed++
	case create:
		b.created++
	default:
		b.updated++
	}
}
