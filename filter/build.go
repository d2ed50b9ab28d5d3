package filter

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"slices"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"

	"github.com/saru-lb/saru/filter/bucket"
)

// Object names inside the table.
const (
	SetOwned        = "owned"       // the owned-bucket set
	ChainPrerouting = "prerouting"  // ownership filter for packets to the VIPs
	ChainForward    = "forward"     // LVS-NAT: replies and real-server traffic
	ChainNAT        = "postrouting" // LVS-NAT: masquerade of real-server connections
)

// Hook priorities.
const (
	// PreroutingPriority runs the ownership filter before connection
	// tracking (-200) so a director spends nothing on packets it does not
	// own. It is the raw priority; defragmentation (-400) runs earlier when
	// conntrack is loaded.
	PreroutingPriority = -300
	// ForwardPriority runs after IPVS has rewritten LVS-NAT replies (IPVS
	// hooks forward at priority 100), so a reply already carries the VIP and
	// virtual port when it is matched.
	ForwardPriority = 200
	// NATPriority is the standard source-NAT priority.
	NATPriority = 100
)

// setID is the batch-local identifier of the owned set; rules in the same
// batch refer to it by name and by this ID.
const setID = 0x5a7

// reg is the first 32-bit register (NFT_REG32_00); concatenations fill the
// following ones, as nft does.
const reg = unix.NFT_REG32_00

// Rule is one rule of the ruleset, with the description that is stored in the
// rule's comment and returned with its counters.
type Rule struct {
	Chain       string
	Description string
	Exprs       []expr.Any
}

// Ruleset is the complete set of nftables objects for one director: the table,
// the owned-bucket set with its elements, the chains and their rules. It is a
// plain value; the applier turns it into one netlink batch.
type Ruleset struct {
	Table    *nftables.Table
	Owned    *nftables.Set
	Elements []nftables.SetElement
	Chains   []*nftables.Chain
	Rules    []Rule
}

// Build validates cfg and returns the ruleset accepting the packets whose
// bucket is in owned. It does no I/O.
func Build(cfg Config, owned *BucketSet) (*Ruleset, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("filter config: %w", err)
	}
	if binary.NativeEndian.Uint16([]byte{1, 0}) != 1 {
		// A port converted to host order fills the register's low half
		// only on little-endian hosts; see portBucket.
		return nil, fmt.Errorf("filter: big-endian hosts are not supported")
	}
	elems, err := elementsFor(cfg, owned)
	if err != nil {
		return nil, err
	}
	table := &nftables.Table{Name: cfg.TableName(), Family: nftables.TableFamilyINet}
	b := &builder{cfg: cfg, table: table}
	rs := &Ruleset{
		Table:    table,
		Owned:    ownedSet(table, cfg.Buckets),
		Elements: elems,
	}
	rs.Chains = append(rs.Chains, &nftables.Chain{
		Name: ChainPrerouting, Table: table, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookPrerouting, Priority: nftables.ChainPriorityRef(PreroutingPriority),
	})
	b.prerouting()
	if cfg.NAT != nil {
		rs.Chains = append(rs.Chains,
			&nftables.Chain{
				Name: ChainForward, Table: table, Type: nftables.ChainTypeFilter,
				Hooknum: nftables.ChainHookForward, Priority: nftables.ChainPriorityRef(ForwardPriority),
			},
			&nftables.Chain{
				Name: ChainNAT, Table: table, Type: nftables.ChainTypeNAT,
				Hooknum: nftables.ChainHookPostrouting, Priority: nftables.ChainPriorityRef(NATPriority),
			})
		b.natForward()
		b.natMasquerade()
	}
	rs.Rules = b.rules
	return rs, nil
}

// ownedSet is the set of owned buckets: 32-bit integers in host byte order,
// as the hash expression leaves them in a register. With a 4-byte key and a
// declared size the kernel picks a fixed-size hash backend: O(1) lookups,
// inserts and removals. (A 2-byte key would select the bitmap backend, whose
// inserts scan a list: a 20000-element change then takes seconds.)
func ownedSet(t *nftables.Table, buckets int) *nftables.Set {
	return &nftables.Set{
		Table:        t,
		ID:           setID,
		Name:         SetOwned,
		KeyType:      nftables.TypeInteger,
		KeyByteOrder: binaryutil.NativeEndian,
		Size:         uint32(buckets),
		Comment:      "buckets owned by this director",
	}
}

// elementsFor returns the set elements for owned, checked against cfg.
func elementsFor(cfg Config, owned *BucketSet) ([]nftables.SetElement, error) {
	if owned == nil {
		return nil, nil
	}
	if owned.Total() != cfg.Buckets {
		return nil, fieldErr("owned", owned, "bucket set ranges over %d buckets, config has %d", owned.Total(), cfg.Buckets)
	}
	return keysOf(owned.Buckets()), nil
}

func keysOf(bs []uint32) []nftables.SetElement {
	out := make([]nftables.SetElement, len(bs))
	keys := make([]byte, 4*len(bs))
	for i, v := range bs {
		k := keys[4*i : 4*i+4 : 4*i+4]
		binary.NativeEndian.PutUint32(k, v)
		out[i] = nftables.SetElement{Key: k}
	}
	return out
}

type builder struct {
	cfg   Config
	table *nftables.Table
	rules []Rule
}

func (b *builder) add(chain, desc string, exprs ...[]expr.Any) {
	b.rules = append(b.rules, Rule{Chain: chain, Description: desc, Exprs: slices.Concat(exprs...)})
}

// servicesOf returns the services of vip, single-port services first so a
// port's own sense decides before an all-ports service's.
func (b *builder) servicesOf(vip netip.Addr) []Service {
	var out []Service
	for _, s := range b.cfg.Services {
		if s.VIP == vip {
			out = append(out, s)
		}
	}
	slices.SortStableFunc(out, func(x, y Service) int {
		return boolInt(x.Port == 0) - boolInt(y.Port == 0)
	})
	return out
}

func boolInt(v bool) int {
	if v {
		return 1
	}
	return 0
}

// prerouting reproduces the seed's INPUT rules, per VIP:
// tcp/udp by the service's sense, ICMP echo-request by src-addr, other ICMP
// accepted, everything else dropped.
func (b *builder) prerouting() {
	for _, vip := range b.cfg.vips() {
		to := matchAddr(vip, dirDst)
		for _, s := range b.servicesOf(vip) {
			for _, p := range s.Protocols {
				match := slices.Concat(to, matchL4(p))
				if s.Port != 0 {
					match = append(match, matchPort(dirDst, s.Port)...)
				}
				name := fmt.Sprintf("%s %s/%s sense %s", vip, p, portName(s.Port), s.Sense)
				b.add(ChainPrerouting, name+": owned, accept", match, b.bucket(vip, s.Sense), lookupOwned(), accept())
				b.add(ChainPrerouting, name+": not owned, drop", match, drop())
			}
		}
		icmp, echo := icmpFor(vip)
		b.add(ChainPrerouting, fmt.Sprintf("%s %s echo-request sense %s: owned, accept", vip, icmp, bucket.EchoSense),
			to, matchL4(icmp), matchICMPType(expr.CmpOpEq, echo), b.bucket(vip, bucket.EchoSense), lookupOwned(), accept())
		b.add(ChainPrerouting, fmt.Sprintf("%s %s other than echo-request: accept", vip, icmp),
			to, matchL4(icmp), matchICMPType(expr.CmpOpNeq, echo), accept())
		if b.masqueradesTo(vip) {
			// Replies to real-server connections masqueraded to the VIP
			// come back on ports no service claims. Masquerade keeps the
			// real server's source port unless two collide, so the owner
			// of that port's bucket (the director that forwarded the
			// connection) accepts them; conntrack then reverses the NAT.
			for _, p := range []bucket.Protocol{bucket.TCP, bucket.UDP} {
				b.add(ChainPrerouting, fmt.Sprintf("%s %s to other ports sense dst-port (masqueraded real-server connections): owned, accept", vip, p),
					to, matchL4(p), b.portBucket(dirDst), lookupOwned(), accept())
			}
		}
		b.add(ChainPrerouting, fmt.Sprintf("%s everything else: drop", vip), to, drop())
	}
}

// masqueradesTo reports whether NAT mode may masquerade real-server
// connections to vip (a real-server network of vip's family exists).
func (b *builder) masqueradesTo(vip netip.Addr) bool {
	if b.cfg.NAT == nil {
		return false
	}
	for _, p := range b.cfg.NAT.RealServers {
		if p.Addr().Is4() == vip.Is4() {
			return true
		}
	}
	return false
}

// natForward reproduces the seed's LVS-NAT POSTROUTING ownership rules in the
// forward hook: replies (already rewritten by IPVS to come from the VIP) are
// forwarded only by the owner of the client's bucket, new connections from
// the real servers only by their owner, real server to real server untouched.
func (b *builder) natForward() {
	for _, vip := range b.cfg.vips() {
		from := matchAddr(vip, dirSrc)
		for _, s := range b.servicesOf(vip) {
			for _, p := range s.Protocols {
				match := slices.Concat(from, matchL4(p))
				if s.Port != 0 {
					match = append(match, matchPort(dirSrc, s.Port)...)
				}
				name := fmt.Sprintf("reply from %s %s/%s sense %s", vip, p, portName(s.Port), s.Sense)
				b.add(ChainForward, name+": client's bucket owned, accept", match, b.replyBucket(vip, s.Sense), lookupOwned(), accept())
				b.add(ChainForward, name+": not owned, drop", match, drop())
			}
		}
	}
	for _, rs := range b.cfg.NAT.RealServers {
		from := matchPrefix(rs, dirSrc, expr.CmpOpEq)
		to := matchPrefix(rs, dirDst, expr.CmpOpEq)
		icmp, echo := icmpFor(rs.Addr())
		b.add(ChainForward, fmt.Sprintf("%s to %s: accept", rs, rs), from, to, accept())
		b.add(ChainForward, fmt.Sprintf("%s ct state invalid: drop", rs), from, matchCtState(expr.CtStateBitINVALID), drop())
		b.add(ChainForward, fmt.Sprintf("%s ct state established,related: accept", rs), from,
			matchCtState(expr.CtStateBitESTABLISHED|expr.CtStateBitRELATED), accept())
		newConn := slices.Concat(from, matchCtState(expr.CtStateBitNEW))
		b.add(ChainForward, fmt.Sprintf("%s new tcp syn sense src-port: owned, accept", rs), newConn, matchL4(bucket.TCP),
			matchTCPSyn(), b.bucket(rs.Addr(), bucket.SrcPort), lookupOwned(), accept())
		b.add(ChainForward, fmt.Sprintf("%s new udp sense src-port: owned, accept", rs), newConn, matchL4(bucket.UDP),
			b.bucket(rs.Addr(), bucket.SrcPort), lookupOwned(), accept())
		b.add(ChainForward, fmt.Sprintf("%s new %s echo-request sense dst-addr: owned, accept", rs, icmp), newConn,
			matchL4(icmp), matchICMPType(expr.CmpOpEq, echo), b.bucket(rs.Addr(), bucket.DstAddr), lookupOwned(), accept())
		b.add(ChainForward, fmt.Sprintf("%s new %s other than echo-request: accept", rs, icmp), newConn,
			matchL4(icmp), matchICMPType(expr.CmpOpNeq, echo), accept())
		b.add(ChainForward, fmt.Sprintf("%s everything else: drop", rs), from, drop())
	}
}

// natMasquerade masquerades connections from the real servers leaving their
// network. Only connections the forward chain let through (the owner's)
// reach it.
func (b *builder) natMasquerade() {
	for _, rs := range b.cfg.NAT.RealServers {
		b.add(ChainNAT, fmt.Sprintf("%s to elsewhere: masquerade", rs),
			matchPrefix(rs, dirSrc, expr.CmpOpEq), matchPrefix(rs, dirDst, expr.CmpOpNeq),
			[]expr.Any{&expr.Counter{}, &expr.Masq{}})
	}
}

type direction int

const (
	dirSrc direction = iota
	dirDst
)

func portName(p uint16) string {
	if p == 0 {
		return "*"
	}
	return fmt.Sprint(p)
}

// icmpFor returns the ICMP protocol and echo-request type of addr's family.
func icmpFor(a netip.Addr) (proto bucket.Protocol, echo byte) {
	if a.Is4() {
		return bucket.ICMP, 8
	}
	return bucket.ICMPv6, 128
}

func nfproto(a netip.Addr) byte {
	if a.Is4() {
		return unix.NFPROTO_IPV4
	}
	return unix.NFPROTO_IPV6
}

// addrPayload loads the source or destination address of a's family into r.
func addrPayload(a netip.Addr, d direction, r uint32) *expr.Payload {
	off, n := uint32(12), uint32(4)
	if !a.Is4() {
		off, n = 8, 16
	}
	if d == dirDst {
		off += n
	}
	return &expr.Payload{DestRegister: r, Base: expr.PayloadBaseNetworkHeader, Offset: off, Len: n}
}

func matchFamily(a netip.Addr) []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{nfproto(a)}},
	}
}

func matchAddr(a netip.Addr, d direction) []expr.Any {
	return append(matchFamily(a),
		addrPayload(a, d, 1),
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: a.AsSlice()})
}

func matchPrefix(p netip.Prefix, d direction, op expr.CmpOp) []expr.Any {
	a := p.Addr()
	mask := netPrefixMask(p)
	return append(matchFamily(a),
		addrPayload(a, d, 1),
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: uint32(len(mask)), Mask: mask, Xor: make([]byte, len(mask))},
		&expr.Cmp{Op: op, Register: 1, Data: p.Masked().Addr().AsSlice()})
}

func netPrefixMask(p netip.Prefix) []byte {
	mask := make([]byte, p.Addr().BitLen()/8)
	for i := 0; i < p.Bits(); i++ {
		mask[i/8] |= 0x80 >> (i % 8)
	}
	return mask
}

func matchL4(p bucket.Protocol) []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{byte(p)}},
	}
}

func portPayload(d direction, r uint32) *expr.Payload {
	off := uint32(0)
	if d == dirDst {
		off = 2
	}
	return &expr.Payload{DestRegister: r, Base: expr.PayloadBaseTransportHeader, Offset: off, Len: 2}
}

func matchPort(d direction, port uint16) []expr.Any {
	return []expr.Any{portPayload(d, 1), &expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.BigEndian.PutUint16(port)}}
}

func matchICMPType(op expr.CmpOp, t byte) []expr.Any {
	return []expr.Any{
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 0, Len: 1},
		&expr.Cmp{Op: op, Register: 1, Data: []byte{t}},
	}
}

// matchTCPSyn matches tcp flags & (fin|syn|rst|ack) == syn, as the seed's
// --tcp-flags SYN,ACK,FIN,RST SYN.
func matchTCPSyn() []expr.Any {
	return []expr.Any{
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 13, Len: 1},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 1, Mask: []byte{0x17}, Xor: []byte{0}},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{0x02}},
	}
}

func matchCtState(bits uint32) []expr.Any {
	return []expr.Any{
		&expr.Ct{Key: expr.CtKeySTATE, Register: 1},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4,
			Mask: binaryutil.NativeEndian.PutUint32(bits), Xor: make([]byte, 4)},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: make([]byte, 4)},
	}
}

// bucket loads the bucket of a packet to or from an address of a's family
// under sense s into reg as a host-order 32-bit value.
func (b *builder) bucket(a netip.Addr, s bucket.Sense) []expr.Any {
	switch s {
	case bucket.SrcPort:
		return b.portBucket(dirSrc)
	case bucket.DstPort:
		return b.portBucket(dirDst)
	case bucket.SrcAddr:
		return b.hashBucket(a, dirSrc, false)
	case bucket.DstAddr:
		return b.hashBucket(a, dirDst, false)
	case bucket.SrcAddrPort:
		return b.hashBucket(a, dirSrc, true)
	}
	panic(fmt.Sprintf("filter: unvalidated sense %d", s))
}

// replyBucket computes, on a reply travelling from the VIP to the client,
// the bucket its request had under sense s: source and destination swap.
func (b *builder) replyBucket(a netip.Addr, s bucket.Sense) []expr.Any {
	switch s {
	case bucket.SrcPort:
		return b.portBucket(dirDst)
	case bucket.DstPort:
		return b.portBucket(dirSrc)
	case bucket.SrcAddr:
		return b.hashBucket(a, dirDst, false)
	case bucket.DstAddr:
		return b.hashBucket(a, dirSrc, false)
	case bucket.SrcAddrPort:
		return b.hashBucket(a, dirDst, true)
	}
	panic(fmt.Sprintf("filter: unvalidated sense %d", s))
}

// portBucket: the 16-bit port, converted to host order, masked to B-1. The
// payload load zeroes the register's upper half, so on a little-endian host
// the register holds the port as a 32-bit host-order value.
func (b *builder) portBucket(d direction) []expr.Any {
	return []expr.Any{
		portPayload(d, reg),
		&expr.Byteorder{SourceRegister: reg, DestRegister: reg, Op: expr.ByteorderNtoh, Len: 2, Size: 2},
		&expr.Bitwise{SourceRegister: reg, DestRegister: reg, Len: 4,
			Mask: binaryutil.NativeEndian.PutUint32(uint32(b.cfg.Buckets - 1)), Xor: make([]byte, 4)},
	}
}

// hashBucket: jhash of the address (and, with port, the 2-byte port padded to
// a 32-bit register after it) mod B with the cluster seed. The result is a
// host-order 32-bit value below B.
func (b *builder) hashBucket(a netip.Addr, d direction, port bool) []expr.Any {
	ap := addrPayload(a, d, reg)
	out := []expr.Any{ap}
	n := ap.Len
	if port {
		out = append(out, portPayload(d, reg+ap.Len/4))
		n += 4
	}
	return append(out, &expr.Hash{
		SourceRegister: reg, DestRegister: reg, Length: n,
		Modulus: uint32(b.cfg.Buckets), Seed: b.cfg.Seed, Offset: 0, Type: expr.HashTypeJenkins,
	})
}

func lookupOwned() []expr.Any {
	return []expr.Any{&expr.Lookup{SourceRegister: reg, SetName: SetOwned, SetID: setID}}
}

func accept() []expr.Any {
	return []expr.Any{&expr.Counter{}, &expr.Verdict{Kind: expr.VerdictAccept}}
}

func drop() []expr.Any {
	return []expr.Any{&expr.Counter{}, &expr.Verdict{Kind: expr.VerdictDrop}}
}
