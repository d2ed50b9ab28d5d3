package filter

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/bits"
	"sync"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/userdata"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// elementsPerMessage bounds one NEWSETELEM message: an element takes 16 bytes
// and a nested netlink attribute at most 64 KiB.
const elementsPerMessage = 4000

// sendBuffer is the netlink send buffer: a batch is one sendmsg, and all
// 65536 buckets take about 1 MiB.
const sendBuffer = 8 << 20

// Filter is saru's table in the kernel: Open installs it, Apply changes the
// owned buckets, Close removes it. Its methods are safe for concurrent use.
type Filter struct {
	mu      sync.Mutex
	conn    *nftables.Conn
	elems   *elemBatcher
	cfg     Config
	rs      *Ruleset
	applied *BucketSet
	log     *slog.Logger
	closed  bool
}

// Option configures Open.
type Option func(*options)

type options struct {
	netns int
	log   *slog.Logger
}

// WithNetNS makes the filter act in the network namespace referred to by the
// open file descriptor fd instead of the caller's.
func WithNetNS(fd int) Option { return func(o *options) { o.netns = fd } }

// WithLogger sets the logger (default slog.Default()).
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.log = l } }

// Open validates cfg and installs the ruleset, owning no bucket yet, in one
// atomic batch that also removes a table of the same name left behind by a
// previous run. Nothing outside that table is touched. Until the first Apply
// the director drops every tcp/udp packet and echo-request to the VIPs.
func Open(ctx context.Context, cfg Config, opts ...Option) (*Filter, error) {
	o := options{log: slog.Default()}
	for _, opt := range opts {
		opt(&o)
	}
	rs, err := Build(cfg, nil)
	if err != nil {
		return nil, err
	}
	empty, err := NewBucketSet(cfg.Buckets)
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	copts := []nftables.ConnOption{nftables.AsLasting(), nftables.WithSockOptions(bigSendBuffer)}
	if o.netns != 0 {
		copts = append(copts, nftables.WithNetNSFd(o.netns))
	}
	conn, err := nftables.New(copts...)
	if err != nil {
		return nil, fmt.Errorf("open nftables netlink socket: %w", err)
	}
	eb, err := dialElemBatcher(o.netns, rs.Table.Name, SetOwned)
	if err != nil {
		_ = conn.CloseLasting()
		return nil, err
	}
	f := &Filter{conn: conn, elems: eb, cfg: cfg, rs: rs, applied: empty, log: o.log}
	if err := f.install(); err != nil {
		_ = conn.CloseLasting()
		_ = eb.Close()
		return nil, err
	}
	f.log.Info("filter installed", "table", "inet "+rs.Table.Name, "services", len(cfg.Services),
		"buckets", cfg.Buckets, "rules", len(rs.Rules), "nat", cfg.NAT != nil)
	return f, nil
}

// bigSendBuffer raises the netlink send buffer past net.core.wmem_max when
// privileged (SO_SNDBUFFORCE), else as far as wmem_max allows.
func bigSendBuffer(c *netlink.Conn) error {
	rc, err := c.SyscallConn()
	if err != nil {
		return fmt.Errorf("netlink send buffer: %w", err)
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, sendBuffer)
		if serr != nil {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUF, sendBuffer)
		}
	}); err != nil {
		return fmt.Errorf("netlink send buffer: %w", err)
	}
	if serr != nil {
		return fmt.Errorf("netlink send buffer: %w", serr)
	}
	// Error acks need not echo our (large) messages back.
	if err := c.SetOption(netlink.CapAcknowledge, true); err != nil {
		return fmt.Errorf("netlink cap ack: %w", err)
	}
	return nil
}

// install queues: add table (a no-op if a stale one exists), delete it, and
// add it afresh with set, chains and rules; the kernel applies all or nothing.
func (f *Filter) install() error {
	rs := f.rs
	c := f.conn
	c.AddTable(rs.Table)
	c.DelTable(rs.Table)
	c.AddTable(rs.Table)
	if err := c.AddSet(rs.Owned, nil); err != nil {
		return fmt.Errorf("queue set %s: %w", f.setName(), err)
	}
	if err := f.queueElements(rs.Elements); err != nil {
		return err
	}
	chains := map[string]*nftables.Chain{}
	for _, ch := range rs.Chains {
		chains[ch.Name] = c.AddChain(ch)
	}
	for _, r := range rs.Rules {
		c.AddRule(&nftables.Rule{
			Table:    rs.Table,
			Chain:    chains[r.Chain],
			Exprs:    r.Exprs,
			UserData: userdata.AppendString(nil, userdata.TypeComment, r.Description),
		})
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("install table inet %s (set %s, %d chains, %d rules): %w",
			rs.Table.Name, SetOwned, len(rs.Chains), len(rs.Rules), kernelErr(err))
	}
	return nil
}

func (f *Filter) setName() string { return "inet " + f.rs.Table.Name + " " + SetOwned }

func (f *Filter) queueElements(elems []nftables.SetElement) error {
	for i := 0; i < len(elems); i += elementsPerMessage {
		if err := f.conn.SetAddElements(f.rs.Owned, elems[i:min(i+elementsPerMessage, len(elems))]); err != nil {
			return fmt.Errorf("queue elements of set %s: %w", f.setName(), err)
		}
	}
	return nil
}

// Apply makes owned the set of owned buckets in one atomic netlink batch.
// The batch carries the change since the last Apply (delete the buckets given
// up, add the buckets gained); applying the same set again sends nothing. If
// the kernel's set has drifted (a bucket to delete is missing), Apply falls
// back to a second batch that flushes the set and adds every owned bucket.
// If the kernel refuses, the previous ownership stays in force and the error
// names the set.
func (f *Filter) Apply(ctx context.Context, owned *BucketSet) error {
	if owned == nil {
		return fieldErr("owned", nil, "bucket set is required")
	}
	if owned.Total() != f.cfg.Buckets {
		return fieldErr("owned", owned, "bucket set ranges over %d buckets, config has %d", owned.Total(), f.cfg.Buckets)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.usable(ctx); err != nil {
		return err
	}
	add, del := diffBuckets(f.applied, owned)
	if len(add) == 0 && len(del) == 0 {
		return nil
	}
	err := f.applyDelta(add, del)
	if err != nil && len(del) > 0 && isNotExist(err) {
		f.log.Warn("owned set drifted from the last applied state; replacing it",
			"set", f.setName(), "error", err)
		err = f.replace(owned)
	}
	if err != nil {
		return fmt.Errorf("apply %s: %w", owned, err)
	}
	f.applied = copyBuckets(owned)
	return nil
}

func (f *Filter) usable(ctx context.Context) error {
	if f.closed {
		return fmt.Errorf("filter table inet %s is closed", f.rs.Table.Name)
	}
	return ctx.Err()
}

// diffBuckets returns the buckets in to but not from (add) and in from but
// not to (del). A nil from counts as empty.
func diffBuckets(from, to *BucketSet) (add, del []uint32) {
	for i, w := range to.words {
		var old uint64
		if from != nil {
			old = from.words[i]
		}
		add = appendBits(add, i, w&^old)
		del = appendBits(del, i, old&^w)
	}
	return add, del
}

func appendBits(out []uint32, word int, w uint64) []uint32 {
	for w != 0 {
		out = append(out, uint32(word*64+bits.TrailingZeros64(w)))
		w &= w - 1
	}
	return out
}

// applyDelta sends one batch deleting del and adding add.
func (f *Filter) applyDelta(add, del []uint32) error {
	if err := f.elems.send(false, del, add); err != nil {
		return fmt.Errorf("set %s (+%d -%d elements): %w", f.setName(), len(add), len(del), err)
	}
	return nil
}

// replace sends one batch flushing the set and adding every owned bucket.
func (f *Filter) replace(owned *BucketSet) error {
	bs := owned.Buckets()
	if err := f.elems.send(true, nil, bs); err != nil {
		return fmt.Errorf("set %s (flush, +%d elements): %w", f.setName(), len(bs), err)
	}
	return nil
}

func copyBuckets(s *BucketSet) *BucketSet {
	if s == nil {
		return nil
	}
	return &BucketSet{total: s.total, words: append([]uint64(nil), s.words...)}
}

// Applied returns a copy of the bucket set last applied (empty after Open).
func (f *Filter) Applied() *BucketSet {
	f.mu.Lock()
	defer f.mu.Unlock()
	return copyBuckets(f.applied)
}

// RuleCounter is the packet and byte count of one rule, like a line of
// `iptables -L -v -n`.
type RuleCounter struct {
	Chain       string
	Handle      uint64
	Description string
	Packets     uint64
	Bytes       uint64
}

// Counters reads every rule's counters from the kernel, in chain order.
func (f *Filter) Counters(ctx context.Context) ([]RuleCounter, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return nil, fmt.Errorf("filter table inet %s is closed", f.rs.Table.Name)
	}
	var out []RuleCounter
	for _, ch := range f.rs.Chains {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		rules, err := f.conn.GetRules(f.rs.Table, ch)
		if err != nil {
			return nil, fmt.Errorf("list rules of chain inet %s %s: %w", f.rs.Table.Name, ch.Name, kernelErr(err))
		}
		for _, r := range rules {
			rc := RuleCounter{Chain: ch.Name, Handle: r.Handle}
			rc.Description, _ = userdata.GetString(r.UserData, userdata.TypeComment)
			for _, e := range r.Exprs {
				if c, ok := e.(*expr.Counter); ok {
					rc.Packets, rc.Bytes = c.Packets, c.Bytes
				}
			}
			out = append(out, rc)
		}
	}
	return out, nil
}

// Close removes saru's table and closes the netlink sockets. A table already
// gone is not an error. A table left behind (crash, or a failed Close) is
// replaced by the next Open.
func (f *Filter) Close(ctx context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return nil
	}
	f.closed = true
	defer func() {
		_ = f.conn.CloseLasting()
		_ = f.elems.Close()
	}()
	// The deletion is one quick batch; it is attempted even when ctx is
	// done, so that a shutting-down director does not leave its filter.
	f.conn.DelTable(f.rs.Table)
	if err := f.conn.Flush(); err != nil && !isNotExist(err) {
		return fmt.Errorf("delete table inet %s: %w", f.rs.Table.Name, kernelErr(err))
	}
	f.log.Info("filter removed", "table", "inet "+f.rs.Table.Name)
	return nil
}

func isNotExist(err error) bool { return errors.Is(err, unix.ENOENT) }

// kernelErr reduces the joined per-message errors google/nftables returns
// for a refused batch to the first one: the message the kernel refused
// (the others repeat the abort).
func kernelErr(err error) error {
	for e := err; e != nil; {
		if j, ok := e.(interface{ Unwrap() []error }); ok {
			if errs := j.Unwrap(); len(errs) > 0 {
				return errs[0]
			}
			return err
		}
		e = errors.Unwrap(e)
	}
	return err
}
