package daemon

import (
	"context"
	"slices"
	"time"

	syncdpb "github.com/saru-lb/saru/proto/syncd/v1"
	"github.com/saru-lb/saru/syncd/conn"
	"github.com/saru-lb/saru/syncd/reliable"
	"github.com/saru-lb/saru/syncd/table"
)

// Status implements server.Source.
func (n *Node) Status() *syncdpb.GetStatusResponse {
	n.mu.Lock()
	defer n.mu.Unlock()
	return &syncdpb.GetStatusResponse{
		NodeId:        n.cfg.NodeID,
		Ready:         n.snapState == syncdpb.SnapshotState_SNAPSHOT_STATE_COMPLETE,
		SnapshotState: n.snapState,
		Entries:       uint64(n.tab.Len()),
		Peers:         uint32(len(n.peers)),
		UptimeSeconds: time.Since(n.start).Seconds(),
		Incarnation:   n.inc,
		Sequence:      n.snd.Highest(),
		LocalEntries:  n.tab.Count(n.cfg.NodeID),
	}
}

// Stats implements server.Source.
func (n *Node) Stats(only string) *syncdpb.GetStatsResponse {
	now := time.Now()
	n.mu.Lock()
	defer n.mu.Unlock()
	resp := &syncdpb.GetStatsResponse{Rejected: map[string]uint64{}, EntriesByOrigin: n.tab.CountByOrigin()}
	for r, c := range n.rejected {
		resp.Rejected[r.String()] = c
	}
	for id, p := range n.peers {
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
			Entries:              n.tab.Count(id),
			HighestSequence:      st.Highest,
			ContiguousSequence:   st.Contiguous,
			Missing:              st.Missing,
			Incarnation:          st.Incarnation,
			CaughtUp:             st.CaughtUp() && !p.lastHB.IsZero() && now.Sub(p.lastHB) < 3*n.cfg.Heartbeat,
			Snapshots:            p.snapshots,
			ApiAddress:           p.api,
		}
		if !p.lastSeen.IsZero() {
			ps.LagSeconds = now.Sub(p.lastSeen).Seconds()
		}
		resp.Peers = append(resp.Peers, ps)
	}
	slices.SortFunc(resp.Peers, func(a, b *syncdpb.PeerStats) int {
		switch {
		case a.PeerId < b.PeerId:
			return -1
		case a.PeerId > b.PeerId:
			return 1
		}
		return 0
	})
	return resp
}

// List implements server.Source.
func (n *Node) List(f table.Filter, cursor uint32, max int) ([]conn.Entry, uint32) {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.tab.Scan(cursor, max, f, time.Now(), nil)
}

// snapshotChunk is how many entries are copied per lock hold.
const snapshotChunk = 16384

// Snapshot implements server.Source. Expiry pauses while it streams, so
// every entry held at its start (and not replaced) is sent.
func (n *Node) Snapshot(ctx context.Context, origin string, send func([]conn.Entry, uint64) error) error {
	n.mu.Lock()
	if n.snapshotting == 0 {
		n.expiryPausedTo = time.Now().Add(maxExpiryPause)
	}
	n.snapshotting++
	n.mu.Unlock()
	defer func() {
		n.mu.Lock()
		n.snapshotting--
		n.mu.Unlock()
	}()
	var es []conn.Entry
	cursor := uint32(0)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		n.mu.Lock()
		total := uint64(n.tab.Len())
		if origin != "" {
			total = n.tab.Count(origin)
		}
		es, cursor = n.tab.Scan(cursor, snapshotChunk, table.Filter{Origin: origin}, time.Now(), es[:0])
		n.mu.Unlock()
		if err := send(es, total); err != nil {
			return err
		}
		if cursor == 0 {
			return nil
		}
	}
}

// TableLen returns the number of entries held.
func (n *Node) TableLen() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.tab.Len()
}

// Entry returns the entry held for k.
func (n *Node) Entry(k conn.Key) (conn.Entry, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.tab.Get(k, time.Now())
}

// counters is a consistent copy of the node's counters for metrics.
type counters struct {
	entries                                  int
	byOrigin                                 map[string]uint64
	rejected                                 map[string]uint64
	results                                  map[string]uint64
	sentData, sentCtrl, sentRetrans, sendErr uint64
	expired, importErrs                      uint64
	ready                                    bool
	peers                                    []peerCounters
}

type peerCounters struct {
	id                                     string
	accepted, entries, lost, retrans, auth uint64
	replay                                 map[string]uint64
	lag                                    float64
	missing                                uint64
}

func (n *Node) counters() counters {
	now := time.Now()
	n.mu.Lock()
	defer n.mu.Unlock()
	c := counters{
		entries: n.tab.Len(), byOrigin: n.tab.CountByOrigin(), rejected: map[string]uint64{}, results: map[string]uint64{},
		sentData: n.sent.data, sentCtrl: n.sent.ctrl, sentRetrans: n.sent.retrans, sendErr: n.sent.errors,
		expired: n.expired, importErrs: n.importErrs, ready: n.snapState == syncdpb.SnapshotState_SNAPSHOT_STATE_COMPLETE,
	}
	for r, v := range n.rejected {
		c.rejected[r.String()] = v
	}
	for r, v := range n.results {
		if r == 0 {
			continue
		}
		c.results[table.Result(r).String()] = v
	}
	for id, p := range n.peers {
		st := p.recv.Stats()
		pc := peerCounters{id: id, accepted: st.Accepted, entries: p.entries, lost: st.Lost, retrans: p.retrans, auth: p.rejAuth,
			replay: map[string]uint64{}, missing: st.Missing}
		for _, v := range []reliable.Verdict{reliable.Duplicate, reliable.TooOld, reliable.StaleIncarnation} {
			pc.replay[v.String()] = p.rejReplay[v]
		}
		if !p.lastSeen.IsZero() {
			pc.lag = now.Sub(p.lastSeen).Seconds()
		}
		c.peers = append(c.peers, pc)
	}
	return c
}
