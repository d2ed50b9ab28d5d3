package wire

import (
	"bytes"
	"fmt"
	"time"

	"google.golang.org/protobuf/encoding/protowire"
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

// SealData marshals a data packet and returns the authenticated datagram
// appended to dst, and its body (aliasing the datagram) for the sender's
// retransmit ring: SealRetransmit sends the body again.
func (s *Sealer) SealData(dst []byte, pkt *syncdpb.Packet) (dg, body []byte, err error) {
	start := len(dst)
	dst = s.AppendHeader(dst)
	dst, err = proto.MarshalOptions{}.MarshalAppend(dst, pkt)
	if err != nil {
		return dst[:start], nil, fmt.Errorf("marshal data packet %d: %w", pkt.Sequence, err)
	}
	dg = s.Seal(dst[start:])
	return dg, dg[HeaderLen : len(dg)-TagLen], nil
}

// SealRetransmit returns, appended to dst, the datagram that resends a
// data packet body recorded from SealData, marked as a retransmission.
func (s *Sealer) SealRetransmit(dst, body []byte) []byte {
	start := len(dst)
	dst = s.AppendHeader(dst)
	dst = append(dst, body...)
	// Packet field 5 (retransmit) = true: the marshalled body is reused
	// as is, so the flag is appended rather than re-encoded.
	dst = protowire.AppendTag(dst, 5, protowire.VarintType)
	dst = protowire.AppendVarint(dst, 1)
	return s.Seal(dst[start:])
}

// SenderPrefix is how the body of every packet sender sends begins (field
// 1, the sender id), for IsFrom.
func SenderPrefix(sender string) []byte {
	return protowire.AppendString(protowire.AppendTag(nil, 1, protowire.BytesType), sender)
}

// IsFrom reports, without verifying, whether datagram dg names the sender
// whose SenderPrefix is prefix: a node drops its own multicast looped back
// before spending a MAC on it.
func IsFrom(dg, prefix []byte) bool {
	return len(dg) > HeaderLen && bytes.HasPrefix(dg[HeaderLen:], prefix)
}

// NACK sizing: at most MaxNackRanges ranges in one Nack; a range encodes
// in at most nackRangeBytes, a Nack's own fields in nackOverhead plus the
// target id.
const (
	MaxNackRanges  = 64
	nackRangeBytes = 2 + 11 + 6
	nackOverhead   = 3 + 2 + 11
)

// NackSize bounds the encoded size of a Nack to target with ranges ranges.
func NackSize(target string, ranges int) int {
	return nackOverhead + len(target) + nackRangeBytes*ranges
}

// BatchBudget is how many bytes of batches fit in one datagram of a sender
// id senderLen bytes long, on a path of the given MTU (IPv6 or IPv4
// header, UDP header, framing, the packet's own fields).
func BatchBudget(mtu int, ipv6 bool, senderLen int) int {
	ipHdr := 20
	if ipv6 {
		ipHdr = 40
	}
	const udpHdr, batchTag = 8, 2
	return mtu - ipHdr - udpHdr - Overhead - PacketHeaderBound(senderLen) - batchTag
}
