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
	m.opener.SetKeyring(m.kr)
	m.Apply(m.opener.Open(dg, from, now), now)
}

// Opened is a datagram verified and decoded by an Opener, for Apply.
type Opened struct {
	from netip.AddrPort
	own  bool // looped back, or a forgery of our id
	r    wire.Reason
	err  error
	fast bool
	h    wire.DataHeader
	es   []conn.Entry
	pkt  syncdpb.Packet
}

// Opener does the costly half of Receive, verifying and decoding, on its
// own state, so that a caller can run it outside the lock that guards the
// Mesh and hand the result to Apply. It is not safe for concurrent use:
// one per receiving goroutine.
type Opener struct {
	selfPrefix []byte
	sealer     *wire.Sealer
	d          Opened
}

// NewOpener returns an Opener for datagrams to m.
func (m *Mesh) NewOpener() *Opener {
	return &Opener{selfPrefix: m.selfPrefix, sealer: wire.NewSealer(m.kr)}
}

// Keyring is the keyring in use, for an Opener's SetKeyring.
func (m *Mesh) Keyring() *wire.Keyring { return m.kr }

// SetKeyring switches to the Mesh's keyring after SetKeys.
func (o *Opener) SetKeyring(kr *wire.Keyring) { o.sealer.SetKeyring(kr) }

// Open verifies and decodes dg from from at now. The result aliases the
// Opener's storage until the next Open.
func (o *Opener) Open(dg []byte, from netip.AddrPort, now Time) *Opened {
	d := &o.d
	d.from, d.own, d.err, d.fast = from, false, nil, false
	if wire.IsFrom(dg, o.selfPrefix) {
		d.own = true // our own, looped back (a forgery of our id is ignored alike)
		return d
	}
	// Data packets in the canonical encoding decode straight into
	// entries; anything else takes the generic path.
	d.h, d.es, d.fast, d.r = o.sealer.OpenData(dg, now.Wall, d.es[:0])
	if d.r == wire.OK && d.fast {
		return d
	}
	if d.r == wire.OK {
		proto.Reset(&d.pkt)
		d.r, d.err = o.sealer.OpenPacket(dg, now.Wall, &d.pkt)
	}
	if d.r != wire.OK {
		return d
	}
	for _, b := range d.pkt.Batches {
		var err error
		if d.es, err = wire.AppendEntries(d.es, b, d.pkt.Sender); err != nil {
			d.r, d.err = wire.Malformed, err
			return d
		}
	}
	return d
}

// Apply takes a datagram Open verified and decoded.
func (m *Mesh) Apply(d *Opened, now Time) {
	if d.own {
		return
	}
	m.now = now.Mono
	switch {
	case d.r != wire.OK:
		m.reject(d.r, d.from, d.err)
	case d.fast:
		if d.h.Sender == m.cfg.ID {
			m.sameID(d.h.Incarnation, d.from)
			return
		}
		m.applyData(d.h.Sender, d.h.Incarnation, d.h.Sequence, d.h.Retransmit, d.es, d.from, now)
	case d.pkt.Sender == m.cfg.ID:
		m.sameID(d.pkt.Incarnation, d.from)
	case d.pkt.Sequence != 0:
		m.applyData(d.pkt.Sender, d.pkt.Incarnation, d.pkt.Sequence, d.pkt.Retransmit, d.es, d.from, now)
	default:
		m.control(&d.pkt, d.from, now)
	}
}

// reject counts a datagram refused before it reached a peer's state. Only
// a malformed one passed the MAC, so only it is charged to a peer, the
// one whose address it came from: a forgery from a peer's address (a
// spoof costs nothing) says nothing about that peer.
func (m *Mesh) reject(r wire.Reason, from netip.AddrPort, err error) {
	m.c.rejected[r]++
	if r == wire.Malformed {
		if p := m.peerAt(from.Addr()); p != nil {
			p.rejAuth++
		}
	}
	m.event(Event{Reason: Reason(r.String()), From: from, Err: err})
}

// maxPeerAddrs bounds the source addresses remembered per peer (a
// multi-homed peer, a renumbering): the oldest is forgotten first.
const maxPeerAddrs = 4

// heardAt remembers that an authentic and fresh packet of p came from
// addr. Nothing else writes per-address state, so spoofed sources, even
// replaying genuine datagrams, cost no memory.
func (p *peer) heardAt(addr netip.Addr) {
	for _, a := range p.addrs {
		if a == addr {
			return
		}
	}
	p.addrs[p.nextAddr] = addr
	p.nextAddr = (p.nextAddr + 1) % maxPeerAddrs
}

// peerAt returns the peer last heard at addr, if any.
func (m *Mesh) peerAt(addr netip.Addr) *peer {
	for _, p := range m.peers {
		for _, a := range p.addrs {
			if a == addr && a.IsValid() {
				return p
			}
		}
	}
	return nil
}

// control handles a heartbeat and/or NACKs.
func (m *Mesh) control(pkt *syncdpb.Packet, from netip.AddrPort, now Time) {
	mono := int64(now.Mono)
	p := m.peer(pkt.Sender)
	if v := p.recv.OnControl(pkt.Incarnation, pkt.ControlSequence, mono); v != reliable.Accept {
		p.rejReplay[v]++
		m.event(Event{Reason: controlReason(v), Peer: pkt.Sender, From: from})
		return
	}
	p.heardAt(from.Addr())
	p.heard, p.lastSeen = true, now.Mono
	if hb := pkt.Heartbeat; hb != nil {
		p.recv.OnHeartbeat(hb.HighestSequence, hb.LowestRetained, mono)
		p.api, p.ready = hb.ApiAddress, hb.Ready
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
	v := p.recv.OnData(inc, seq, int64(now.Mono))
	if v != reliable.Accept {
		if v != reliable.Unanchored { // not a replay: data heard too early
			p.rejReplay[v]++
		}
		if v != reliable.Duplicate || !retransmit {
			m.event(Event{Reason: dataReason(v), Peer: sender, From: from, Seq: seq})
		}
		return
	}
	p.heardAt(from.Addr())
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
		if !m.complete() || m.snapOrigins[id] {
			// Starting, or first heard after a snapshot that held its
			// entries: take the peer's history by snapshot, not by
			// NACKing its whole retransmit ring.
			recv = reliable.NewJoiningReceiver(m.cfg.Reliable)
		}
		p = &peer{id: id, recv: recv, rejReplay: map[reliable.Verdict]uint64{}}
		m.peers[id] = p
		m.event(Event{Reason: PeerHeard, Peer: id})
	}
	return p
}
