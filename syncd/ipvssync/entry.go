package ipvssync

import (
	"github.com/saru-lb/saru/syncd/conn"
)

// ToEntry converts a record to syncd's connection entry. Optional options
// the codec does not know (Conn.Extra) are not carried.
func ToEntry(c *Conn) conn.Entry {
	e := conn.Entry{
		Protocol:    c.Protocol,
		ClientAddr:  c.CAddr,
		ClientPort:  c.CPort,
		VirtualAddr: c.VAddr,
		VirtualPort: c.VPort,
		DestAddr:    c.DAddr,
		DestPort:    c.DPort,
		FWMark:      c.FWMark,
		Flags:       conn.Flags(c.Flags),
		State:       c.State,
		Timeout:     c.Timeout,
		PEName:      c.PEName,
	}
	if c.Seq != nil {
		e.HasSeq = true
		e.Seq = conn.SeqAdjust{
			In:  conn.SeqInfo{InitSeq: c.Seq.In.InitSeq, Delta: c.Seq.In.Delta, PreviousDelta: c.Seq.In.PreviousDelta},
			Out: conn.SeqInfo{InitSeq: c.Seq.Out.InitSeq, Delta: c.Seq.Out.Delta, PreviousDelta: c.Seq.Out.PreviousDelta},
		}
	}
	if len(c.PEData) > 0 {
		e.PEData = append([]byte(nil), c.PEData...)
	}
	return e
}

// FromEntry converts syncd's entry to a record. Origin and Version stay
// behind: the kernel has no place for them. The HASHED flag, which only
// describes the sender's hash table, is cleared as the kernel's master
// clears it.
func FromEntry(e *conn.Entry) Conn {
	c := Conn{
		Protocol: e.Protocol,
		Flags:    uint32(e.Flags) &^ FlagHashed,
		State:    e.State,
		CPort:    e.ClientPort,
		VPort:    e.VirtualPort,
		DPort:    e.DestPort,
		FWMark:   e.FWMark,
		Timeout:  e.Timeout,
		CAddr:    e.ClientAddr,
		VAddr:    e.VirtualAddr,
		DAddr:    e.DestAddr,
		PEName:   e.PEName,
	}
	if e.HasSeq {
		c.Seq = &SeqData{
			In:  SeqInfo{InitSeq: e.Seq.In.InitSeq, Delta: e.Seq.In.Delta, PreviousDelta: e.Seq.In.PreviousDelta},
			Out: SeqInfo{InitSeq: e.Seq.Out.InitSeq, Delta: e.Seq.Out.Delta, PreviousDelta: e.Seq.Out.PreviousDelta},
		}
	}
	if len(e.PEData) > 0 {
		c.PEData = append([]byte(nil), e.PEData...)
	}
	return c
}
