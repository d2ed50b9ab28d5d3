package ipvssync

import "net/netip"

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
}

// Tracker remembers what was last exported for each entry, so that a
// periodic read of the kernel's table exports only entries that are new or
// whose state or real server changed, and none the master already sent.
// It does no I/O; the caller owns the clock and the reads.
type Tracker struct {
	seen map[TableKey]tableVal
}

// NewTracker returns an empty tracker.
func NewTracker() *Tracker { return &Tracker{seen: map[TableKey]tableVal{}} }

// Len is the number of entries tracked.
func (t *Tracker) Len() int { return len(t.seen) }

// Note records a record that was exported (by the master or otherwise).
func (t *Tracker) Note(c *Conn) {
	t.seen[TableKey{c.Protocol, c.CAddr, c.CPort, c.VAddr, c.VPort, c.Template()}] = tableVal{c.State, c.DAddr, c.DPort}
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
	case ProtoTCP:
		switch pc.State {
		case TCPEstablished, TCPFinWait, TCPTimeWait, TCPClose, TCPCloseWait:
			return true
		}
		return false
	case ProtoSCTP:
		// ESTABLISHED, SHUTDOWN_SENT, SHUTDOWN_RECEIVED, SHUTDOWN_ACK_SENT, CLOSED
		switch pc.State {
		case 8, 9, 10, 11, 13:
			return true
		}
		return false
	}
	return true
}

// Changed takes a complete read of the table and returns the records to
// export: local entries (not created by sync), in a state the master
// syncs, that are new or changed since they were last noted. It notes
// them, and forgets entries no longer in the table. Entries that cannot be
// expressed as sync records are returned in skipped.
func (t *Tracker) Changed(table []ProcConn) (out []Conn, skipped []error) {
	present := make(map[TableKey]struct{}, len(table))
	for i := range table {
		pc := &table[i]
		k := TableKey{pc.Protocol, pc.CAddr, pc.CPort, pc.VAddr, pc.VPort, pc.Template}
		present[k] = struct{}{}
		if pc.FromSync() || !pc.StateKnown || !syncedState(pc) {
			continue
		}
		if v, ok := t.seen[k]; ok && v == (tableVal{pc.State, pc.DAddr, pc.DPort}) {
			continue
		}
		c, err := RefreshConn(*pc)
		if err != nil {
			skipped = append(skipped, err)
			continue
		}
		t.seen[k] = tableVal{pc.State, pc.DAddr, pc.DPort}
		out = append(out, c)
	}
	for k := range t.seen {
		if _, ok := present[k]; !ok {
			delete(t.seen, k)
		}
	}
	return out, skipped
}
