package ipvssync

import (
	"fmt"
	"net/netip"
	"time"

	"github.com/saru-lb/saru/syncd/conn"
)

// TableKey identifies an entry of the kernel's table as its connection
// hash does (templates apart from connections).
type TableKey struct {
	Protocol uint8
	CAddr    netip.Addr
	CPort    uint16
	VAddr    netip.Addr
	VPort    uint16
	Template bool
}

type tableVal struct {
	state uint16
	daddr netip.Addr
	dport uint16
	// peersExpire is when the peers' copy expires, as last exported.
	peersExpire time.Time
}

// DefaultRefreshSlack is how far an entry's expiry here may run ahead of
// its peers' copy before the Tracker exports it again.
const DefaultRefreshSlack = 60 * time.Second

// Tracker remembers what was last exported for each entry, so that a
// periodic read of the kernel's table exports only what the peers lack:
// entries that are new, whose state or real server changed, or whose
// expiry here has moved later than the peers' copy by more than
// RefreshSlack. The last case keeps alive on the peers a connection that
// carries too few packets for the kernel's master ever to send it again
// (it resends only every sync_period packets or on a state change). It
// does no I/O; the caller passes the reads and the time.
type Tracker struct {
	// RefreshSlack; DefaultRefreshSlack when zero.
	RefreshSlack time.Duration
	seen         map[TableKey]tableVal
}

// NewTracker returns an empty tracker.
func NewTracker() *Tracker { return &Tracker{seen: map[TableKey]tableVal{}} }

func expiry(now time.Time, timeout uint32) time.Time {
	return now.Add(time.Duration(timeout) * time.Second)
}

// Note records an entry exported at time now (by the master or otherwise).
// A timeout of 0 means the receiver's default for the state, which the
// Tracker does not know; it assumes the entry expires now, so the next
// read refreshes it.
func (t *Tracker) Note(e *conn.Entry, now time.Time) {
	t.seen[TableKey{e.Protocol, e.ClientAddr, e.ClientPort, e.VirtualAddr, e.VirtualPort, e.Flags.Template()}] = tableVal{e.State, e.DestAddr, e.DestPort, expiry(now, e.Timeout)}
}

// syncedState reports whether the kernel's master would ever export an
// entry in this state (ip_vs_sync_conn_needed): TCP ESTABLISHED,
// FIN_WAIT, TIME_WAIT, CLOSE and CLOSE_WAIT; SCTP ESTABLISHED and the
// shutdown states; every state of the other protocols and templates.
func syncedState(pc *ProcConn) bool {
	if pc.Template {
		return true
	}
	switch pc.Protocol {
	case conn.ProtoTCP:
		switch pc.State {
		case TCPEstablished, TCPFinWait, TCPTimeWait, TCPClose, TCPCloseWait:
			return true
		}
		return false
	case conn.ProtoSCTP:
		// ESTABLISHED, SHUTDOWN_SENT, SHUTDOWN_RECEIVED, SHUTDOWN_ACK_SENT, CLOSED
		switch pc.State {
		case 8, 9, 10, 11, 13:
			return true
		}
		return false
	}
	return true
}

// Changed takes a complete read of the table made at time now and returns
// the entries to export: local entries (not created by sync), in a state
// the master syncs, that are new, changed, or due for a refresh. It notes
// them and forgets entries no longer in the table. This is where table
// entries enter syncd, so each is checked here, once: entries the kernel's
// backup or syncd would refuse are returned in skipped.
func (t *Tracker) Changed(table []ProcConn, now time.Time) (out []conn.Entry, skipped []error) {
	slack := t.RefreshSlack
	if slack <= 0 {
		slack = DefaultRefreshSlack
	}
	present := make(map[TableKey]struct{}, len(table))
	for i := range table {
		pc := &table[i]
		k := TableKey{pc.Protocol, pc.CAddr, pc.CPort, pc.VAddr, pc.VPort, pc.Template}
		present[k] = struct{}{}
		if pc.FromSync() || !pc.StateKnown || !syncedState(pc) {
			continue
		}
		if v, ok := t.seen[k]; ok && v.state == pc.State && v.daddr == pc.DAddr && v.dport == pc.DPort &&
			expiry(now, pc.Expires).Sub(v.peersExpire) <= slack {
			continue
		}
		e, err := refreshEntry(*pc)
		if err == nil {
			// Mixed families (an IPv6 service with IPv4 real servers)
			// cannot be carried by the sync protocol; accept says so.
			err = accept(&e)
		}
		if err != nil {
			skipped = append(skipped, fmt.Errorf("ip_vs_conn entry %s:%d: %w", pc.CAddr, pc.CPort, err))
			continue
		}
		t.Note(&e, now)
		out = append(out, e)
	}
	for k := range t.seen {
		if _, ok := present[k]; !ok {
			delete(t.seen, k)
		}
	}
	return out, skipped
}
