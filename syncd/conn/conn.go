package conn

import (
	"context"
	"fmt"
	"net/netip"
)

// IP protocol numbers carried in Entry.Protocol.
const (
	ProtoTCP  uint8 = 6
	ProtoUDP  uint8 = 17
	ProtoSCTP uint8 = 132
)

// Flags are the kernel's IP_VS_CONN_F_* bits (include/uapi/linux/ip_vs.h).
type Flags uint32

// IP_VS_CONN_F_* values.
const (
	FlagFwdMask   Flags = 0x0007 // forwarding method mask
	FlagMasq      Flags = 0x0000 // NAT
	FlagLocalNode Flags = 0x0001
	FlagTunnel    Flags = 0x0002
	FlagDRoute    Flags = 0x0003
	FlagBypass    Flags = 0x0004
	FlagSync      Flags = 0x0020 // entry created by sync
	FlagHashed    Flags = 0x0040
	FlagNoOutput  Flags = 0x0080
	FlagInactive  Flags = 0x0100
	FlagOutSeq    Flags = 0x0200 // out sequence-adjust data valid
	FlagInSeq     Flags = 0x0400 // in sequence-adjust data valid
	FlagSeqMask   Flags = 0x0600
	FlagNoCPort   Flags = 0x0800 // client port unknown (persistence template)
	FlagTemplate  Flags = 0x1000 // persistence template
	FlagOnePacket Flags = 0x2000
)

// Template reports whether the entry is a persistence template.
func (f Flags) Template() bool { return f&FlagTemplate != 0 }

// SeqInfo is the kernel's struct ip_vs_seq: TCP sequence adjustment for one
// direction (used by application helpers such as FTP that rewrite payload).
type SeqInfo struct {
	InitSeq       uint32
	Delta         uint32
	PreviousDelta uint32
}

// SeqAdjust is struct ip_vs_sync_conn_options: both directions.
type SeqAdjust struct {
	In  SeqInfo
	Out SeqInfo
}

// Entry is one connection entry: every field of an IPVS sync protocol v1
// connection message, plus the origin director and version.
//
// All three addresses are of one family (IPv4 or IPv6). For fwmark
// persistence templates the kernel stores the fwmark in VirtualAddr, as it
// does; Entry keeps whatever the kernel sent.
type Entry struct {
	Protocol    uint8 // IP protocol number
	ClientAddr  netip.Addr
	ClientPort  uint16
	VirtualAddr netip.Addr
	VirtualPort uint16
	DestAddr    netip.Addr // real server
	DestPort    uint16
	FWMark      uint32
	// Flags are IP_VS_CONN_F_* bits; entries of the conntrack backend
	// carry nf_conntrack's IPS_* status bits instead (see syncd/conntrack).
	Flags   Flags
	State   uint16 // protocol state (IP_VS_TCP_S_* for TCP; TCP_CONNTRACK_* for conntrack)
	Timeout uint32 // seconds until the entry expires

	// HasSeq says Seq is present (IPVS_OPT_SEQ_DATA).
	HasSeq bool
	Seq    SeqAdjust

	// PEName and PEData are the persistence engine's name (e.g. "sip") and
	// data (e.g. the Call-ID); empty when none (IPVS_OPT_PE_NAME/_DATA).
	PEName string
	PEData []byte

	// Origin is the id of the director whose kernel exported the entry.
	// Backends leave it empty on export; syncd fills it in.
	Origin string
	// Version orders updates: the higher version wins, whatever the
	// origin (ties broken by origin id). syncd assigns it on export.
	Version uint64
}

// IPv6 reports whether the entry's addresses are IPv6.
func (e *Entry) IPv6() bool { return e.ClientAddr.Is6() && !e.ClientAddr.Is4In6() }

// Limits on the variable-length fields, as the kernel has them.
const (
	MaxPENameLen = 16  // IP_VS_PENAME_MAXLEN
	MaxPEDataLen = 255 // the v1 option length is one byte
)

// FieldError is an entry that cannot be carried or keyed: which field
// (as the wire names it) and why.
type FieldError struct {
	Field  string
	Reason string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Reason }

func invalid(field, format string, a ...any) *FieldError {
	return &FieldError{Field: field, Reason: fmt.Sprintf(format, a...)}
}

// Validate checks that the entry can be carried and keyed. The edges where
// entries enter syncd (a backend's decoder, the peer wire) call it once;
// what passes needs no second check. A failure is a *FieldError.
func (e *Entry) Validate() error {
	if !e.ClientAddr.IsValid() {
		return invalid("client_addr", "missing")
	}
	if !e.VirtualAddr.IsValid() {
		return invalid("virtual_addr", "missing")
	}
	if !e.DestAddr.IsValid() {
		return invalid("dest_addr", "missing")
	}
	v6 := e.IPv6()
	for _, f := range []struct {
		name string
		a    netip.Addr
	}{{"virtual_addr", e.VirtualAddr}, {"dest_addr", e.DestAddr}} {
		if (f.a.Is6() && !f.a.Is4In6()) != v6 {
			return invalid(f.name, "%s is not the same family as client_addr %s", f.a, e.ClientAddr)
		}
	}
	if e.Protocol == 0 {
		return invalid("protocol", "missing")
	}
	if len(e.PEName) > MaxPENameLen {
		return invalid("pe_name", "%d bytes, at most %d", len(e.PEName), MaxPENameLen)
	}
	if len(e.PEData) > MaxPEDataLen {
		return invalid("pe_data", "%d bytes, at most %d", len(e.PEData), MaxPEDataLen)
	}
	if len(e.PEData) > 0 && e.PEName == "" {
		return invalid("pe_data", "set without pe_name")
	}
	return nil
}

// Key identifies a connection as the IPVS connection hash does
// (ip_vs_conn_hashkey_conn): family, protocol, client and virtual address
// and port, and whether it is a persistence template. Templates of a
// persistence engine are keyed by the engine's data as the kernel's
// pe->hashkey_raw does; PEHash holds a hash of the engine name and data.
// Key is comparable and fixed-size.
type Key struct {
	ClientAddr  [16]byte // IPv4 as IPv4-mapped IPv6
	VirtualAddr [16]byte
	PEHash      uint64
	ClientPort  uint16
	VirtualPort uint16
	Protocol    uint8
	IPv6        bool
	Template    bool
}

// Key returns the entry's key.
func (e *Entry) Key() Key {
	k := Key{
		ClientAddr:  e.ClientAddr.As16(),
		VirtualAddr: e.VirtualAddr.As16(),
		ClientPort:  e.ClientPort,
		VirtualPort: e.VirtualPort,
		Protocol:    e.Protocol,
		IPv6:        e.IPv6(),
		Template:    e.Flags.Template(),
	}
	if k.Template && e.PEName != "" {
		k.PEHash = PEHash(e.PEName, e.PEData)
	}
	return k
}

// PEHash is the 64-bit FNV-1a hash of a persistence engine's name and data,
// stable across processes.
func PEHash(name string, data []byte) uint64 {
	const off, prime = 14695981039346656037, 1099511628211
	h := uint64(off)
	for i := 0; i < len(name); i++ {
		h = (h ^ uint64(name[i])) * prime
	}
	h = (h ^ 0xff) * prime
	for _, b := range data {
		h = (h ^ uint64(b)) * prime
	}
	return h
}

// Newer reports whether a should replace b (same key): higher version wins,
// ties go to the higher origin id so every peer decides alike.
func Newer(a, b *Entry) bool {
	if a.Version != b.Version {
		return a.Version > b.Version
	}
	return a.Origin > b.Origin
}

// Backend is a local connection table syncd bridges to its peers: the IPVS
// kernel (through its sync protocol) or nf_conntrack.
type Backend interface {
	// Run exports the local table's entries until ctx is done: it calls
	// export with batches of entries created or updated locally (Origin
	// and Version left zero; syncd stamps them), each of which passed
	// Validate where the backend decoded it. export copies what it
	// keeps, so the backend may reuse the slice once export returns. Run
	// returns ctx.Err() on cancellation, or the error that stopped it.
	Run(ctx context.Context, export func([]Entry)) error
	// Import installs peers' entries into the local table. It must not
	// cause them to be exported again as local entries.
	Import(ctx context.Context, entries []Entry) error
}
