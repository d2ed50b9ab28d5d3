package wire

import (
	"net/netip"
	"time"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/saru-lb/saru/syncd/conn"
)

// DataHeader is a data packet's header.
type DataHeader struct {
	Sender      string
	Incarnation uint64
	Sequence    uint64
	Retransmit  bool
}

// column is one packed column of a batch: its raw bytes.
type column struct {
	b    []byte
	seen bool
}

type rawBatch struct {
	count   uint64
	ipv6    bool
	cols    [18]column // indexed by field number
	hasRest bool       // fields the fast path leaves to the generic decoder
}

// fast-path field numbers of Batch.
const (
	fCount = 1 + iota
	fIPv6
	fProtocol
	fClientV4
	fVirtualV4
	fDestV4
	fClientV6
	fVirtualV6
	fDestV6
	fClientPort
	fVirtualPort
	fDestPort
	fFwmark
	fFlags
	fState
	fTimeout
	fVersionDelta
)

func parseBatch(b []byte) (rawBatch, bool) {
	var rb rawBatch
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return rb, false
		}
		b = b[n:]
		switch {
		case (num == fCount || num == fIPv6) && typ == protowire.VarintType:
			v, n := protowire.ConsumeVarint(b)
			if n < 0 {
				return rb, false
			}
			b = b[n:]
			if num == fCount {
				rb.count = v
			} else {
				rb.ipv6 = v != 0
			}
		case num >= fProtocol && num <= fVersionDelta && typ == protowire.BytesType:
			v, n := protowire.ConsumeBytes(b)
			if n < 0 || rb.cols[num].seen {
				return rb, false // repeated chunks: leave to the generic decoder
			}
			rb.cols[num] = column{b: v, seen: true}
			b = b[n:]
		default:
			return rb, false // origins, extras, unpacked or unknown fields
		}
	}
	return rb, true
}

// varints is an iterator over a packed varint column (or zeros).
type varints struct {
	b    []byte
	zero bool
}

func (v *varints) next() uint64 {
	if v.zero {
		return 0
	}
	x, n := protowire.ConsumeVarint(v.b)
	v.b = v.b[n:]
	return x
}

// countVarints counts a packed column's varints; -1 when malformed.
func countVarints(b []byte) int {
	c := 0
	for len(b) > 0 {
		_, n := protowire.ConsumeVarint(b)
		if n < 0 {
			return -1
		}
		b = b[n:]
		c++
	}
	return c
}

// appendFast decodes a canonical peer batch straight into entries. ok is
// false when anything is unusual; the caller then takes the generic path,
// which decodes (or rejects) the same bytes alike.
func appendFast(dst []conn.Entry, b []byte, sender string) ([]conn.Entry, bool) {
	rb, ok := parseBatch(b)
	if !ok || rb.count == 0 || rb.count > MaxBatchEntries {
		return dst, false
	}
	count := int(rb.count)
	var it [18]varints
	for _, f := range []int{fProtocol, fClientPort, fVirtualPort, fDestPort, fFwmark, fFlags, fState, fTimeout, fVersionDelta} {
		c := rb.cols[f]
		switch n := countVarints(c.b); {
		case n == count:
			it[f] = varints{b: c.b}
		case n == 0 && f != fProtocol:
			it[f] = varints{zero: true}
		default:
			return dst, false
		}
	}
	alen := 4
	addrCols := [3]int{fClientV4, fVirtualV4, fDestV4}
	other := [3]int{fClientV6, fVirtualV6, fDestV6}
	if rb.ipv6 {
		alen = 16
		addrCols, other = other, addrCols
	}
	for i := range addrCols {
		if len(rb.cols[addrCols[i]].b) != alen*count || len(rb.cols[other[i]].b) != 0 {
			return dst, false
		}
	}
	start := len(dst)
	ca, va, da := rb.cols[addrCols[0]].b, rb.cols[addrCols[1]].b, rb.cols[addrCols[2]].b
	var version uint64
	for i := 0; i < count; i++ {
		p := it[fProtocol].next()
		cp, vp, dp := it[fClientPort].next(), it[fVirtualPort].next(), it[fDestPort].next()
		fw, fl, st, to := it[fFwmark].next(), it[fFlags].next(), it[fState].next(), it[fTimeout].next()
		version += uint64(protowire.DecodeZigZag(it[fVersionDelta].next()))
		// Generic decoding truncates varints to the field's 32 bits.
		p, cp, vp, dp, st = uint64(uint32(p)), uint64(uint32(cp)), uint64(uint32(vp)), uint64(uint32(dp)), uint64(uint32(st))
		if p == 0 || p > 255 || cp > 0xffff || vp > 0xffff || dp > 0xffff || st > 0xffff {
			return dst[:start], false
		}
		e := conn.Entry{
			Protocol: uint8(p), ClientPort: uint16(cp), VirtualPort: uint16(vp), DestPort: uint16(dp),
			FWMark: uint32(fw), Flags: conn.Flags(uint32(fl)), State: uint16(st), Timeout: uint32(to),
			Origin: sender, Version: version,
		}
		if rb.ipv6 {
			o := 16 * i
			e.ClientAddr = netip.AddrFrom16([16]byte(ca[o : o+16]))
			e.VirtualAddr = netip.AddrFrom16([16]byte(va[o : o+16]))
			e.DestAddr = netip.AddrFrom16([16]byte(da[o : o+16]))
			if e.ClientAddr.Is4In6() || e.VirtualAddr.Is4In6() || e.DestAddr.Is4In6() {
				return dst[:start], false
			}
		} else {
			// fixed32 is little-endian on the wire; the value is the
			// address read big-endian (a.b.c.d = a<<24|...).
			o := 4 * i
			e.ClientAddr = netip.AddrFrom4([4]byte{ca[o+3], ca[o+2], ca[o+1], ca[o]})
			e.VirtualAddr = netip.AddrFrom4([4]byte{va[o+3], va[o+2], va[o+1], va[o]})
			e.DestAddr = netip.AddrFrom4([4]byte{da[o+3], da[o+2], da[o+1], da[o]})
		}
		dst = append(dst, e)
	}
	return dst, true
}

// OpenData verifies a datagram and, when it is a data packet in the
// canonical encoding, decodes it straight into entries (appended to dst)
// without building the generic message. handled is false when the
// datagram is authentic but needs the generic path (OpenPacket and
// AppendEntries), which then decides; any Reason but OK rejects it.
func (s *Sealer) OpenData(dg []byte, now time.Time, dst []conn.Entry) (h DataHeader, out []conn.Entry, handled bool, r Reason) {
	body, r := s.Open(dg, now)
	if r != OK {
		return h, dst, false, r
	}
	start := len(dst)
	var batches int
	b := body
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return h, dst[:start], false, OK
		}
		b = b[n:]
		switch {
		case num == 1 && typ == protowire.BytesType:
			v, n := protowire.ConsumeBytes(b)
			if n < 0 || h.Sender != "" {
				return h, dst[:start], false, OK
			}
			h.Sender, b = string(v), b[n:]
		case (num == 2 || num == 3 || num == 5) && typ == protowire.VarintType:
			v, n := protowire.ConsumeVarint(b)
			if n < 0 {
				return h, dst[:start], false, OK
			}
			b = b[n:]
			switch num {
			case 2:
				h.Incarnation = v
			case 3:
				h.Sequence = v
			case 5:
				h.Retransmit = v != 0
			}
		case num == 6 && typ == protowire.BytesType:
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return h, dst[:start], false, OK
			}
			b = b[n:]
			batches++
			var ok bool
			if dst, ok = appendFast(dst, v, h.Sender); !ok || h.Sender == "" {
				return h, dst[:start], false, OK
			}
		default:
			return h, dst[:start], false, OK // control packets and the unusual
		}
	}
	if h.Sender == "" || len(h.Sender) > MaxSenderLen || h.Incarnation == 0 || h.Sequence == 0 || batches > 2 {
		return h, dst[:start], false, OK
	}
	for i := start; i < len(dst); i++ {
		if dst[i].Validate() != nil {
			return h, dst[:start], false, OK
		}
	}
	return h, dst, true, OK
}
