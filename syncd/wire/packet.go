package wire

import (
	"fmt"
	"time"

	"google.golang.org/protobuf/proto"

	syncdpb "github.com/saru-lb/saru/proto/syncd/v1"
)

// MaxSenderLen bounds a director id on the wire.
const MaxSenderLen = 64

// PacketHeaderBound bounds the bytes a Packet spends outside its batches
// for a sender id of n bytes.
func PacketHeaderBound(n int) int { return 2 + n + 11 + 11 + 11 + 2 }

// Seal marshals pkt and returns the authenticated datagram appended to dst.
func (s *Sealer) SealPacket(dst []byte, pkt *syncdpb.Packet) ([]byte, error) {
	start := len(dst)
	dst = s.AppendHeader(dst)
	dst, err := proto.MarshalOptions{}.MarshalAppend(dst, pkt)
	if err != nil {
		return dst[:start], fmt.Errorf("marshal packet: %w", err)
	}
	return s.Seal(dst[start:]), nil
}

// OpenPacket verifies the datagram dg at now and decodes it into pkt. Any
// Reason but OK means the datagram must be dropped.
func (s *Sealer) OpenPacket(dg []byte, now time.Time, pkt *syncdpb.Packet) (Reason, error) {
	body, r := s.Open(dg, now)
	if r != OK {
		return r, nil
	}
	if err := (proto.UnmarshalOptions{}).Unmarshal(body, pkt); err != nil {
		return Malformed, fmt.Errorf("unmarshal packet: %w", err)
	}
	if err := CheckPacket(pkt); err != nil {
		return Malformed, err
	}
	return OK, nil
}

// CheckPacket checks a decoded packet's structure (not its batches'
// contents: AppendEntries does that).
func CheckPacket(p *syncdpb.Packet) error {
	switch {
	case p.Sender == "" || len(p.Sender) > MaxSenderLen:
		return fmt.Errorf("packet sender: %d bytes, want 1-%d", len(p.Sender), MaxSenderLen)
	case p.Incarnation == 0:
		return fmt.Errorf("packet incarnation: missing")
	case (p.Sequence == 0) == (p.ControlSequence == 0):
		return fmt.Errorf("packet: exactly one of sequence (%d) and control_sequence (%d) must be set", p.Sequence, p.ControlSequence)
	case p.Sequence != 0 && (p.Heartbeat != nil || len(p.Nacks) > 0):
		return fmt.Errorf("packet %d: a data packet carries no heartbeat or nacks", p.Sequence)
	case p.ControlSequence != 0 && len(p.Batches) > 0:
		return fmt.Errorf("packet: a control packet carries no batches")
	case len(p.Batches) > 2:
		return fmt.Errorf("packet: %d batches, at most 2", len(p.Batches))
	}
	for i, b := range p.Batches {
		if b == nil || len(b.Origins) > 0 || len(b.OriginIndex) > 0 {
			return fmt.Errorf("packet batch %d: peer batches carry no origins", i)
		}
	}
	for i, n := range p.Nacks {
		if n == nil || n.Target == "" || len(n.Ranges) > 1024 {
			return fmt.Errorf("packet nack %d: bad target or too many ranges", i)
		}
	}
	return nil
}
