package bridge

import (
	"sync"
	"time"
)

// DropReason says why the bridge dropped a message or an entry.
type DropReason string

// Drop reasons; metrics label by them.
const (
	// DropMalformed: a captured sync datagram failed to decode.
	DropMalformed DropReason = "malformed"
	// DropCaptureOverrun: frames the kernel dropped because the capture
	// socket's buffer was full (the master's messages are lost; the next
	// table read makes up for them).
	DropCaptureOverrun DropReason = "capture_overrun"
	// DropTruncated: a captured frame was larger than the read buffer.
	DropTruncated DropReason = "truncated"
	// DropUnsyncable: an exported record the kernel's backup would drop
	// (unknown protocol or state) or syncd cannot carry (protocol 0, mixed
	// families), not passed to syncd.
	DropUnsyncable DropReason = "unsyncable_export"
	// DropImportInvalid: a peer entry the kernel's backup would drop (bad
	// family mix, unknown protocol or state, bad persistence-engine data).
	DropImportInvalid DropReason = "import_invalid"
	// DropSendFailed: sending an injection message failed.
	DropSendFailed DropReason = "send_failed"
	// DropProcUnsyncable: a /proc/net/ip_vs_conn entry that cannot be
	// expressed as a sync record (state name unknown, mixed families).
	DropProcUnsyncable DropReason = "proc_unsyncable"
)

// Drops counts drops by reason and limits how often each reason is
// logged. It does no I/O and reads no clock: callers pass the time.
type Drops struct {
	mu       sync.Mutex
	interval time.Duration
	counts   map[DropReason]uint64
	last     map[DropReason]time.Time
	pending  map[DropReason]uint64 // counted since the last log line
}

// NewDrops returns counters that allow one log line per reason per interval.
func NewDrops(interval time.Duration) *Drops {
	return &Drops{
		interval: interval,
		counts:   map[DropReason]uint64{},
		last:     map[DropReason]time.Time{},
		pending:  map[DropReason]uint64{},
	}
}

// Add counts n drops for reason at time now. It returns log=true when a
// line should be logged now, with suppressed, the drops of this reason not
// logged since the last line (this one included).
func (d *Drops) Add(reason DropReason, n uint64, now time.Time) (log bool, suppressed uint64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.counts[reason] += n
	d.pending[reason] += n
	if last, ok := d.last[reason]; ok && now.Sub(last) < d.interval {
		return false, 0
	}
	d.last[reason] = now
	s := d.pending[reason]
	d.pending[reason] = 0
	return true, s
}

// Counts returns a copy of the totals by reason.
func (d *Drops) Counts() map[DropReason]uint64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make(map[DropReason]uint64, len(d.counts))
	for k, v := range d.counts {
		out[k] = v
	}
	return out
}
