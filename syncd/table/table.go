package table

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"time"

	"github.com/saru-lb/saru/syncd/conn"
)

// Result says what Upsert did. Callers count by it.
type Result uint8

// Upsert results.
const (
	Inserted  Result = iota + 1 // a new key
	Updated                     // a newer version replaced the held one
	Refreshed                   // the same version again: expiry extended
	Stale                       // an older version: ignored
	Invalid                     // the entry failed validation: ignored
)

func (r Result) String() string {
	switch r {
	case Inserted:
		return "inserted"
	case Updated:
		return "updated"
	case Refreshed:
		return "refreshed"
	case Stale:
		return "stale"
	case Invalid:
		return "invalid"
	}
	return fmt.Sprintf("result(%d)", uint8(r))
}

// Applied reports whether the table changed content.
func (r Result) Applied() bool { return r == Inserted || r == Updated }

const (
	chunkBits = 12
	chunkSize = 1 << chunkBits
	chunkMask = chunkSize - 1
)

// record is one entry, stored inline. 104 bytes.
type record struct {
	key     conn.Key
	dest    [16]byte
	version uint64
	fwmark  uint32
	flags   uint32
	timeout uint32 // seconds, as last received
	expires uint32 // seconds since Table.base
	extra   uint32 // index+1 into Table.extras; 0 when none
	dport   uint16
	state   uint16
	origin  uint16 // index into Table.origins
}

// slot is an index entry: the key's hash (so probes and growth rarely
// touch records) and the record index+1 (0: empty).
type slot struct {
	hash uint32
	rec  uint32
}

// extra holds the rarely present variable fields.
type extra struct {
	hasSeq bool
	seq    conn.SeqAdjust
	peName string
	peData []byte
}

// Table is the connection table. The zero value is not usable; call New.
type Table struct {
	base   time.Time
	chunks [][]record
	n      uint32
	index  []slot // len is a power of two
	mask   uint32

	extras    []extra
	freeExtra []uint32

	origins     []string
	originIDs   map[string]uint16
	originCount []uint64
	lastOrigin  uint16 // the origin of the previous upsert (batches share one)
}

// New returns an empty table. base is the time expiries are counted from;
// pass the current time.
func New(base time.Time) *Table {
	t := &Table{base: base, originIDs: make(map[string]uint16)}
	t.index = make([]slot, 1024)
	t.mask = 1023
	return t
}

// Len returns the number of entries.
func (t *Table) Len() int { return int(t.n) }

func (t *Table) rec(i uint32) *record { return &t.chunks[i>>chunkBits][i&chunkMask] }

func (t *Table) secs(now time.Time) uint32 {
	d := now.Sub(t.base)
	if d < 0 {
		return 0
	}
	return uint32(d / time.Second)
}

func mix(x uint64) uint64 {
	x ^= x >> 33
	x *= 0xff51afd7ed558ccd
	x ^= x >> 33
	x *= 0xc4ceb9fe1a85ec53
	x ^= x >> 33
	return x
}

func hashKey(k *conn.Key) uint32 {
	le := binary.LittleEndian
	h := mix(le.Uint64(k.ClientAddr[8:]) ^ 0x9e3779b97f4a7c15)
	h = mix(h ^ le.Uint64(k.ClientAddr[:8]))
	h = mix(h ^ le.Uint64(k.VirtualAddr[8:]))
	h = mix(h ^ le.Uint64(k.VirtualAddr[:8]) ^ k.PEHash)
	var b uint64
	if k.IPv6 {
		b |= 1
	}
	if k.Template {
		b |= 2
	}
	h = mix(h ^ (uint64(k.ClientPort) | uint64(k.VirtualPort)<<16 | uint64(k.Protocol)<<32 | b<<40))
	return uint32(h) ^ uint32(h>>32)
}

// find returns the index position holding k, or the empty one where it
// would go, and k's hash.
func (t *Table) find(k *conn.Key) (pos uint32, h uint32, found bool) {
	h = hashKey(k)
	s := h & t.mask
	for {
		v := t.index[s]
		if v.rec == 0 {
			return s, h, false
		}
		if v.hash == h && t.rec(v.rec-1).key == *k {
			return s, h, true
		}
		s = (s + 1) & t.mask
	}
}

// Reserve sizes the index for n entries, so that filling the table to n
// (a snapshot) does not rehash on the way.
func (t *Table) Reserve(n int) {
	for n*4 > len(t.index)*3 {
		t.grow()
	}
}

func (t *Table) grow() {
	old := t.index
	t.index = make([]slot, len(old)*2)
	t.mask = uint32(len(t.index) - 1)
	for _, v := range old {
		if v.rec == 0 {
			continue
		}
		s := v.hash & t.mask
		for t.index[s].rec != 0 {
			s = (s + 1) & t.mask
		}
		t.index[s] = v
	}
}

func (t *Table) originID(o string) uint16 {
	if len(t.origins) > 0 && t.origins[t.lastOrigin] == o {
		return t.lastOrigin
	}
	if id, ok := t.originIDs[o]; ok {
		t.lastOrigin = id
		return id
	}
	id := uint16(len(t.origins))
	t.origins = append(t.origins, o)
	t.originIDs[o] = id
	t.originCount = append(t.originCount, 0)
	return id
}

// Upsert inserts e, or replaces the held entry when e is newer
// (conn.Newer), or extends its expiry when it is the same version from the
// same origin. The entry's timeout counts from now.
func (t *Table) Upsert(e *conn.Entry, now time.Time) Result {
	if e.Validate() != nil {
		return Invalid
	}
	return t.UpsertValid(e, now)
}

// UpsertValid is Upsert for an entry that already passed Validate (the
// wire decoders validate what they return).
func (t *Table) UpsertValid(e *conn.Entry, now time.Time) Result {
	if len(t.originIDs) >= 1<<16-1 {
		if _, ok := t.originIDs[e.Origin]; !ok {
			return Invalid
		}
	}
	k := e.Key()
	pos, h, found := t.find(&k)
	exp := t.secs(now) + e.Timeout
	if found {
		r := t.rec(t.index[pos].rec - 1)
		held := t.origins[r.origin]
		switch {
		case e.Version == r.version && e.Origin == held:
			r.expires = exp
			r.timeout = e.Timeout
			return Refreshed
		case e.Version < r.version || (e.Version == r.version && e.Origin < held):
			return Stale
		}
		t.originCount[r.origin]--
		t.fill(r, e, &k, exp)
		return Updated
	}
	if (t.n+1)*4 > uint32(len(t.index))*3 {
		t.grow()
		pos, _, _ = t.find(&k)
	}
	i := t.n
	if int(i>>chunkBits) == len(t.chunks) {
		t.chunks = append(t.chunks, make([]record, chunkSize))
	}
	t.n++
	r := t.rec(i)
	*r = record{}
	t.fill(r, e, &k, exp)
	t.index[pos] = slot{hash: h, rec: i + 1}
	return Inserted
}

func (t *Table) fill(r *record, e *conn.Entry, k *conn.Key, exp uint32) {
	r.key = *k
	r.dest = e.DestAddr.As16()
	r.version = e.Version
	r.fwmark = e.FWMark
	r.flags = uint32(e.Flags)
	r.timeout = e.Timeout
	r.expires = exp
	r.dport = e.DestPort
	r.state = e.State
	r.origin = t.originID(e.Origin)
	t.originCount[r.origin]++
	if e.HasSeq || e.PEName != "" || len(e.PEData) > 0 {
		if r.extra == 0 {
			if n := len(t.freeExtra); n > 0 {
				r.extra = t.freeExtra[n-1] + 1
				t.freeExtra = t.freeExtra[:n-1]
			} else {
				t.extras = append(t.extras, extra{})
				r.extra = uint32(len(t.extras))
			}
		}
		t.extras[r.extra-1] = extra{hasSeq: e.HasSeq, seq: e.Seq, peName: e.PEName, peData: append([]byte(nil), e.PEData...)}
	} else if r.extra != 0 {
		t.freeExtra = append(t.freeExtra, r.extra-1)
		t.extras[r.extra-1] = extra{}
		r.extra = 0
	}
}

// Get returns the entry held for k.
func (t *Table) Get(k conn.Key, now time.Time) (conn.Entry, bool) {
	pos, _, found := t.find(&k)
	if !found {
		return conn.Entry{}, false
	}
	var e conn.Entry
	t.load(t.rec(t.index[pos].rec-1), &e, t.secs(now))
	return e, true
}

func addr(b [16]byte, v6 bool) netip.Addr {
	a := netip.AddrFrom16(b)
	if !v6 {
		return a.Unmap()
	}
	return a
}

// load fills e from r; Timeout is the remaining time at nowS.
func (t *Table) load(r *record, e *conn.Entry, nowS uint32) {
	v6 := r.key.IPv6
	*e = conn.Entry{
		Protocol:    r.key.Protocol,
		ClientAddr:  addr(r.key.ClientAddr, v6),
		ClientPort:  r.key.ClientPort,
		VirtualAddr: addr(r.key.VirtualAddr, v6),
		VirtualPort: r.key.VirtualPort,
		DestAddr:    addr(r.dest, v6),
		DestPort:    r.dport,
		FWMark:      r.fwmark,
		Flags:       conn.Flags(r.flags),
		State:       r.state,
		Origin:      t.origins[r.origin],
		Version:     r.version,
	}
	if r.expires > nowS {
		e.Timeout = r.expires - nowS
	}
	if r.extra != 0 {
		x := &t.extras[r.extra-1]
		e.HasSeq, e.Seq, e.PEName = x.hasSeq, x.seq, x.peName
		if len(x.peData) > 0 {
			e.PEData = append([]byte(nil), x.peData...)
		}
	}
}

// remove deletes the record at index slot (backward-shift deletion) and
// moves the last record into its place.
func (t *Table) remove(pos uint32) {
	i := t.index[pos].rec - 1
	r := t.rec(i)
	t.originCount[r.origin]--
	if r.extra != 0 {
		t.freeExtra = append(t.freeExtra, r.extra-1)
		t.extras[r.extra-1] = extra{}
	}
	// Backward shift.
	for {
		t.index[pos] = slot{}
		next := pos
		for {
			next = (next + 1) & t.mask
			v := t.index[next]
			if v.rec == 0 {
				goto shifted
			}
			ideal := v.hash & t.mask
			// Can v move to pos? Only if pos lies cyclically in [ideal, next).
			if (next-ideal)&t.mask >= (next-pos)&t.mask {
				t.index[pos] = v
				pos = next
				break
			}
		}
	}
shifted:
	last := t.n - 1
	if i != last {
		lr := t.rec(last)
		ls, _, _ := t.find(&lr.key)
		*r = *lr
		t.index[ls].rec = i + 1
	}
	*t.rec(last) = record{}
	t.n--
	if t.n&chunkMask == 0 && int(t.n>>chunkBits) < len(t.chunks)-1 {
		t.chunks[len(t.chunks)-1] = nil
		t.chunks = t.chunks[:len(t.chunks)-1]
	}
}

// Delete removes k. It reports whether k was held.
func (t *Table) Delete(k conn.Key) bool {
	pos, _, found := t.find(&k)
	if found {
		t.remove(pos)
	}
	return found
}

// Expire removes entries whose timeout has passed at now and returns how
// many it removed.
func (t *Table) Expire(now time.Time) int {
	// Each step of a sweep examines one record or removes one, so the
	// table's size bounds a whole sweep.
	removed, _ := t.ExpireSome(now, 0, int(t.n))
	return removed
}

// ExpireSome examines up to max records from position cursor, removes
// the expired ones, and returns how many it removed and the cursor to
// continue from (0 after the last record). Calling it repeatedly sweeps
// the table in bounded steps.
func (t *Table) ExpireSome(now time.Time, cursor uint32, max int) (removed int, next uint32) {
	nowS := t.secs(now)
	i := cursor
	for ; i < t.n && max > 0; max-- {
		r := t.rec(i)
		if r.expires > nowS {
			i++
			continue
		}
		pos, _, _ := t.find(&r.key)
		t.remove(pos) // moves the last record to i: look at i again
		removed++
	}
	if i >= t.n {
		return removed, 0
	}
	return removed, i
}

// Filter selects entries for Scan. Zero fields match everything.
type Filter struct {
	Virtual  netip.Addr
	Dest     netip.Addr
	Origin   string
	Protocol uint8
}

func (t *Table) match(r *record, f *Filter, origin int) bool {
	if origin >= 0 && int(r.origin) != origin {
		return false
	}
	if f.Protocol != 0 && r.key.Protocol != f.Protocol {
		return false
	}
	if f.Virtual.IsValid() && r.key.VirtualAddr != f.Virtual.As16() {
		return false
	}
	if f.Dest.IsValid() && r.dest != f.Dest.As16() {
		return false
	}
	return true
}

// Scan appends to dst up to max entries matching f, starting at position
// cursor, and returns the extended dst and the cursor to continue from (0
// when the table is exhausted). Positions are stable while the table does
// not shrink; entries removed between calls may shift a moved entry past
// the cursor (it is listed again at the next refresh, never lost from the
// table).
func (t *Table) Scan(cursor uint32, max int, f Filter, now time.Time, dst []conn.Entry) ([]conn.Entry, uint32) {
	origin := -1
	if f.Origin != "" {
		id, ok := t.originIDs[f.Origin]
		if !ok {
			return dst, 0
		}
		origin = int(id)
	}
	nowS := t.secs(now)
	i := cursor
	for ; i < t.n && max > 0; i++ {
		r := t.rec(i)
		if !t.match(r, &f, origin) {
			continue
		}
		dst = append(dst, conn.Entry{})
		t.load(r, &dst[len(dst)-1], nowS)
		max--
	}
	if i >= t.n {
		return dst, 0
	}
	return dst, i
}

// CountByOrigin returns the number of entries held per origin director.
func (t *Table) CountByOrigin() map[string]uint64 {
	out := make(map[string]uint64, len(t.origins))
	for id, c := range t.originCount {
		if c > 0 {
			out[t.origins[id]] = c
		}
	}
	return out
}

// Count returns the number of entries held from origin.
func (t *Table) Count(origin string) uint64 {
	id, ok := t.originIDs[origin]
	if !ok {
		return 0
	}
	return t.originCount[id]
}
