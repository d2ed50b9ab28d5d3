package mesh

import (
	"slices"
	"strings"
	"time"

	syncdpb "github.com/saru-lb/saru/proto/syncd/v1"
	"github.com/saru-lb/saru/syncd/conn"
	"github.com/saru-lb/saru/syncd/reliable"
	"github.com/saru-lb/saru/syncd/table"
)

// SnapshotState is the initial snapshot's state.
func (m *Mesh) SnapshotState() syncdpb.SnapshotState { return m.snapState }

// Len is the number of entries held.
func (m *Mesh) Len() int { return m.tab.Len() }

// Count is the number of entries held from origin.
func (m *Mesh) Count(origin string) uint64 { return m.tab.Count(origin) }

// Get returns the entry held for k at now.
func (m *Mesh) Get(k conn.Key, now Time) (conn.Entry, bool) { return m.tab.Get(k, tableTime(now)) }

// Scan appends to dst up to max entries matching f from cursor, and
// returns the cursor to continue from (0 at the end); see table.Scan.
func (m *Mesh) Scan(cursor uint32, max int, f table.Filter, now Time, dst []conn.Entry) ([]conn.Entry, uint32) {
	return m.tab.Scan(cursor, max, f, tableTime(now), dst)
}

// Status is the node's summary at now.
func (m *Mesh) Status(now Time) *syncdpb.GetStatusResponse {
	return &syncdpb.GetStatusResponse{
		NodeId:        m.cfg.ID,
		Ready:         m.complete(),
		SnapshotState: m.snapState,
		Entries:       uint64(m.tab.Len()),
		Peers:         uint32(len(m.peers)),
		UptimeSeconds: (now.Mono - m.start).Seconds(),
		Incarnation:   m.cfg.Incarnation,
		Sequence:      m.snd.Highest(),
		LocalEntries:  m.tab.Count(m.cfg.ID),
	}
}

// Stats are the counters at now; only narrows them to one peer ("" for
// all).
func (m *Mesh) Stats(only string, now Time) *syncdpb.GetStatsResponse {
	resp := &syncdpb.GetStatsResponse{Rejected: map[string]uint64{}, EntriesByOrigin: m.tab.CountByOrigin()}
	for r, c := range m.c.rejected {
		resp.Rejected[r.String()] = c
	}
	for id, p := range m.peers {
		if only != "" && id != only {
			continue
		}
		st := p.recv.Stats()
		var replay uint64
		for _, c := range p.rejReplay {
			replay += c
		}
		ps := &syncdpb.PeerStats{
			PeerId:               id,
			ReceivedPackets:      st.Accepted,
			ReceivedEntries:      p.entries,
			LostPackets:          st.Lost,
			RetransmittedPackets: p.retrans,
			RejectedAuth:         p.rejAuth,
			RejectedReplay:       replay,
			Entries:              m.tab.Count(id),
			HighestSequence:      st.Highest,
			ContiguousSequence:   st.Contiguous,
			Missing:              st.Missing,
			Incarnation:          st.Incarnation,
			CaughtUp:             st.CaughtUp() && p.hbSeen && now.Mono-p.lastHB < 3*m.cfg.Heartbeat,
			Snapshots:            p.snapshots,
			ApiAddress:           p.api,
		}
		if p.heard {
			ps.LagSeconds = (now.Mono - p.lastSeen).Seconds()
		}
		resp.Peers = append(resp.Peers, ps)
	}
	slices.SortFunc(resp.Peers, func(a, b *syncdpb.PeerStats) int { return strings.Compare(a.PeerId, b.PeerId) })
	return resp
}

// Counters is a copy of the node's counters, for metrics.
type Counters struct {
	Entries  int
	ByOrigin map[string]uint64
	// Rejected counts datagrams dropped before reaching a peer's state,
	// by wire.Reason; Results counts entries offered to the table, by
	// table.Result.
	Rejected map[string]uint64
	Results  map[string]uint64
	// Datagrams sealed, by kind; NACKed sequences no longer held.
	SentData, SentControl, SentRetransmit, NackedGone uint64
	Expired                                           uint64
	DuplicateID                                       uint64
	Ready                                             bool
	Peers                                             []PeerCounters
}

// PeerCounters are one peer's counters.
type PeerCounters struct {
	ID                                         string
	Accepted, Entries, Lost, Retransmits, Auth uint64
	// Replay counts refused data and control packets, by verdict.
	Replay  map[string]uint64
	Lag     time.Duration // since the newest packet
	Missing uint64
}

// Counters returns the counters at now, peers sorted by id.
func (m *Mesh) Counters(now Time) Counters {
	c := Counters{
		Entries: m.tab.Len(), ByOrigin: m.tab.CountByOrigin(), Rejected: map[string]uint64{}, Results: map[string]uint64{},
		SentData: m.c.sentData, SentControl: m.c.sentCtrl, SentRetransmit: m.c.sentRetx, NackedGone: m.c.nackedGone,
		Expired: m.c.expired, DuplicateID: m.c.dupID, Ready: m.complete(),
	}
	for r, v := range m.c.rejected {
		c.Rejected[r.String()] = v
	}
	for r, v := range m.c.results {
		if r == 0 {
			continue
		}
		c.Results[table.Result(r).String()] = v
	}
	for _, id := range m.peerIDs() {
		p := m.peers[id]
		st := p.recv.Stats()
		pc := PeerCounters{ID: id, Accepted: st.Accepted, Entries: p.entries, Lost: st.Lost, Retransmits: p.retrans, Auth: p.rejAuth,
			Replay: map[string]uint64{}, Missing: st.Missing}
		for _, v := range []reliable.Verdict{reliable.Duplicate, reliable.TooOld, reliable.StaleIncarnation} {
			pc.Replay[v.String()] = p.rejReplay[v]
		}
		if p.heard {
			pc.Lag = now.Mono - p.lastSeen
		}
		c.Peers = append(c.Peers, pc)
	}
	return c
}
