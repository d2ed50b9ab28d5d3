package mesh

import (
	"net/netip"

	"google.golang.org/protobuf/proto"

	syncdpb "github.com/saru-lb/saru/proto/syncd/v1"
	"github.com/saru-lb/saru/syncd/conn"
	"github.com/saru-lb/saru/syncd/reliable"
	"github.com/saru-lb/saru/syncd/table"
	"github.com/saru-lb/saru/syncd/wire"
)

// Receive takes one datagram from the network.
func (m *Mesh) Receive(dg []byte, from netip.AddrPort, now Time) {
	if wire.IsFrom(dg, m.selfPrefix) {
		return // our own, looped back (a forgery of our id is ignored alike)
	}
	m.now = now.Mono
	// Data packets in the canonical encoding decode straight into
	// entries; anything else takes the generic path.
	h, es, handled, r := m.sealer.OpenData(dg, now.Wall, m.es[:0])
	m.es = es[:0]
	if r == wire.OK && handled {
		if h.Sender == m.cfg.ID {
			m.sameID(h.Incarnation, from)
			return
		}
		m.applyData(h.Sender, h.Incarnation, h.Sequence, h.Retransmit, es, from, now)
		return
	}
	pkt := &m.pkt
	var err error
	if r == wire.OK {
		proto.Reset(pkt)
		r, err = m.sealer.OpenPacket(dg, now.Wall, pkt)
	}
	if r != wire.OK {
		m.reject(r, from, err)
		return
	}
	if pkt.Sender == m.cfg.ID {
		m.sameID(pkt.Incarnation, from)
		return
	}
	for _, b := range pkt.Batches {
		if es, err = wire.AppendEntries(es, b, pkt.Sender); err != nil {
			m.reject(wire.Malformed, from, err)
			return
		}
	}
	m.es = es[:0]
	if pkt.Sequence != 0 {
		m.applyData(pkt.Sender, pkt.Incarnation, pkt.Sequence, pkt.Retransmit, es, from, now)
		return
	}
	m.control(pkt, from, now)
}

func (m *Mesh) reject(r wire.Reason, from netip.AddrPort, err error) {
	m.c.rejected[r]++
	if id, ok := m.byAddr[from.Addr()]; ok && r != wire.Malformed {
		m.peers[id].rejAuth++
	}
	m.event(Event{Reason: Reason(r.String()), From: from, Err: err})
}

// control handles a heartbeat and/or NACKs.
func (m *Mesh) control(pkt *syncdpb.Packet, from netip.AddrPort, now Time) {
	mono := int64(now.Mono)
	p := m.peer(pkt.Sender)
	m.byAddr[from.Addr()] = pkt.Sender
	if v := p.recv.OnControl(pkt.Incarnation, pkt.ControlSequence, mono); v != reliable.Accept {
		p.rejReplay[v]++
		m.event(Event{Reason: controlReason(v), Peer: pkt.Sender, From: from})
		return
	}
	p.heard, p.lastSeen = true, now.Mono
	if hb := pkt.Heartbeat; hb != nil {
		p.recv.OnHeartbeat(hb.HighestSequence, hb.LowestRetained, mono)
		p.api, p.ready, p.announced = hb.ApiAddress, hb.Ready, hb.Entries
		p.hbSeen, p.lastHB = true, now.Mono
		if p.recv.Pending() || p.wantSnap {
			m.wantTick(now.Mono)
		}
		if p.ready && !m.complete() && !m.fullPulling {
			m.wantTick(now.Mono) // a candidate for the initial snapshot
		}
	}
	for _, nk := range pkt.Nacks {
		if nk.Target != m.cfg.ID || nk.Incarnation != m.cfg.Incarnation {
			continue
		}
		ranges := m.ranges[:0]
		for _, r := range nk.Ranges {
			ranges = append(ranges, reliable.Range{First: r.First, Count: r.Count})
		}
		m.ranges = ranges
		var gone int
		m.resend, gone = m.snd.OnNack(ranges, mono, m.resend[:0])
		m.c.nackedGone += uint64(gone)
		for _, body := range m.resend {
			m.send(m.sealer.SealRetransmit(m.dgBuf(), body))
			m.c.sentRetx++
		}
	}
}

// sameID handles a packet carrying our own id: looped back, or another
// syncd misconfigured with our id.
func (m *Mesh) sameID(inc uint64, from netip.AddrPort) {
	if inc == m.cfg.Incarnation {
		return
	}
	m.c.dupID++
	m.event(Event{Reason: DuplicateID, Peer: m.cfg.ID, From: from})
}

// applyData checks a data packet's sequence against the sender's receive
// window and applies its entries.
func (m *Mesh) applyData(sender string, inc, seq uint64, retransmit bool, es []conn.Entry, from netip.AddrPort, now Time) {
	p := m.peer(sender)
	m.byAddr[from.Addr()] = sender
	v := p.recv.OnData(inc, seq, int64(now.Mono))
	if v != reliable.Accept {
		p.rejReplay[v]++
		if v != reliable.Duplicate || !retransmit {
			m.event(Event{Reason: dataReason(v), Peer: sender, From: from, Seq: seq})
		}
		return
	}
	p.heard, p.lastSeen = true, now.Mono
	if retransmit {
		p.retrans++
	}
	if p.recv.Pending() {
		m.wantTick(now.Mono)
	}
	tt := tableTime(now)
	for i := range es {
		m.seeVersion(es[i].Version)
		res := m.tab.UpsertValid(&es[i], tt) // the decoders validated it
		m.c.results[res]++
		switch res {
		case table.Inserted, table.Updated, table.Refreshed:
			p.entries++
			m.imp = append(m.imp, es[i])
		}
	}
}

func (m *Mesh) peer(id string) *peer {
	p, ok := m.peers[id]
	if !ok {
		recv := reliable.NewReceiver(m.cfg.Reliable)
		if !m.complete() {
			// Starting: take the peer's history by snapshot, not by
			// NACKing its whole retransmit ring.
			recv = reliable.NewJoiningReceiver(m.cfg.Reliable)
		}
		p = &peer{id: id, recv: recv, rejReplay: map[reliable.Verdict]uint64{}}
		m.peers[id] = p
		m.event(Event{Reason: PeerHeard, Peer: id})
	}
	return p
}
