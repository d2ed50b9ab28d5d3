package mesh

import (
	"slices"
	"time"

	syncdpb "github.com/saru-lb/saru/proto/syncd/v1"
	"github.com/saru-lb/saru/syncd/conn"
	"github.com/saru-lb/saru/syncd/table"
	"github.com/saru-lb/saru/syncd/wire"
)

// Tick does what is due at now: flush a partly filled packet, NACK gaps,
// start pulls, send the heartbeat, sweep and refresh a slice of the
// table. Ready.NextTick says when it next has work.
func (m *Mesh) Tick(now Time) {
	m.now = now.Mono
	mono := int64(now.Mono)
	if m.packer.Len() > 0 && now.Mono-m.lastFlush >= m.cfg.Flush {
		m.flush()
	}
	var nacks []*syncdpb.Nack
	for _, id := range m.peerIDs() {
		p := m.peers[id]
		ranges := p.recv.Tick(mono, m.ranges[:0])
		m.ranges = ranges[:0]
		for len(ranges) > 0 {
			k := min(len(ranges), wire.MaxNackRanges)
			nk := &syncdpb.Nack{Target: p.id, Incarnation: p.recv.Incarnation()}
			for _, r := range ranges[:k] {
				nk.Ranges = append(nk.Ranges, &syncdpb.SequenceRange{First: r.First, Count: r.Count})
			}
			ranges = ranges[k:]
			nacks = append(nacks, nk)
		}
		// A request waits for the peer's API address (its heartbeat) and
		// survives a failed pull.
		p.wantSnap = p.recv.TakeSnapshotRequest() || p.wantSnap
		if p.wantSnap && !p.pulling && p.api != "" && now.Mono >= p.retryPull {
			p.pulling, p.wantSnap = true, false
			m.pullStarted[p.id] = now.Mono
			m.pulls = append(m.pulls, Pull{Origin: p.id, Addr: p.api})
		}
	}
	// Pack NACKs into control packets within the path MTU.
	for len(nacks) > 0 {
		size, k := 0, 0
		for k < len(nacks) {
			sz := wire.NackSize(nacks[k].Target, len(nacks[k].Ranges))
			if k > 0 && size+sz > m.cfg.Budget {
				break
			}
			size += sz
			k++
		}
		m.sendControl(nil, nacks[:k])
		nacks = nacks[k:]
	}
	m.initialPull(now)
	if !m.hbSent || now.Mono-m.lastHB >= m.cfg.Heartbeat {
		m.hbSent, m.lastHB = true, now.Mono
		m.sendControl(&syncdpb.Heartbeat{
			HighestSequence: m.snd.Highest(), LowestRetained: m.snd.LowestRetained(),
			ApiAddress: m.cfg.Advertise, Entries: m.tab.Count(m.cfg.ID),
			Ready: m.complete(),
		}, nil)
	}
	// Sweep the table once per expire interval, in steps per run.
	var el time.Duration
	if m.swept && now.Mono > m.lastSweep {
		el = now.Mono - m.lastSweep
	}
	m.swept, m.lastSweep = true, now.Mono
	tt := tableTime(now)
	m.expireDebt = min(m.expireDebt+float64(m.tab.Len())*float64(min(el, m.cfg.Expire))/float64(m.cfg.Expire), float64(m.tab.Len()+1))
	if k := int(m.expireDebt); k > 0 && (m.serving == 0 || now.Mono > m.expiryPausedTo) {
		m.expireDebt -= float64(k)
		var removed int
		removed, m.expireCur = m.tab.ExpireSome(tt, m.expireCur, k)
		m.c.expired += uint64(removed)
	}
	m.refreshSome(now, min(el, m.cfg.Refresh))
	m.hasNext, m.next = true, m.nextTick(now.Mono)
}

// complete reports whether the initial snapshot is complete.
func (m *Mesh) complete() bool { return m.snapState == syncdpb.SnapshotState_SNAPSHOT_STATE_COMPLETE }

func (m *Mesh) peerIDs() []string {
	ids := make([]string, 0, len(m.peers))
	for id := range m.peers {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// nextTick is when Tick next has work: the next heartbeat at the latest
// (which also paces the sweeps), sooner for a partly filled packet, a
// peer's NACK, a pull or the end of the snapshot wait.
func (m *Mesh) nextTick(now time.Duration) time.Duration {
	next := m.lastHB + m.cfg.Heartbeat
	if m.packer.Len() > 0 {
		next = min(next, m.lastFlush+m.cfg.Flush)
	}
	for _, p := range m.peers {
		if at, ok := p.recv.Deadline(int64(now)); ok {
			next = min(next, time.Duration(at))
		}
		if p.wantSnap && !p.pulling && p.api != "" {
			next = min(next, p.retryPull)
		}
	}
	if !m.complete() && !m.fullPulling {
		if now < m.snapDeadline {
			next = min(next, m.snapDeadline)
		}
		for _, addr := range m.candidates() {
			next = min(next, max(m.tried[addr]+pullRetry, now))
		}
	}
	return next
}

// refreshSome re-sends a slice of the local entries, so that every local
// entry goes out once per refresh interval.
func (m *Mesh) refreshSome(now Time, el time.Duration) {
	local := m.tab.Count(m.cfg.ID)
	if local == 0 {
		return
	}
	m.refreshDebt = min(m.refreshDebt+float64(local)*float64(el)/float64(m.cfg.Refresh), float64(local+1))
	k := int(m.refreshDebt)
	if k == 0 {
		return
	}
	m.refreshDebt -= float64(k)
	m.refresh, m.refreshCur = m.tab.Scan(m.refreshCur, k, table.Filter{Origin: m.cfg.ID}, tableTime(now), m.refresh[:0])
	for i := range m.refresh {
		if m.refresh[i].Timeout == 0 {
			continue
		}
		m.queue(&m.refresh[i], now)
	}
}

// candidates lists the addresses to pull the initial snapshot from: the
// configured ones, then ready peers' by id.
func (m *Mesh) candidates() []string {
	cands := slices.Clone(m.cfg.SnapshotPeers)
	for _, id := range m.peerIDs() {
		if p := m.peers[id]; p.ready && p.api != "" {
			cands = append(cands, p.api)
		}
	}
	return cands
}

// initialPull starts the initial snapshot from the first candidate not
// tried within pullRetry, or declares it complete when the wait is over
// and no candidate exists.
func (m *Mesh) initialPull(now Time) {
	if m.complete() || m.fullPulling {
		return
	}
	cands := m.candidates()
	for _, addr := range cands {
		if t, ok := m.tried[addr]; ok && now.Mono-t < pullRetry {
			continue
		}
		m.tried[addr] = now.Mono
		m.snapState = syncdpb.SnapshotState_SNAPSHOT_STATE_PULLING
		m.fullPulling, m.fullStarted = true, now.Mono
		m.pulls = append(m.pulls, Pull{Addr: addr})
		return
	}
	if now.Mono >= m.snapDeadline && len(cands) == 0 {
		m.snapState = syncdpb.SnapshotState_SNAPSHOT_STATE_COMPLETE
		m.event(Event{Reason: SnapshotAlone})
	}
}

// PullChunk takes a chunk of a pulled snapshot; total, when not zero, is
// how many entries the whole snapshot holds.
func (m *Mesh) PullChunk(es []conn.Entry, total uint64, now Time) {
	m.now = now.Mono
	if total > 0 {
		m.tab.Reserve(m.tab.Len() + int(min(total, 1<<26)))
	}
	if m.imp == nil {
		m.imp = make([]conn.Entry, 0, len(es))
	}
	tt := tableTime(now)
	last := ""
	for i := range es {
		if o := es[i].Origin; m.fullPulling && o != last {
			m.snapOrigins[o], last = true, o
		}
		m.seeVersion(es[i].Version)
		res := m.tab.Upsert(&es[i], tt)
		m.c.results[res]++
		if res == table.Inserted || res == table.Updated || res == table.Refreshed {
			m.imp = append(m.imp, es[i])
		}
	}
}

// PullDone ends a pull the Mesh asked for: n entries pulled, or err.
func (m *Mesh) PullDone(pl Pull, n uint64, err error, now Time) {
	m.now = now.Mono
	if pl.Origin == "" {
		m.fullPulling = false
		took := now.Mono - m.fullStarted
		if err != nil {
			m.snapState = syncdpb.SnapshotState_SNAPSHOT_STATE_FAILED
			m.event(Event{Reason: SnapshotFailed, Peer: pl.Addr, Err: err, Took: took})
			m.initialPull(now) // the next candidate, if any
			m.wantTick(now.Mono)
			return
		}
		m.snapState = syncdpb.SnapshotState_SNAPSHOT_STATE_COMPLETE
		m.event(Event{Reason: SnapshotComplete, Peer: pl.Addr, Entries: n, Took: took})
		return
	}
	took := now.Mono - m.pullStarted[pl.Origin]
	delete(m.pullStarted, pl.Origin)
	p := m.peers[pl.Origin]
	if p == nil {
		return
	}
	p.pulling = false
	if err != nil {
		p.wantSnap, p.retryPull = true, now.Mono+pullRetry
		m.event(Event{Reason: CatchUpFailed, Peer: pl.Origin, Err: err, Took: took})
		m.wantTick(now.Mono)
		return
	}
	p.snapshots++
	m.event(Event{Reason: CaughtUp, Peer: pl.Origin, Entries: n, Took: took})
}

// ServeStart notes that a snapshot stream is being served from now:
// expiry pauses (see Rules) until ServeDone.
func (m *Mesh) ServeStart(now Time) {
	if m.serving == 0 {
		m.expiryPausedTo = now.Mono + maxExpiryPause
	}
	m.serving++
}

// ServeDone ends what ServeStart began.
func (m *Mesh) ServeDone() { m.serving-- }
