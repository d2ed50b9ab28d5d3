package ipvssync

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"

	"github.com/saru-lb/saru/syncd/conn"
)

// Wire constants of the IPVS sync protocol.
const (
	// DefaultPort is IP_VS_SYNC_PORT; with sync_ports > 1 the kernel uses
	// DefaultPort+id for thread id.
	DefaultPort = 8848
	// DefaultMaxLen is the backup thread's default receive limit on a
	// 1500-byte-MTU link: 1500 - 20 (IPv4) - 8 (UDP). A datagram larger than
	// the limit is truncated on receive and then dropped for its size.
	DefaultMaxLen = 1472
	// MinBackupMaxLen is the smallest receive limit the kernel lets a
	// backup thread have (start_sync_thread clamps sync_maxlen to 1024).
	MinBackupMaxLen = 1024
	// MaxConnsPerMessage is the most records one message can count
	// (nr_conns is one byte).
	MaxConnsPerMessage = 255

	HeaderLen   = 8  // struct ip_vs_sync_mesg
	HeaderLenV0 = 4  // struct ip_vs_sync_mesg_v0
	ConnV4Len   = 36 // struct ip_vs_sync_v4
	ConnV6Len   = 72 // struct ip_vs_sync_v6
	ConnV0Len   = 24 // struct ip_vs_sync_conn_v0
	SeqOptLen   = 24 // struct ip_vs_sync_conn_options: two struct ip_vs_seq

	// ProtoVersion is SYNC_PROTO_VER, the header's version byte.
	ProtoVersion = 1
)

// DefaultGroup is IP_VS_SYNC_GROUP, the default multicast group.
var DefaultGroup = netip.AddrFrom4([4]byte{224, 0, 0, 81})

// Option types of a v1 connection record (IPVS_OPT_*).
const (
	OptSeqData = 1 // IPVS_OPT_SEQ_DATA: struct ip_vs_sync_conn_options
	OptPEData  = 2 // IPVS_OPT_PE_DATA: persistence-engine data
	OptPEName  = 3 // IPVS_OPT_PE_NAME: persistence-engine name
	// OptFParam is IPVS_OPT_F_PARAM: set on an option type, it marks the
	// option optional, so a receiver that does not know it skips it rather
	// than dropping the record.
	OptFParam = 1 << (7 - 1)
)

// Record type bits and the version/size split of ver_size.
const (
	typeFlagInet6 = 1 << 0 // STYPE_F_INET6
	sverShift     = 12     // SVER_SHIFT
	sverMask      = 0x0fff // SVER_MASK
)

// Message is one sync datagram.
type Message struct {
	// Version is 1, or 0 for the old format (decode only).
	Version uint8
	SyncID  uint8
	// Entries are the records the kernel's backup would take, in order,
	// as syncd's entries (Origin and Version zero). Each has passed
	// conn.Entry.Validate. In a version 0 message all are IPv4 and FWMark
	// and Timeout are 0.
	Entries []conn.Entry
	// Refused are the well-formed records the backup would skip (an
	// unknown protocol or state, a persistence-engine option without its
	// pair) or that syncd cannot carry, each naming its field and offset.
	// The backup goes on with the next record, and so does Decode.
	Refused []DecodeError
}

// DecodeError is a malformed datagram or a refused record: which field at
// which byte offset.
type DecodeError struct {
	Conn   int    // index of the record, -1 for the header
	Field  string // the field at fault, as the kernel's structures name it
	Offset int    // byte offset of that field in the datagram
	Reason string
}

func (e *DecodeError) Error() string {
	if e.Conn < 0 {
		return fmt.Sprintf("ipvs sync message: header field %s at offset %d: %s", e.Field, e.Offset, e.Reason)
	}
	return fmt.Sprintf("ipvs sync message: conn %d: field %s at offset %d: %s", e.Conn, e.Field, e.Offset, e.Reason)
}

func derr(conn int, field string, off int, format string, a ...any) *DecodeError {
	return &DecodeError{Conn: conn, Field: field, Offset: off, Reason: fmt.Sprintf(format, a...)}
}

// IsV1Header reports whether the kernel would parse b as a version 1
// message: version byte 1, reserved byte 0 and spare 0. Anything else with
// a valid size is parsed as version 0 (ip_vs_process_message).
func IsV1Header(b []byte) bool {
	return len(b) >= HeaderLen && b[0] == 0 && b[5] == ProtoVersion && b[6] == 0 && b[7] == 0
}

// Decode parses one sync datagram and checks each record once, where it
// enters syncd. It fails, with field and offset, on what makes the kernel
// drop the whole datagram: a size field that differs from the datagram,
// records running past the end, an unknown record version, a malformed or
// duplicated option, or an unknown mandatory option. Trailing bytes after
// the last record are an error too (the kernel ignores them; its master
// never sends any). Unknown optional options are skipped, as the kernel
// skips them. A well-formed record that the backup would skip, or that
// fails conn.Entry.Validate, goes to Message.Refused.
func Decode(b []byte) (*Message, error) {
	if len(b) < HeaderLenV0 {
		return nil, derr(-1, "size", 0, "datagram of %d bytes is shorter than the %d-byte header", len(b), HeaderLenV0)
	}
	if size := int(binary.BigEndian.Uint16(b[2:4])); size != len(b) {
		return nil, derr(-1, "size", 2, "header says %d bytes, datagram has %d", size, len(b))
	}
	if IsV1Header(b) {
		return decodeV1(b)
	}
	return decodeV0(b)
}

// record is where a decoded record's fields lie in the datagram, so that a
// refusal can name its offset.
type record struct {
	off            int // start of the record
	v0, wide       bool
	peData, peName int // offsets of the options, 0 when absent
}

// offset returns the datagram offset of a field of struct ip_vs_sync_v4,
// _v6 or _conn_v0, or of an option.
func (r *record) offset(field string) int {
	addr := 4
	if r.wide {
		addr = 16
	}
	switch {
	case field == "pe_data":
		return r.peData
	case field == "pe_name":
		return r.peName
	case r.v0:
		return r.off + map[string]int{"protocol": 1, "caddr": 8, "vaddr": 12, "daddr": 16, "flags": 20, "state": 22}[field]
	}
	return r.off + map[string]int{"protocol": 1, "flags": 4, "state": 8, "caddr": 24, "vaddr": 24 + addr, "daddr": 24 + 2*addr}[field]
}

// kernelName names a field of conn.Entry as the kernel's structures do.
func kernelName(field string) string {
	switch field {
	case "client_addr":
		return "caddr"
	case "virtual_addr":
		return "vaddr"
	case "dest_addr":
		return "daddr"
	}
	return field
}

// check is the one check of a decoded record (accept), naming the field
// and its offset.
func (r *record) check(i int, e *conn.Entry) *DecodeError {
	err := accept(e)
	if err == nil {
		return nil
	}
	var fe *conn.FieldError
	errors.As(err, &fe)
	field := kernelName(fe.Field)
	return derr(i, field, r.offset(field), "%s", fe.Reason)
}

// accept is the check of an entry entering syncd from the kernel: what the
// kernel's backup takes (validate), then what syncd can carry
// (conn.Entry.Validate). Its errors hold a *conn.FieldError.
func accept(e *conn.Entry) error {
	if err := validate(e); err != nil {
		return err
	}
	return e.Validate()
}

func decodeV1(b []byte) (*Message, error) {
	m := &Message{Version: ProtoVersion, SyncID: b[1]}
	n := int(b[4])
	if n > 0 {
		m.Entries = make([]conn.Entry, 0, n)
	}
	off := HeaderLen
	for i := 0; i < n; i++ {
		if off+ConnV4Len > len(b) {
			return nil, derr(i, "nr_conns", 4, "header counts %d records, record %d at offset %d runs past the %d-byte datagram", n, i, off, len(b))
		}
		verSize := binary.BigEndian.Uint16(b[off+2 : off+4])
		if v := verSize >> sverShift; v != 0 {
			return nil, derr(i, "ver_size", off+2, "unknown record version %d", v)
		}
		size := int(verSize & sverMask)
		end := off + size
		if end > len(b) {
			return nil, derr(i, "ver_size", off+2, "record size %d runs past the %d-byte datagram", size, len(b))
		}
		// Decoded in place, into memory make zeroed: an entry is large,
		// and copying or clearing it costs more than the checks.
		k := len(m.Entries)
		m.Entries = m.Entries[:k+1]
		e := &m.Entries[k]
		r, err := decodeConnV1(b, i, off, end, e)
		if err != nil {
			return nil, err
		}
		if err := r.check(i, e); err != nil {
			m.Refused = append(m.Refused, *err)
			*e = conn.Entry{} // for the next record
			m.Entries = m.Entries[:k]
		}
		if i == n-1 {
			off = end
		} else {
			off += (size + 3) &^ 3
		}
	}
	if off < len(b) {
		return nil, derr(-1, "size", off, "%d trailing bytes after %d records", len(b)-off, n)
	}
	return m, nil
}

func decodeConnV1(b []byte, i, off, end int, e *conn.Entry) (record, error) {
	r := record{off: off}
	typ := b[off]
	fixed := ConnV4Len
	switch {
	case typ&typeFlagInet6 != 0:
		if typ != typeFlagInet6 {
			return r, derr(i, "type", off, "unknown type bits 0x%02x", typ)
		}
		fixed, r.wide = ConnV6Len, true
	case typ != 0:
		return r, derr(i, "type", off, "unknown type 0x%02x", typ)
	}
	if off+fixed > end {
		return r, derr(i, "ver_size", off+2, "record size %d is shorter than the %d-byte %s record", end-off, fixed, map[bool]string{false: "IPv4", true: "IPv6"}[r.wide])
	}
	be := binary.BigEndian
	e.Protocol = b[off+1]
	e.Flags = conn.Flags(be.Uint32(b[off+4:]))
	e.State = be.Uint16(b[off+8:])
	e.ClientPort = be.Uint16(b[off+10:])
	e.VirtualPort = be.Uint16(b[off+12:])
	e.DestPort = be.Uint16(b[off+14:])
	e.FWMark = be.Uint32(b[off+16:])
	e.Timeout = be.Uint32(b[off+20:])
	if r.wide {
		e.ClientAddr = netip.AddrFrom16([16]byte(b[off+24 : off+40]))
		e.VirtualAddr = netip.AddrFrom16([16]byte(b[off+40 : off+56]))
		e.DestAddr = netip.AddrFrom16([16]byte(b[off+56 : off+72]))
	} else {
		e.ClientAddr = netip.AddrFrom4([4]byte(b[off+24 : off+28]))
		e.VirtualAddr = netip.AddrFrom4([4]byte(b[off+28 : off+32]))
		e.DestAddr = netip.AddrFrom4([4]byte(b[off+32 : off+36]))
	}
	p := off + fixed
	var seen uint8
	for p < end {
		if p+2 > end {
			return r, derr(i, "option", p, "one byte left where an option header needs two")
		}
		ptype, plen := b[p], int(b[p+1])
		if plen == 0 {
			return r, derr(i, "option length", p+1, "option type %d has length 0", ptype)
		}
		data := b[p+2 : min(p+2+plen, end)]
		if p+2+plen > end {
			return r, derr(i, "option length", p+1, "option type %d of %d bytes runs past the record end at offset %d", ptype, plen, end)
		}
		dup := func(bit uint8, name string) error {
			if seen&bit != 0 {
				return derr(i, name, p, "option found twice")
			}
			seen |= bit
			return nil
		}
		switch ptype &^ OptFParam {
		case OptSeqData:
			if plen != SeqOptLen {
				return r, derr(i, "seq_data", p+1, "length %d, want %d", plen, SeqOptLen)
			}
			if err := dup(1, "seq_data"); err != nil {
				return r, err
			}
			e.HasSeq = true
			e.Seq = conn.SeqAdjust{
				In:  conn.SeqInfo{InitSeq: be.Uint32(data[0:]), Delta: be.Uint32(data[4:]), PreviousDelta: be.Uint32(data[8:])},
				Out: conn.SeqInfo{InitSeq: be.Uint32(data[12:]), Delta: be.Uint32(data[16:]), PreviousDelta: be.Uint32(data[20:])},
			}
		case OptPEData:
			// plen is one byte, so never above conn.MaxPEDataLen.
			if err := dup(2, "pe_data"); err != nil {
				return r, err
			}
			e.PEData, r.peData = append([]byte(nil), data...), p
		case OptPEName:
			if plen > conn.MaxPENameLen {
				return r, derr(i, "pe_name", p+1, "length %d exceeds %d", plen, conn.MaxPENameLen)
			}
			if err := dup(4, "pe_name"); err != nil {
				return r, err
			}
			e.PEName, r.peName = string(data), p
		default:
			if ptype&OptFParam == 0 {
				return r, derr(i, "option", p, "unknown mandatory option type %d", ptype)
			}
			// Optional and unknown: skipped, as the kernel skips it.
		}
		p += 2 + plen
	}
	return r, nil
}

func decodeV0(b []byte) (*Message, error) {
	m := &Message{Version: 0, SyncID: b[1]}
	n := int(b[0])
	if n > 0 {
		m.Entries = make([]conn.Entry, 0, n)
	}
	off := HeaderLenV0
	be := binary.BigEndian
	for i := 0; i < n; i++ {
		if off+ConnV0Len > len(b) {
			return nil, derr(i, "nr_conns", 0, "v0 record %d at offset %d runs past the %d-byte datagram (header counts %d)", i, off, len(b), n)
		}
		r := record{off: off, v0: true}
		m.Entries = append(m.Entries, conn.Entry{
			Protocol:    b[off+1],
			ClientPort:  be.Uint16(b[off+2:]),
			VirtualPort: be.Uint16(b[off+4:]),
			DestPort:    be.Uint16(b[off+6:]),
			ClientAddr:  netip.AddrFrom4([4]byte(b[off+8 : off+12])),
			VirtualAddr: netip.AddrFrom4([4]byte(b[off+12 : off+16])),
			DestAddr:    netip.AddrFrom4([4]byte(b[off+16 : off+20])),
			Flags:       conn.Flags(be.Uint16(b[off+20:])),
			State:       be.Uint16(b[off+22:]),
		})
		e := &m.Entries[len(m.Entries)-1]
		off += ConnV0Len
		if e.Flags&conn.FlagSeqMask != 0 {
			if off+SeqOptLen > len(b) {
				return nil, derr(i, "seq_data", off, "v0 sequence options run past the %d-byte datagram", len(b))
			}
			// Version 0 copies struct ip_vs_seq in the sender's host
			// order; every Linux IPVS director in practice is
			// little-endian.
			le := binary.LittleEndian
			d := b[off : off+SeqOptLen]
			e.HasSeq = true
			e.Seq = conn.SeqAdjust{
				In:  conn.SeqInfo{InitSeq: le.Uint32(d[0:]), Delta: le.Uint32(d[4:]), PreviousDelta: le.Uint32(d[8:])},
				Out: conn.SeqInfo{InitSeq: le.Uint32(d[12:]), Delta: le.Uint32(d[16:]), PreviousDelta: le.Uint32(d[20:])},
			}
			off += SeqOptLen
		}
		if err := r.check(i, e); err != nil {
			m.Refused = append(m.Refused, *err)
			m.Entries = m.Entries[:len(m.Entries)-1]
		}
	}
	if off < len(b) {
		return nil, derr(-1, "size", off, "%d trailing bytes after %d v0 records", len(b)-off, n)
	}
	return m, nil
}

// Protocol numbers the kernel's backup knows (ip_vs_proto_get) besides
// conn's TCP, UDP and SCTP.
const (
	ProtoAH  = 51
	ProtoESP = 50
)

// NumStates returns how many states the kernel defines for protocol, and
// false when the kernel's backup does not know the protocol.
func NumStates(protocol uint8) (int, bool) {
	switch protocol {
	case conn.ProtoTCP:
		return TCPStateLast, true
	case conn.ProtoUDP:
		return 1, true // IP_VS_UDP_S_LAST
	case conn.ProtoSCTP:
		return SCTPStateLast, true
	case ProtoAH, ProtoESP:
		return 1, true
	}
	return 0, false
}

// TemplateStateLast is IP_VS_CTPL_S_LAST: templates are NONE (0) or ASSURED (1).
const TemplateStateLast = 2

// ErrInvalid marks an entry that the kernel's backup would drop; the
// errors of validate, and so EncodeError, wrap it.
var ErrInvalid = errors.New("invalid ipvs sync record")

// wide reports whether e takes the 72-byte IPv6 layout: whether its client
// address is a 16-byte one (IPv4-mapped included, as the kernel keeps them
// in an IPv6 record).
func wide(e *conn.Entry) bool { return e.ClientAddr.Is6() }

// validate reports why the kernel's backup would drop e, or nil: an error
// wrapping ErrInvalid and a *conn.FieldError that names the field as
// struct ip_vs_sync_v4 does. The checks mirror ip_vs_proc_sync_conn and
// ip_vs_conn_fill_param_sync.
func validate(e *conn.Entry) error {
	bad := func(field, format string, a ...any) error {
		return fmt.Errorf("%w: %w", ErrInvalid, &conn.FieldError{Field: field, Reason: fmt.Sprintf(format, a...)})
	}
	for _, a := range []struct {
		n string
		a netip.Addr
	}{{"caddr", e.ClientAddr}, {"vaddr", e.VirtualAddr}, {"daddr", e.DestAddr}} {
		if !a.a.IsValid() {
			return bad(a.n, "missing")
		}
		if a.a.Is6() != wide(e) {
			return bad(a.n, "%s is not the family of caddr %s", a.a, e.ClientAddr)
		}
	}
	if e.Flags.Template() {
		if e.State >= TemplateStateLast {
			return bad("state", "%d of a template (want 0 or 1)", e.State)
		}
	} else {
		n, ok := NumStates(e.Protocol)
		if !ok {
			return bad("protocol", "%d unknown to IPVS", e.Protocol)
		}
		if int(e.State) >= n {
			return bad("state", "%d of protocol %d (it has %d states)", e.State, e.Protocol, n)
		}
	}
	if len(e.PEData) > conn.MaxPEDataLen {
		return bad("pe_data", "%d bytes (at most %d)", len(e.PEData), conn.MaxPEDataLen)
	}
	if len(e.PEName) > conn.MaxPENameLen {
		return bad("pe_name", "%d bytes (at most %d)", len(e.PEName), conn.MaxPENameLen)
	}
	if len(e.PEData) > 0 && e.PEName == "" {
		return bad("pe_data", "set without pe_name")
	}
	if len(e.PEData) == 0 && e.PEName != "" {
		return bad("pe_name", "%q without pe_data", e.PEName)
	}
	return nil
}

// encodedLen is the record's unpadded length.
func encodedLen(e *conn.Entry) int {
	n := ConnV4Len
	if wide(e) {
		n = ConnV6Len
	}
	if e.HasSeq {
		n += 2 + SeqOptLen
	}
	if len(e.PEData) > 0 {
		n += 2 + len(e.PEData)
		n += 2 + len(e.PEName)
	}
	return n
}

// appendConn appends e's record, unpadded. e must be valid.
func appendConn(b []byte, e *conn.Entry) []byte {
	be := binary.BigEndian
	var typ uint8
	if wide(e) {
		typ = typeFlagInet6
	}
	b = append(b, typ, e.Protocol)
	b = be.AppendUint16(b, uint16(encodedLen(e))&sverMask)
	b = be.AppendUint32(b, uint32(e.Flags))
	b = be.AppendUint16(b, e.State)
	b = be.AppendUint16(b, e.ClientPort)
	b = be.AppendUint16(b, e.VirtualPort)
	b = be.AppendUint16(b, e.DestPort)
	b = be.AppendUint32(b, e.FWMark)
	b = be.AppendUint32(b, e.Timeout)
	for _, a := range []netip.Addr{e.ClientAddr, e.VirtualAddr, e.DestAddr} {
		if typ == typeFlagInet6 {
			a16 := a.As16()
			b = append(b, a16[:]...)
		} else {
			a4 := a.Unmap().As4()
			b = append(b, a4[:]...)
		}
	}
	if e.HasSeq {
		b = append(b, OptSeqData, SeqOptLen)
		for _, s := range []conn.SeqInfo{e.Seq.In, e.Seq.Out} {
			b = be.AppendUint32(b, s.InitSeq)
			b = be.AppendUint32(b, s.Delta)
			b = be.AppendUint32(b, s.PreviousDelta)
		}
	}
	if len(e.PEData) > 0 {
		b = append(b, OptPEData, uint8(len(e.PEData)))
		b = append(b, e.PEData...)
		b = append(b, OptPEName, uint8(len(e.PEName)))
		b = append(b, e.PEName...)
	}
	return b
}

// appendRecord appends e's record to the datagram msg that starts at
// start and holds n records, padding the previous one to 4 bytes.
func appendRecord(msg []byte, start, n int, e *conn.Entry) []byte {
	if n > 0 {
		for (len(msg)-start)%4 != 0 {
			msg = append(msg, 0)
		}
	}
	return appendConn(msg, e)
}

// appendHeader appends a version 1 header; finishHeader sets its size and count.
func appendHeader(b []byte, syncID uint8) []byte {
	return append(b, 0, syncID, 0, 0, 0, ProtoVersion, 0, 0)
}

func finishHeader(msg []byte, n int) {
	binary.BigEndian.PutUint16(msg[2:4], uint16(len(msg)))
	msg[4] = uint8(n)
}

// EncodeError reports an entry Pack or AppendMessage refused.
type EncodeError struct {
	Conn int // index into the entries given
	Err  error
}

func (e *EncodeError) Error() string {
	return fmt.Sprintf("ipvs sync encode: conn %d: %v", e.Conn, e.Err)
}
func (e *EncodeError) Unwrap() error { return e.Err }

// AppendMessage appends one version 1 datagram holding all of entries to
// b. It fails, appending nothing, if the kernel's backup would drop an
// entry (an *EncodeError), if there are more than MaxConnsPerMessage
// entries or if the datagram would exceed maxLen (DefaultMaxLen when
// maxLen <= 0).
func AppendMessage(b []byte, syncID uint8, entries []conn.Entry, maxLen int) ([]byte, error) {
	if maxLen <= 0 {
		maxLen = DefaultMaxLen
	}
	if len(entries) > MaxConnsPerMessage {
		return b, fmt.Errorf("ipvs sync encode: %d records, at most %d per message", len(entries), MaxConnsPerMessage)
	}
	size := HeaderLen
	for i := range entries {
		if err := validate(&entries[i]); err != nil {
			return b, &EncodeError{Conn: i, Err: err}
		}
		if i > 0 {
			size = (size + 3) &^ 3
		}
		size += encodedLen(&entries[i])
	}
	if size > maxLen {
		return b, fmt.Errorf("ipvs sync encode: message of %d bytes exceeds maxlen %d", size, maxLen)
	}
	if size > 0xffff {
		return b, fmt.Errorf("ipvs sync encode: message of %d bytes exceeds the 16-bit size field", size)
	}
	start := len(b)
	b = appendHeader(b, syncID)
	for i := range entries {
		b = appendRecord(b, start, i, &entries[i])
	}
	finishHeader(b[start:], len(entries))
	return b, nil
}

// Pack splits entries into as few version 1 datagrams as fit in maxLen
// (DefaultMaxLen when maxLen <= 0, at most 65535), in order, as the
// kernel's master packs them. An entry the kernel's backup would drop, or
// too large for a datagram on its own, is left out and reported in
// refused, so that one bad entry does not hold back the rest.
func Pack(syncID uint8, entries []conn.Entry, maxLen int) (msgs [][]byte, refused []EncodeError) {
	if maxLen <= 0 {
		maxLen = DefaultMaxLen
	}
	maxLen = min(maxLen, 0xffff)
	var msg []byte // the datagram being filled, with n records
	n := 0
	flush := func() {
		if n > 0 {
			finishHeader(msg, n)
			msgs = append(msgs, msg)
		}
		msg, n = nil, 0
	}
	for i := range entries {
		e := &entries[i]
		if err := validate(e); err != nil {
			refused = append(refused, EncodeError{Conn: i, Err: err})
			continue
		}
		l := encodedLen(e)
		if HeaderLen+l > maxLen {
			refused = append(refused, EncodeError{Conn: i, Err: fmt.Errorf("%w: record of %d bytes does not fit a %d-byte message", ErrInvalid, l, maxLen)})
			continue
		}
		if n > 0 && (((len(msg)+3)&^3)+l > maxLen || n == MaxConnsPerMessage) {
			flush()
		}
		if n == 0 {
			msg = appendHeader(nil, syncID)
		}
		msg = appendRecord(msg, 0, n, e)
		n++
	}
	flush()
	return msgs, refused
}
