package filter

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// elemBatcher sends owned-set changes as one nfnetlink batch, encoding the
// elements directly: each is 16 bytes (element, key and value headers and the
// 4-byte key), so a change of thousands of buckets costs microseconds to
// encode rather than the milliseconds of a generic attribute encoder.
type elemBatcher struct {
	c     *netlink.Conn
	table string
	set   string
}

func dialElemBatcher(netns int, table, set string) (*elemBatcher, error) {
	c, err := netlink.Dial(unix.NETLINK_NETFILTER, &netlink.Config{NetNS: netns})
	if err != nil {
		return nil, fmt.Errorf("open nftables netlink socket: %w", err)
	}
	if err := bigSendBuffer(c); err != nil {
		c.Close()
		return nil, err
	}
	return &elemBatcher{c: c, table: table, set: set}, nil
}

func (e *elemBatcher) Close() error { return e.c.Close() }

const (
	nfnlMsgBatchBegin = unix.NFNL_MSG_BATCH_BEGIN
	nfnlMsgBatchEnd   = unix.NFNL_MSG_BATCH_END
	msgNewSetElem     = netlink.HeaderType(unix.NFNL_SUBSYS_NFTABLES<<8 | unix.NFT_MSG_NEWSETELEM)
	msgDelSetElem     = netlink.HeaderType(unix.NFNL_SUBSYS_NFTABLES<<8 | unix.NFT_MSG_DELSETELEM)
	elemSize          = 16
)

// send applies, atomically: a flush of the set if flush is set, the deletion
// of del and the addition of add. Every message asks for an acknowledgement
// so that exactly one reply per message is read back.
func (e *elemBatcher) send(flush bool, del, add []uint32) error {
	var msgs []netlink.Message
	if flush {
		msgs = append(msgs, e.message(msgDelSetElem, netlink.Request|netlink.Acknowledge, nil))
	}
	for _, part := range chunks(del) {
		msgs = append(msgs, e.message(msgDelSetElem, netlink.Request|netlink.Acknowledge, part))
	}
	for _, part := range chunks(add) {
		msgs = append(msgs, e.message(msgNewSetElem, netlink.Request|netlink.Acknowledge|netlink.Create, part))
	}
	if len(msgs) == 0 {
		return nil
	}
	batch := make([]netlink.Message, 0, len(msgs)+2)
	batch = append(batch, batchMarker(nfnlMsgBatchBegin))
	batch = append(batch, msgs...)
	batch = append(batch, batchMarker(nfnlMsgBatchEnd))
	if _, err := e.c.SendMessages(batch); err != nil {
		return fmt.Errorf("send batch: %w", err)
	}
	// The kernel has processed the whole batch inside sendmsg; it queued
	// one acknowledgement or error per message. Read them all, so that no
	// stale reply is left for the next batch.
	var errs []error
	for range msgs {
		if _, err := e.c.Receive(); err != nil {
			if errors.Is(err, unix.ENOBUFS) {
				return fmt.Errorf("read acknowledgements: %w", err)
			}
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		// The first error is the refused message; the kernel aborted
		// the whole batch.
		if errors.Is(errs[0], unix.ENFILE) {
			return fmt.Errorf("set is full: %w", errs[0])
		}
		return errs[0]
	}
	return nil
}

func chunks(bs []uint32) [][]uint32 {
	var out [][]uint32
	for len(bs) > 0 {
		n := min(len(bs), elementsPerMessage)
		out = append(out, bs[:n])
		bs = bs[n:]
	}
	return out
}

func batchMarker(t uint16) netlink.Message {
	// nfgenmsg: family unspec, version 0, res_id = the nftables subsystem.
	data := []byte{unix.AF_UNSPEC, unix.NFNETLINK_V0, 0, 0}
	binary.BigEndian.PutUint16(data[2:], unix.NFNL_SUBSYS_NFTABLES)
	return netlink.Message{Header: netlink.Header{Type: netlink.HeaderType(t), Flags: netlink.Request}, Data: data}
}

// message encodes a NEWSETELEM/DELSETELEM for the set; with no elements a
// DELSETELEM flushes the set.
func (e *elemBatcher) message(t netlink.HeaderType, flags netlink.HeaderFlags, bs []uint32) netlink.Message {
	size := 4 + attrLen(len(e.table)+1) + attrLen(len(e.set)+1)
	if len(bs) > 0 {
		size += 4 + elemSize*len(bs)
	}
	b := make([]byte, 0, size)
	b = append(b, unix.NFPROTO_INET, unix.NFNETLINK_V0, 0, 0)
	b = appendStringAttr(b, unix.NFTA_SET_ELEM_LIST_TABLE, e.table)
	b = appendStringAttr(b, unix.NFTA_SET_ELEM_LIST_SET, e.set)
	if len(bs) > 0 {
		b = appendAttrHeader(b, 4+elemSize*len(bs), unix.NFTA_SET_ELEM_LIST_ELEMENTS|unix.NLA_F_NESTED)
		for _, v := range bs {
			b = appendAttrHeader(b, 16, unix.NFTA_LIST_ELEM|unix.NLA_F_NESTED)
			b = appendAttrHeader(b, 12, unix.NFTA_SET_ELEM_KEY|unix.NLA_F_NESTED)
			b = appendAttrHeader(b, 8, unix.NFTA_DATA_VALUE)
			b = binary.NativeEndian.AppendUint32(b, v)
		}
	}
	return netlink.Message{Header: netlink.Header{Type: t, Flags: flags}, Data: b}
}

func attrLen(payload int) int { return (4 + payload + 3) &^ 3 }

func appendAttrHeader(b []byte, length, typ int) []byte {
	b = binary.NativeEndian.AppendUint16(b, uint16(length))
	return binary.NativeEndian.AppendUint16(b, uint16(typ))
}

func appendStringAttr(b []byte, typ int, s string) []byte {
	n := attrLen(len(s) + 1)
	b = appendAttrHeader(b, 4+len(s)+1, typ)
	b = append(b, s...)
	for range n - 4 - len(s) {
		b = append(b, 0)
	}
	return b
}
