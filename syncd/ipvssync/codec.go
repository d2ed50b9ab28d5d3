package ipvssync

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
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

	// MaxPENameLen is IP_VS_PENAME_MAXLEN.
	MaxPENameLen = 16
	// MaxPEDataLen is IP_VS_PEDATA_MAXLEN.
	MaxPEDataLen = 255
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

// Connection flags (IP_VS_CONN_F_*, include/uapi/linux/ip_vs.h).
const (
	FlagFwdMask   uint32 = 0x0007
	FlagMasq      uint32 = 0x0000
	FlagLocalNode uint32 = 0x0001
	FlagTunnel    uint32 = 0x0002
	FlagDRoute    uint32 = 0x0003
	FlagBypass    uint32 = 0x0004
	FlagSync      uint32 = 0x0020
	FlagHashed    uint32 = 0x0040
	FlagNoOutput  uint32 = 0x0080
	FlagInactive  uint32 = 0x0100
	FlagOutSeq    uint32 = 0x0200
	FlagInSeq     uint32 = 0x0400
	FlagSeqMask   uint32 = 0x0600
	FlagNoCPort   uint32 = 0x0800
	FlagTemplate  uint32 = 0x1000
	FlagOnePacket uint32 = 0x2000

	// FlagBackupMask is IP_VS_CONN_F_BACKUP_MASK: the bits a backup keeps.
	FlagBackupMask = FlagFwdMask | FlagNoOutput | FlagInactive | FlagSeqMask | FlagNoCPort | FlagTemplate
)

// SeqInfo is struct ip_vs_seq: TCP sequence adjustment for one direction.
type SeqInfo struct {
	InitSeq       uint32
	Delta         uint32
	PreviousDelta uint32
}

// SeqData is struct ip_vs_sync_conn_options (IPVS_OPT_SEQ_DATA).
type SeqData struct {
	In  SeqInfo
	Out SeqInfo
}

// RawOption is an option the codec does not interpret. Only optional ones
// (type with OptFParam set) survive decoding; they are re-emitted as-is.
type RawOption struct {
	Type uint8
	Data []byte
}

// Conn is one connection record. All three addresses have one family; in
// a version 0 message they are always IPv4 and FWMark and Timeout are 0.
type Conn struct {
	Protocol uint8
	Flags    uint32
	State    uint16
	CPort    uint16
	VPort    uint16
	DPort    uint16
	FWMark   uint32
	Timeout  uint32 // seconds; 0 lets the receiver use its default for the state
	CAddr    netip.Addr
	VAddr    netip.Addr
	DAddr    netip.Addr

	Seq    *SeqData // IPVS_OPT_SEQ_DATA, nil when absent
	PEData []byte   // IPVS_OPT_PE_DATA, nil when absent
	PEName string   // IPVS_OPT_PE_NAME, "" when absent
	// Extra holds optional options this codec does not know, in order.
	Extra []RawOption
}

// IPv6 reports whether the record uses the 72-byte IPv6 layout: whether
// CAddr is a 16-byte address (IPv4-mapped ones included, as the kernel
// keeps them in an IPv6 record).
func (c *Conn) IPv6() bool { return c.CAddr.Is6() }

// Template reports whether the record is a persistence template.
func (c *Conn) Template() bool { return c.Flags&FlagTemplate != 0 }

// Message is one sync datagram.
type Message struct {
	// Version is 1, or 0 for the old format (decode only).
	Version uint8
	SyncID  uint8
	Conns   []Conn
}

// DecodeError is a malformed datagram: which field at which byte offset.
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

// Decode parses one sync datagram. It accepts what the kernel's backup
// accepts structurally and reports, with field and offset, what the kernel
// would drop: a size field that differs from the datagram, records running
// past the end, an unknown record version, a malformed or duplicated
// option, or an unknown mandatory option. Trailing bytes after the last
// record are an error too (the kernel ignores them; its master never sends
// any). Decode does not check protocols and states; Validate does.
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

func decodeV1(b []byte) (*Message, error) {
	m := &Message{Version: ProtoVersion, SyncID: b[1]}
	n := int(b[4])
	if n > 0 {
		m.Conns = make([]Conn, 0, n)
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
		c, err := decodeConnV1(b, i, off, end)
		if err != nil {
			return nil, err
		}
		m.Conns = append(m.Conns, c)
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

func decodeConnV1(b []byte, i, off, end int) (Conn, error) {
	var c Conn
	typ := b[off]
	fixed := ConnV4Len
	switch {
	case typ&typeFlagInet6 != 0:
		if typ != typeFlagInet6 {
			return c, derr(i, "type", off, "unknown type bits 0x%02x", typ)
		}
		fixed = ConnV6Len
	case typ != 0:
		return c, derr(i, "type", off, "unknown type 0x%02x", typ)
	}
	if off+fixed > end {
		return c, derr(i, "ver_size", off+2, "record size %d is shorter than the %d-byte %s record", end-off, fixed, map[bool]string{false: "IPv4", true: "IPv6"}[fixed == ConnV6Len])
	}
	be := binary.BigEndian
	c.Protocol = b[off+1]
	c.Flags = be.Uint32(b[off+4:])
	c.State = be.Uint16(b[off+8:])
	c.CPort = be.Uint16(b[off+10:])
	c.VPort = be.Uint16(b[off+12:])
	c.DPort = be.Uint16(b[off+14:])
	c.FWMark = be.Uint32(b[off+16:])
	c.Timeout = be.Uint32(b[off+20:])
	if fixed == ConnV6Len {
		c.CAddr = netip.AddrFrom16([16]byte(b[off+24 : off+40]))
		c.VAddr = netip.AddrFrom16([16]byte(b[off+40 : off+56]))
		c.DAddr = netip.AddrFrom16([16]byte(b[off+56 : off+72]))
	} else {
		c.CAddr = netip.AddrFrom4([4]byte(b[off+24 : off+28]))
		c.VAddr = netip.AddrFrom4([4]byte(b[off+28 : off+32]))
		c.DAddr = netip.AddrFrom4([4]byte(b[off+32 : off+36]))
	}
	p := off + fixed
	var seen uint8
	for p < end {
		if p+2 > end {
			return c, derr(i, "option", p, "one byte left where an option header needs two")
		}
		ptype, plen := b[p], int(b[p+1])
		if plen == 0 {
			return c, derr(i, "option length", p+1, "option type %d has length 0", ptype)
		}
		data := b[p+2 : min(p+2+plen, end)]
		if p+2+plen > end {
			return c, derr(i, "option length", p+1, "option type %d of %d bytes runs past the record end at offset %d", ptype, plen, end)
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
				return c, derr(i, "seq_data", p+1, "length %d, want %d", plen, SeqOptLen)
			}
			if err := dup(1, "seq_data"); err != nil {
				return c, err
			}
			c.Seq = &SeqData{
				In:  SeqInfo{be.Uint32(data[0:]), be.Uint32(data[4:]), be.Uint32(data[8:])},
				Out: SeqInfo{be.Uint32(data[12:]), be.Uint32(data[16:]), be.Uint32(data[20:])},
			}
		case OptPEData:
			// plen is one byte, so never above MaxPEDataLen.
			if err := dup(2, "pe_data"); err != nil {
				return c, err
			}
			c.PEData = append([]byte(nil), data...)
		case OptPEName:
			if plen > MaxPENameLen {
				return c, derr(i, "pe_name", p+1, "length %d exceeds %d", plen, MaxPENameLen)
			}
			if err := dup(4, "pe_name"); err != nil {
				return c, err
			}
			c.PEName = string(data)
		default:
			if ptype&OptFParam == 0 {
				return c, derr(i, "option", p, "unknown mandatory option type %d", ptype)
			}
			c.Extra = append(c.Extra, RawOption{Type: ptype, Data: append([]byte(nil), data...)})
		}
		p += 2 + plen
	}
	return c, nil
}

func decodeV0(b []byte) (*Message, error) {
	m := &Message{Version: 0, SyncID: b[1]}
	n := int(b[0])
	if n > 0 {
		m.Conns = make([]Conn, 0, n)
	}
	off := HeaderLenV0
	be := binary.BigEndian
	for i := 0; i < n; i++ {
		if off+ConnV0Len > len(b) {
			return nil, derr(i, "nr_conns", 0, "v0 record %d at offset %d runs past the %d-byte datagram (header counts %d)", i, off, len(b), n)
		}
		c := Conn{
			Protocol: b[off+1],
			CPort:    be.Uint16(b[off+2:]),
			VPort:    be.Uint16(b[off+4:]),
			DPort:    be.Uint16(b[off+6:]),
			CAddr:    netip.AddrFrom4([4]byte(b[off+8 : off+12])),
			VAddr:    netip.AddrFrom4([4]byte(b[off+12 : off+16])),
			DAddr:    netip.AddrFrom4([4]byte(b[off+16 : off+20])),
			Flags:    uint32(be.Uint16(b[off+20:])),
			State:    be.Uint16(b[off+22:]),
		}
		off += ConnV0Len
		if c.Flags&FlagSeqMask != 0 {
			if off+SeqOptLen > len(b) {
				return nil, derr(i, "seq_data", off, "v0 sequence options run past the %d-byte datagram", len(b))
			}
			// Version 0 copies struct ip_vs_seq in the sender's host
			// order; every Linux IPVS director in practice is
			// little-endian.
			le := binary.LittleEndian
			d := b[off : off+SeqOptLen]
			c.Seq = &SeqData{
				In:  SeqInfo{le.Uint32(d[0:]), le.Uint32(d[4:]), le.Uint32(d[8:])},
				Out: SeqInfo{le.Uint32(d[12:]), le.Uint32(d[16:]), le.Uint32(d[20:])},
			}
			off += SeqOptLen
		}
		m.Conns = append(m.Conns, c)
	}
	if off < len(b) {
		return nil, derr(-1, "size", off, "%d trailing bytes after %d v0 records", len(b)-off, n)
	}
	return m, nil
}

// Protocol numbers the kernel's backup knows (ip_vs_proto_get), with their
// number of states (pp->num_states).
const (
	ProtoTCP  = 6
	ProtoUDP  = 17
	ProtoSCTP = 132
	ProtoAH   = 51
	ProtoESP  = 50
)

// NumStates returns how many states the kernel defines for protocol, and
// false when the kernel's backup does not know the protocol.
func NumStates(protocol uint8) (int, bool) {
	switch protocol {
	case ProtoTCP:
		return TCPStateLast, true
	case ProtoUDP:
		return 1, true // IP_VS_UDP_S_LAST
	case ProtoSCTP:
		return SCTPStateLast, true
	case ProtoAH, ProtoESP:
		return 1, true
	}
	return 0, false
}

// TemplateStateLast is IP_VS_CTPL_S_LAST: templates are NONE (0) or ASSURED (1).
const TemplateStateLast = 2

// ErrInvalid marks an entry that the kernel's backup would drop; errors
// from Validate wrap it.
var ErrInvalid = errors.New("invalid ipvs sync record")

// Validate reports why the kernel's backup would drop c, or nil. The
// checks mirror ip_vs_proc_sync_conn and ip_vs_conn_fill_param_sync.
func (c *Conn) Validate() error {
	if !c.CAddr.IsValid() || !c.VAddr.IsValid() || !c.DAddr.IsValid() {
		return fmt.Errorf("%w: caddr, vaddr and daddr must all be set", ErrInvalid)
	}
	v6 := c.IPv6()
	for _, a := range []struct {
		n string
		a netip.Addr
	}{{"vaddr", c.VAddr}, {"daddr", c.DAddr}} {
		if a.a.Is6() != v6 {
			return fmt.Errorf("%w: %s %s is not the family of caddr %s", ErrInvalid, a.n, a.a, c.CAddr)
		}
	}
	if c.Template() {
		if c.State >= TemplateStateLast {
			return fmt.Errorf("%w: state %d of a template (want 0 or 1)", ErrInvalid, c.State)
		}
	} else {
		n, ok := NumStates(c.Protocol)
		if !ok {
			return fmt.Errorf("%w: protocol %d unknown to IPVS", ErrInvalid, c.Protocol)
		}
		if int(c.State) >= n {
			return fmt.Errorf("%w: state %d of protocol %d (it has %d states)", ErrInvalid, c.State, c.Protocol, n)
		}
	}
	if len(c.PEData) > MaxPEDataLen {
		return fmt.Errorf("%w: pe_data of %d bytes (at most %d)", ErrInvalid, len(c.PEData), MaxPEDataLen)
	}
	if len(c.PEName) > MaxPENameLen {
		return fmt.Errorf("%w: pe_name of %d bytes (at most %d)", ErrInvalid, len(c.PEName), MaxPENameLen)
	}
	if len(c.PEData) > 0 && c.PEName == "" {
		return fmt.Errorf("%w: pe_data without pe_name", ErrInvalid)
	}
	if len(c.PEData) == 0 && c.PEName != "" {
		return fmt.Errorf("%w: pe_name %q without pe_data", ErrInvalid, c.PEName)
	}
	for _, o := range c.Extra {
		if o.Type&OptFParam == 0 {
			return fmt.Errorf("%w: extra option type %d lacks the optional bit", ErrInvalid, o.Type)
		}
		if len(o.Data) == 0 || len(o.Data) > 255 {
			return fmt.Errorf("%w: extra option type %d has %d bytes (1..255)", ErrInvalid, o.Type, len(o.Data))
		}
	}
	if c.encodedLen() > sverMask {
		return fmt.Errorf("%w: record of %d bytes exceeds the 12-bit size field", ErrInvalid, c.encodedLen())
	}
	return nil
}

// encodedLen is the record's unpadded length.
func (c *Conn) encodedLen() int {
	n := ConnV4Len
	if c.IPv6() {
		n = ConnV6Len
	}
	if c.Seq != nil {
		n += 2 + SeqOptLen
	}
	if len(c.PEData) > 0 {
		n += 2 + len(c.PEData)
		n += 2 + len(c.PEName)
	}
	for _, o := range c.Extra {
		n += 2 + len(o.Data)
	}
	return n
}

// appendConn appends c's record, unpadded. c must be valid.
func appendConn(b []byte, c *Conn) []byte {
	be := binary.BigEndian
	var typ uint8
	if c.IPv6() {
		typ = typeFlagInet6
	}
	b = append(b, typ, c.Protocol)
	b = be.AppendUint16(b, uint16(c.encodedLen())&sverMask)
	b = be.AppendUint32(b, c.Flags)
	b = be.AppendUint16(b, c.State)
	b = be.AppendUint16(b, c.CPort)
	b = be.AppendUint16(b, c.VPort)
	b = be.AppendUint16(b, c.DPort)
	b = be.AppendUint32(b, c.FWMark)
	b = be.AppendUint32(b, c.Timeout)
	for _, a := range []netip.Addr{c.CAddr, c.VAddr, c.DAddr} {
		if typ == typeFlagInet6 {
			a16 := a.As16()
			b = append(b, a16[:]...)
		} else {
			a4 := a.Unmap().As4()
			b = append(b, a4[:]...)
		}
	}
	if c.Seq != nil {
		b = append(b, OptSeqData, SeqOptLen)
		for _, s := range []SeqInfo{c.Seq.In, c.Seq.Out} {
			b = be.AppendUint32(b, s.InitSeq)
			b = be.AppendUint32(b, s.Delta)
			b = be.AppendUint32(b, s.PreviousDelta)
		}
	}
	if len(c.PEData) > 0 {
		b = append(b, OptPEData, uint8(len(c.PEData)))
		b = append(b, c.PEData...)
		b = append(b, OptPEName, uint8(len(c.PEName)))
		b = append(b, c.PEName...)
	}
	for _, o := range c.Extra {
		b = append(b, o.Type, uint8(len(o.Data)))
		b = append(b, o.Data...)
	}
	return b
}

// EncodeError reports a record Pack or AppendMessage refused.
type EncodeError struct {
	Conn int // index into the records given
	Err  error
}

func (e *EncodeError) Error() string {
	return fmt.Sprintf("ipvs sync encode: conn %d: %v", e.Conn, e.Err)
}
func (e *EncodeError) Unwrap() error { return e.Err }

// AppendMessage appends one version 1 datagram holding all of conns to b.
// It fails, appending nothing, if a record is invalid, if there are more
// than MaxConnsPerMessage records or if the datagram would exceed maxLen
// (DefaultMaxLen when maxLen <= 0).
func AppendMessage(b []byte, syncID uint8, conns []Conn, maxLen int) ([]byte, error) {
	if maxLen <= 0 {
		maxLen = DefaultMaxLen
	}
	if len(conns) > MaxConnsPerMessage {
		return b, fmt.Errorf("ipvs sync encode: %d records, at most %d per message", len(conns), MaxConnsPerMessage)
	}
	size := HeaderLen
	for i := range conns {
		if err := conns[i].Validate(); err != nil {
			return b, &EncodeError{Conn: i, Err: err}
		}
		if i > 0 {
			size = (size + 3) &^ 3
		}
		size += conns[i].encodedLen()
	}
	if size > maxLen {
		return b, fmt.Errorf("ipvs sync encode: message of %d bytes exceeds maxlen %d", size, maxLen)
	}
	if size > 0xffff {
		return b, fmt.Errorf("ipvs sync encode: message of %d bytes exceeds the 16-bit size field", size)
	}
	start := len(b)
	b = append(b, 0, syncID)
	b = binary.BigEndian.AppendUint16(b, uint16(size))
	b = append(b, uint8(len(conns)), ProtoVersion, 0, 0)
	for i := range conns {
		if i > 0 {
			for (len(b)-start)%4 != 0 {
				b = append(b, 0)
			}
		}
		b = appendConn(b, &conns[i])
	}
	return b, nil
}

// Pack splits conns into as few version 1 datagrams as fit in maxLen
// (DefaultMaxLen when maxLen <= 0), in order, as the kernel's master packs
// them. It returns an *EncodeError, and no datagrams, if a record is
// invalid or cannot fit in a datagram on its own.
func Pack(syncID uint8, conns []Conn, maxLen int) ([][]byte, error) {
	if maxLen <= 0 {
		maxLen = DefaultMaxLen
	}
	var out [][]byte
	first, size := 0, HeaderLen
	flush := func(end int) error {
		if end == first {
			return nil
		}
		msg, err := AppendMessage(nil, syncID, conns[first:end], maxLen)
		if err != nil {
			var ee *EncodeError
			if errors.As(err, &ee) {
				ee.Conn += first
			}
			return err
		}
		out = append(out, msg)
		return nil
	}
	for i := range conns {
		if err := conns[i].Validate(); err != nil {
			return nil, &EncodeError{Conn: i, Err: err}
		}
		l := conns[i].encodedLen()
		if HeaderLen+l > maxLen {
			return nil, &EncodeError{Conn: i, Err: fmt.Errorf("%w: record of %d bytes does not fit a %d-byte message", ErrInvalid, l, maxLen)}
		}
		padded := size
		if i > first {
			padded = (size + 3) &^ 3
		}
		if padded+l > maxLen || i-first == MaxConnsPerMessage {
			if err := flush(i); err != nil {
				return nil, err
			}
			first, padded = i, HeaderLen
		}
		size = padded + l
	}
	if err := flush(len(conns)); err != nil {
		return nil, err
	}
	return out, nil
}
