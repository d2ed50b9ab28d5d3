package ipvssync

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"net/netip"
	"strconv"
	"strings"

	"github.com/saru-lb/saru/syncd/conn"
)

// ProcConn is one line of /proc/net/ip_vs_conn (ip_vs_conn_seq_show).
// The kernel prints neither the connection flags nor the fwmark, and
// prints the time left rather than the full timeout.
type ProcConn struct {
	Protocol  uint8  // IP protocol number; 0 for "IP" (fwmark templates)
	ProtoName string // as printed: TCP, UDP, SCTP, IP, IP_<n>, ...
	CAddr     netip.Addr
	CPort     uint16
	VAddr     netip.Addr
	VPort     uint16
	DAddr     netip.Addr
	DPort     uint16
	StateName string // as printed
	// State is the state number when StateKnown.
	State      uint16
	StateKnown bool
	// Template is inferred: the kernel prints templates' states as NONE or
	// ASSURED, with client port 0, and fwmark templates with protocol IP.
	Template bool
	Expires  uint32 // seconds left before the entry expires
	PEName   string // persistence engine, "" when none
	PEData   string // the engine's data as its show_pe_data prints it
	// Origin is "LOCAL" or "SYNC" (created by the sync backup) in
	// /proc/net/ip_vs_conn_sync, "" in /proc/net/ip_vs_conn.
	Origin string
}

// FromSync reports whether the kernel created the entry from a sync
// message rather than from local traffic (IP_VS_CONN_F_SYNC).
func (p *ProcConn) FromSync() bool { return p.Origin == "SYNC" }

// ProcError is a malformed /proc/net/ip_vs_conn line.
type ProcError struct {
	Line   int // 1-based
	Field  string
	Value  string
	Reason string
}

func (e *ProcError) Error() string {
	return fmt.Sprintf("ip_vs_conn line %d: field %s %q: %s", e.Line, e.Field, e.Value, e.Reason)
}

var protoNames = map[string]uint8{
	"IP": 0, "ICMP": 1, "TCP": conn.ProtoTCP, "UDP": conn.ProtoUDP, "SCTP": conn.ProtoSCTP,
	"ICMPv6": 58, "AH": ProtoAH, "ESP": ProtoESP,
}

// ParseConnTable parses the text of /proc/net/ip_vs_conn, or of
// /proc/net/ip_vs_conn_sync (told apart by its header's Origin column).
// It returns every entry or, on the first malformed line, an error naming
// line and field and no entries.
func ParseConnTable(r io.Reader) ([]ProcConn, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	var out []ProcConn
	line := 0
	withOrigin := false
	for sc.Scan() {
		line++
		text := sc.Text()
		if strings.TrimSpace(text) == "" {
			continue
		}
		if line == 1 && strings.HasPrefix(text, "Pro ") {
			withOrigin = strings.Contains(text, " Origin ")
			continue
		}
		pc, err := parseConnLine(line, text, withOrigin)
		if err != nil {
			return nil, err
		}
		out = append(out, pc)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read ip_vs_conn: %w", err)
	}
	return out, nil
}

func parseConnLine(line int, text string, withOrigin bool) (ProcConn, error) {
	var pc ProcConn
	f := strings.Fields(text)
	if withOrigin {
		if len(f) != 10 {
			return pc, &ProcError{Line: line, Field: "line", Value: text, Reason: fmt.Sprintf("%d fields, want 10", len(f))}
		}
		switch f[8] {
		case "LOCAL", "SYNC":
			pc.Origin = f[8]
		default:
			return pc, &ProcError{Line: line, Field: "Origin", Value: f[8], Reason: "want LOCAL or SYNC"}
		}
		f = append(f[:8], f[9])
	}
	if len(f) < 9 {
		return pc, &ProcError{Line: line, Field: "line", Value: text, Reason: fmt.Sprintf("%d fields, want at least 9", len(f))}
	}
	pc.ProtoName = f[0]
	if p, ok := protoNames[f[0]]; ok {
		pc.Protocol = p
	} else if n, ok := strings.CutPrefix(f[0], "IP_"); ok {
		v, err := strconv.ParseUint(n, 10, 8)
		if err != nil {
			return pc, &ProcError{Line: line, Field: "Pro", Value: f[0], Reason: "unknown protocol"}
		}
		pc.Protocol = uint8(v)
	} else {
		return pc, &ProcError{Line: line, Field: "Pro", Value: f[0], Reason: "unknown protocol"}
	}
	var err error
	addrs := []*netip.Addr{&pc.CAddr, &pc.VAddr, &pc.DAddr}
	ports := []*uint16{&pc.CPort, &pc.VPort, &pc.DPort}
	names := [][2]string{{"FromIP", "FPrt"}, {"ToIP", "TPrt"}, {"DestIP", "DPrt"}}
	for i := 0; i < 3; i++ {
		a, p := f[1+2*i], f[2+2*i]
		if *addrs[i], err = parseProcAddr(a); err != nil {
			return pc, &ProcError{Line: line, Field: names[i][0], Value: a, Reason: err.Error()}
		}
		v, err := strconv.ParseUint(p, 16, 16)
		if err != nil || len(p) != 4 {
			return pc, &ProcError{Line: line, Field: names[i][1], Value: p, Reason: "want 4 hex digits"}
		}
		*ports[i] = uint16(v)
	}
	pc.StateName = f[7]
	exp, err := strconv.ParseUint(f[8], 10, 32)
	if err != nil {
		return pc, &ProcError{Line: line, Field: "Expires", Value: f[8], Reason: "want seconds"}
	}
	pc.Expires = uint32(exp)
	if len(f) >= 10 {
		pc.PEName = f[9]
		pc.PEData = strings.Join(f[10:], " ")
	}
	pc.Template = pc.StateName == "ASSURED" || pc.Protocol == 0 || (pc.StateName == "NONE" && pc.CPort == 0)
	if pc.Template {
		switch pc.StateName {
		case "NONE":
			pc.State, pc.StateKnown = TemplateNone, true
		case "ASSURED":
			pc.State, pc.StateKnown = TemplateAssured, true
		}
	} else {
		pc.State, pc.StateKnown = stateByName(pc.Protocol, pc.StateName)
	}
	return pc, nil
}

// parseProcAddr reads an address as ip_vs_conn_seq_show prints it: IPv4 as
// 8 hex digits (%08X of the host-order value), IPv6 as %pI6.
func parseProcAddr(s string) (netip.Addr, error) {
	if len(s) == 8 && !strings.Contains(s, ":") {
		v, err := strconv.ParseUint(s, 16, 32)
		if err != nil {
			return netip.Addr{}, fmt.Errorf("want 8 hex digits")
		}
		var a [4]byte
		binary.BigEndian.PutUint32(a[:], uint32(v))
		return netip.AddrFrom4(a), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil || !a.Is6() {
		return netip.Addr{}, fmt.Errorf("neither 8 hex digits nor an IPv6 address")
	}
	return a, nil
}

// refreshEntry turns a table entry into an entry that recreates it on a
// peer with the time it has left here (at least one second, since 0 would
// mean the receiver's default). The kernel's backup takes the forwarding
// method from the real server it binds the entry to, so no forwarding
// flags are needed. It refuses only an entry whose state the kernel did
// not print by a known name; Tracker.Changed, where table entries enter
// syncd, checks the rest (accept).
//
// The table does not show fwmarks: an entry of a fwmark service is sent
// with fwmark 0 except a fwmark template, whose virtual address holds the
// mark as the kernel stores it.
func refreshEntry(pc ProcConn) (conn.Entry, error) {
	e := conn.Entry{
		Protocol: pc.Protocol, State: pc.State,
		ClientAddr: pc.CAddr, ClientPort: pc.CPort,
		VirtualAddr: pc.VAddr, VirtualPort: pc.VPort,
		DestAddr: pc.DAddr, DestPort: pc.DPort,
		Timeout: max(pc.Expires, 1),
	}
	if !pc.StateKnown {
		return e, fmt.Errorf("%w: state %q of %s is not one the kernel syncs", ErrInvalid, pc.StateName, pc.ProtoName)
	}
	if pc.Template {
		e.Flags |= conn.FlagTemplate
		if pc.Protocol == 0 && pc.VAddr.Is4() {
			a := pc.VAddr.As4()
			e.FWMark = binary.BigEndian.Uint32(a[:])
		}
	} else if (pc.Protocol == conn.ProtoTCP && pc.State != TCPEstablished) ||
		(pc.Protocol == conn.ProtoSCTP && pc.State != 8) {
		e.Flags |= conn.FlagInactive
	}
	if pc.PEName != "" && pc.PEData != "" {
		e.PEName, e.PEData = pc.PEName, []byte(pc.PEData)
	}
	return e, nil
}
