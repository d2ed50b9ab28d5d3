package wire

import (
	"encoding/binary"
	"fmt"
	"net/netip"

	"google.golang.org/protobuf/encoding/protowire"

	syncdpb "github.com/saru-lb/saru/proto/syncd/v1"
	"github.com/saru-lb/saru/syncd/conn"
)

// MaxBatchEntries bounds a decoded batch (a snapshot chunk is the largest).
const MaxBatchEntries = 1 << 20

// columnOverhead bounds the bytes a batch spends outside its column
// payloads: 20 fields at most 2 tag bytes and 3 length bytes each, plus
// the batch's own tag and length in the enclosing message.
const columnOverhead = 20*5 + 6

type builder struct {
	b       syncdpb.Batch
	size    int // column payload bytes
	last    uint64
	origins map[string]uint32
	extras  int
}

func (bb *builder) reset(v6 bool) {
	b := &bb.b
	*b = syncdpb.Batch{
		Ipv6:            v6,
		Protocol:        b.Protocol[:0],
		ClientV4:        b.ClientV4[:0],
		VirtualV4:       b.VirtualV4[:0],
		DestinationV4:   b.DestinationV4[:0],
		ClientV6:        b.ClientV6[:0],
		VirtualV6:       b.VirtualV6[:0],
		DestinationV6:   b.DestinationV6[:0],
		ClientPort:      b.ClientPort[:0],
		VirtualPort:     b.VirtualPort[:0],
		DestinationPort: b.DestinationPort[:0],
		Fwmark:          b.Fwmark[:0],
		Flags:           b.Flags[:0],
		State:           b.State[:0],
		Timeout:         b.Timeout[:0],
		VersionDelta:    b.VersionDelta[:0],
		Origins:         b.Origins[:0],
		OriginIndex:     b.OriginIndex[:0],
		Extras:          b.Extras[:0],
	}
	bb.size, bb.last, bb.extras = 0, 0, 0
	clear(bb.origins)
}

func uv(v uint32) int { return protowire.SizeVarint(uint64(v)) }

func hasExtra(e *conn.Entry) bool { return e.HasSeq || e.PEName != "" || len(e.PEData) > 0 }

func extraSize(e *conn.Entry) int {
	n := 2 + 5 // index
	if e.HasSeq {
		n += 2 + 6*6
	}
	n += 2 + len(e.PEName) + 2 + len(e.PEData)
	return n + 3
}

// entrySize is an upper bound of the bytes e adds to bb.
func (bb *builder) entrySize(e *conn.Entry, withOrigin bool) int {
	n := uv(uint32(e.Protocol)) + uv(uint32(e.ClientPort)) + uv(uint32(e.VirtualPort)) + uv(uint32(e.DestPort)) +
		uv(e.FWMark) + uv(uint32(e.Flags)) + uv(uint32(e.State)) + uv(e.Timeout) +
		protowire.SizeVarint(protowire.EncodeZigZag(int64(e.Version-bb.last)))
	if bb.b.Ipv6 {
		n += 48
	} else {
		n += 12
	}
	if withOrigin {
		n += 5
		if _, ok := bb.origins[e.Origin]; !ok {
			n += 3 + len(e.Origin)
		}
	}
	if hasExtra(e) {
		n += extraSize(e)
	}
	return n
}

func v4(a netip.Addr) uint32 {
	b := a.Unmap().As4()
	return binary.BigEndian.Uint32(b[:])
}

func (bb *builder) add(e *conn.Entry, withOrigin bool) {
	bb.size += bb.entrySize(e, withOrigin)
	b := &bb.b
	i := b.Count
	b.Count++
	b.Protocol = append(b.Protocol, uint32(e.Protocol))
	if b.Ipv6 {
		c, v, d := e.ClientAddr.As16(), e.VirtualAddr.As16(), e.DestAddr.As16()
		b.ClientV6 = append(b.ClientV6, c[:]...)
		b.VirtualV6 = append(b.VirtualV6, v[:]...)
		b.DestinationV6 = append(b.DestinationV6, d[:]...)
	} else {
		b.ClientV4 = append(b.ClientV4, v4(e.ClientAddr))
		b.VirtualV4 = append(b.VirtualV4, v4(e.VirtualAddr))
		b.DestinationV4 = append(b.DestinationV4, v4(e.DestAddr))
	}
	b.ClientPort = append(b.ClientPort, uint32(e.ClientPort))
	b.VirtualPort = append(b.VirtualPort, uint32(e.VirtualPort))
	b.DestinationPort = append(b.DestinationPort, uint32(e.DestPort))
	b.Fwmark = append(b.Fwmark, e.FWMark)
	b.Flags = append(b.Flags, uint32(e.Flags))
	b.State = append(b.State, uint32(e.State))
	b.Timeout = append(b.Timeout, e.Timeout)
	b.VersionDelta = append(b.VersionDelta, int64(e.Version-bb.last))
	bb.last = e.Version
	if withOrigin {
		if bb.origins == nil {
			bb.origins = map[string]uint32{}
		}
		id, ok := bb.origins[e.Origin]
		if !ok {
			id = uint32(len(b.Origins))
			b.Origins = append(b.Origins, e.Origin)
			bb.origins[e.Origin] = id
		}
		b.OriginIndex = append(b.OriginIndex, id)
	}
	if hasExtra(e) {
		x := &syncdpb.EntryExtra{Index: i, PeName: e.PEName, PeData: e.PEData}
		if e.HasSeq {
			x.Seq = &syncdpb.SeqAdjust{
				InInitSeq: e.Seq.In.InitSeq, InDelta: e.Seq.In.Delta, InPreviousDelta: e.Seq.In.PreviousDelta,
				OutInitSeq: e.Seq.Out.InitSeq, OutDelta: e.Seq.Out.Delta, OutPreviousDelta: e.Seq.Out.PreviousDelta,
			}
		}
		b.Extras = append(b.Extras, x)
	}
}

func allZero(s []uint32) bool {
	for _, v := range s {
		if v != 0 {
			return false
		}
	}
	return true
}

// finish drops all-zero columns (an empty column means zeros).
func (bb *builder) finish() *syncdpb.Batch {
	b := &bb.b
	for _, c := range []*[]uint32{&b.Fwmark, &b.Flags, &b.State, &b.Timeout, &b.ClientPort, &b.VirtualPort, &b.DestinationPort, &b.OriginIndex} {
		if allZero(*c) {
			*c = (*c)[:0]
		}
	}
	return b
}

// Packer packs entries into at most one IPv4 and one IPv6 Batch whose
// encoding stays within Budget bytes.
type Packer struct {
	// Budget bounds the encoded size of the batches, tags included.
	Budget int
	// WithOrigins carries each entry's origin (snapshots); peer packets
	// leave it off, the sender being every entry's origin.
	WithOrigins bool

	b4, b6 builder
	n      int
	inited bool
}

func (p *Packer) init() {
	if !p.inited {
		p.b4.reset(false)
		p.b6.reset(true)
		p.inited = true
	}
}

func (p *Packer) size() int {
	n := 0
	if p.b4.b.Count > 0 {
		n += p.b4.size + columnOverhead
	}
	if p.b6.b.Count > 0 {
		n += p.b6.size + columnOverhead
	}
	return n
}

// Len returns the number of entries packed.
func (p *Packer) Len() int { return p.n }

// Fits reports whether e can be added within the budget. An empty packer
// takes any one entry.
func (p *Packer) Fits(e *conn.Entry) bool {
	p.init()
	if p.n == 0 {
		return true
	}
	bb := &p.b4
	if e.IPv6() {
		bb = &p.b6
	}
	extra := bb.entrySize(e, p.WithOrigins)
	if bb.b.Count == 0 {
		extra += columnOverhead
	}
	return p.size()+extra <= p.Budget
}

// Add packs e; call Fits first to respect the budget.
func (p *Packer) Add(e *conn.Entry) {
	p.init()
	if e.IPv6() {
		p.b6.add(e, p.WithOrigins)
	} else {
		p.b4.add(e, p.WithOrigins)
	}
	p.n++
}

// Batches returns the packed batches. They alias the packer's buffers:
// encode them before Reset.
func (p *Packer) Batches() []*syncdpb.Batch {
	p.init()
	var out []*syncdpb.Batch
	if p.b4.b.Count > 0 {
		out = append(out, p.b4.finish())
	}
	if p.b6.b.Count > 0 {
		out = append(out, p.b6.finish())
	}
	return out
}

// Reset empties the packer, keeping its buffers.
func (p *Packer) Reset() {
	p.b4.reset(false)
	p.b6.reset(true)
	p.n = 0
	p.inited = true
}

func col(name string, n, count int) error {
	if n != 0 && n != count {
		return fmt.Errorf("batch column %s: %d elements, want 0 or %d", name, n, count)
	}
	return nil
}

func at(s []uint32, i int) uint32 {
	if len(s) == 0 {
		return 0
	}
	return s[i]
}

func port(s []uint32, i int, name string) (uint16, error) {
	v := at(s, i)
	if v > 0xffff {
		return 0, fmt.Errorf("batch column %s: entry %d: %d is not a port", name, i, v)
	}
	return uint16(v), nil
}

// AppendEntries decodes b and appends its entries to dst. Entries without
// an origin column originate from sender. Nothing is appended on error.
func AppendEntries(dst []conn.Entry, b *syncdpb.Batch, sender string) ([]conn.Entry, error) {
	count := int(b.Count)
	if count > MaxBatchEntries {
		return dst, fmt.Errorf("batch count %d exceeds %d", count, MaxBatchEntries)
	}
	if b.Ipv6 {
		for _, c := range []struct {
			name string
			n    int
		}{{"client_v6", len(b.ClientV6)}, {"virtual_v6", len(b.VirtualV6)}, {"destination_v6", len(b.DestinationV6)}} {
			if c.n != 16*count {
				return dst, fmt.Errorf("batch column %s: %d bytes, want %d", c.name, c.n, 16*count)
			}
		}
		if len(b.ClientV4)+len(b.VirtualV4)+len(b.DestinationV4) != 0 {
			return dst, fmt.Errorf("batch: IPv4 address columns in an IPv6 batch")
		}
	} else {
		for _, c := range []struct {
			name string
			n    int
		}{{"client_v4", len(b.ClientV4)}, {"virtual_v4", len(b.VirtualV4)}, {"destination_v4", len(b.DestinationV4)}} {
			if c.n != count {
				return dst, fmt.Errorf("batch column %s: %d elements, want %d", c.name, c.n, count)
			}
		}
		if len(b.ClientV6)+len(b.VirtualV6)+len(b.DestinationV6) != 0 {
			return dst, fmt.Errorf("batch: IPv6 address columns in an IPv4 batch")
		}
	}
	if len(b.Protocol) != count {
		return dst, fmt.Errorf("batch column protocol: %d elements, want %d", len(b.Protocol), count)
	}
	for _, c := range []struct {
		name string
		n    int
	}{
		{"client_port", len(b.ClientPort)}, {"virtual_port", len(b.VirtualPort)}, {"destination_port", len(b.DestinationPort)},
		{"fwmark", len(b.Fwmark)}, {"flags", len(b.Flags)}, {"state", len(b.State)}, {"timeout", len(b.Timeout)},
		{"version_delta", len(b.VersionDelta)}, {"origin_index", len(b.OriginIndex)},
	} {
		if err := col(c.name, c.n, count); err != nil {
			return dst, err
		}
	}
	for i, o := range b.Origins {
		if o == "" {
			return dst, fmt.Errorf("batch origins[%d]: empty", i)
		}
	}
	start := len(dst)
	fail := func(err error) ([]conn.Entry, error) { return dst[:start], err }
	var version uint64
	for i := 0; i < count; i++ {
		e := conn.Entry{
			FWMark:  at(b.Fwmark, i),
			Flags:   conn.Flags(at(b.Flags, i)),
			Timeout: at(b.Timeout, i),
			Origin:  sender,
		}
		p := b.Protocol[i]
		if p == 0 || p > 255 {
			return fail(fmt.Errorf("batch column protocol: entry %d: %d is not an IP protocol", i, p))
		}
		e.Protocol = uint8(p)
		st := at(b.State, i)
		if st > 0xffff {
			return fail(fmt.Errorf("batch column state: entry %d: %d out of range", i, st))
		}
		e.State = uint16(st)
		var err error
		if e.ClientPort, err = port(b.ClientPort, i, "client_port"); err != nil {
			return fail(err)
		}
		if e.VirtualPort, err = port(b.VirtualPort, i, "virtual_port"); err != nil {
			return fail(err)
		}
		if e.DestPort, err = port(b.DestinationPort, i, "destination_port"); err != nil {
			return fail(err)
		}
		if b.Ipv6 {
			e.ClientAddr = netip.AddrFrom16([16]byte(b.ClientV6[16*i : 16*i+16]))
			e.VirtualAddr = netip.AddrFrom16([16]byte(b.VirtualV6[16*i : 16*i+16]))
			e.DestAddr = netip.AddrFrom16([16]byte(b.DestinationV6[16*i : 16*i+16]))
			if e.ClientAddr.Is4In6() || e.VirtualAddr.Is4In6() || e.DestAddr.Is4In6() {
				return fail(fmt.Errorf("batch: entry %d: IPv4-mapped address in an IPv6 batch", i))
			}
		} else {
			e.ClientAddr = addr4(b.ClientV4[i])
			e.VirtualAddr = addr4(b.VirtualV4[i])
			e.DestAddr = addr4(b.DestinationV4[i])
		}
		if len(b.VersionDelta) > 0 {
			version += uint64(b.VersionDelta[i])
		}
		e.Version = version
		if len(b.OriginIndex) > 0 || len(b.Origins) > 0 {
			oi := int(at(b.OriginIndex, i))
			if oi >= len(b.Origins) {
				return fail(fmt.Errorf("batch column origin_index: entry %d: %d beyond %d origins", i, oi, len(b.Origins)))
			}
			e.Origin = b.Origins[oi]
		}
		dst = append(dst, e)
	}
	for _, x := range b.Extras {
		if x == nil || int(x.Index) >= count {
			return fail(fmt.Errorf("batch extras: index beyond %d entries", count))
		}
		e := &dst[start+int(x.Index)]
		if s := x.Seq; s != nil {
			e.HasSeq = true
			e.Seq = conn.SeqAdjust{
				In:  conn.SeqInfo{InitSeq: s.InInitSeq, Delta: s.InDelta, PreviousDelta: s.InPreviousDelta},
				Out: conn.SeqInfo{InitSeq: s.OutInitSeq, Delta: s.OutDelta, PreviousDelta: s.OutPreviousDelta},
			}
		}
		e.PEName = x.PeName
		if len(x.PeData) > 0 {
			e.PEData = append([]byte(nil), x.PeData...)
		}
	}
	for i := start; i < len(dst); i++ {
		if err := dst[i].Validate(); err != nil {
			return fail(fmt.Errorf("batch entry %d: %w", i-start, err))
		}
	}
	return dst, nil
}

func addr4(v uint32) netip.Addr {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], v)
	return netip.AddrFrom4(b)
}
