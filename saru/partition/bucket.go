package partition

import (
	"fmt"
	"math/bits"
	"net/netip"
)

// Sense is what a packet's bucket is computed from.
type Sense uint8

// Senses, as in the seed's saru netfilter match, plus the hashed
// address-and-port pair.
const (
	// SrcPort: source port & (B-1). The default.
	SrcPort Sense = iota + 1
	// DstPort: destination port & (B-1).
	DstPort
	// SrcAddr: jhash(source address) scaled to B.
	SrcAddr
	// DstAddr: jhash(destination address) scaled to B.
	DstAddr
	// SrcAddrPort: jhash(source address . source port) scaled to B.
	SrcAddrPort
)

var senseNames = [...]string{SrcPort: "src-port", DstPort: "dst-port", SrcAddr: "src-addr", DstAddr: "dst-addr", SrcAddrPort: "src-addr+src-port"}

// String returns the sense's configuration name, e.g. "src-port".
func (s Sense) String() string {
	if int(s) < len(senseNames) && senseNames[s] != "" {
		return senseNames[s]
	}
	return fmt.Sprintf("sense(%d)", uint8(s))
}

// ParseSense parses a configuration name; "" is the default, src-port.
func ParseSense(name string) (Sense, error) {
	if name == "" {
		return SrcPort, nil
	}
	for s, n := range senseNames {
		if n != "" && n == name {
			return Sense(s), nil
		}
	}
	return 0, fmt.Errorf("sense %q: must be one of src-port, dst-port, src-addr, dst-addr, src-addr+src-port", name)
}

// Bucket returns the bucket of a packet from src to dst, for a cluster of
// the given bucket count (a power of two) and hash seed. It equals what the
// kernel computes for the rules package filter installs:
//
//	src-port, dst-port   th sport & (B-1)
//	src-addr, dst-addr   jhash ip saddr mod B seed S
//	src-addr+src-port    jhash ip saddr . th sport mod B seed S
//
// Addresses are hashed as the packet carries them: 4 bytes for IPv4, 16 for
// IPv6 (an IPv4-mapped IPv6 address is hashed as 16 bytes).
func Bucket(s Sense, buckets int, seed uint32, src, dst netip.AddrPort) uint32 {
	switch s {
	case DstPort:
		return uint32(dst.Port()) & uint32(buckets-1)
	case SrcAddr:
		return AddrBucket(src.Addr(), buckets, seed)
	case DstAddr:
		return AddrBucket(dst.Addr(), buckets, seed)
	case SrcAddrPort:
		var key [20]byte
		n := putAddr(key[:], src.Addr())
		// nftables registers are 4 bytes wide: the 2-byte port is zero-padded.
		key[n], key[n+1] = byte(src.Port()>>8), byte(src.Port())
		return Scale(Jhash(key[:n+4], seed), uint32(buckets))
	default:
		return uint32(src.Port()) & uint32(buckets-1)
	}
}

// AddrBucket returns the bucket of an address under an address sense.
func AddrBucket(a netip.Addr, buckets int, seed uint32) uint32 {
	var key [16]byte
	n := putAddr(key[:], a)
	return Scale(Jhash(key[:n], seed), uint32(buckets))
}

func putAddr(dst []byte, a netip.Addr) int {
	if a.Is4() {
		b := a.As4()
		return copy(dst, b[:])
	}
	b := a.As16()
	return copy(dst, b[:])
}

// Scale maps a 32-bit hash onto [0, n) as the kernel's reciprocal_scale
// does (nft_jhash's "mod").
func Scale(h, n uint32) uint32 {
	return uint32((uint64(h) * uint64(n)) >> 32)
}

// Jhash is the Linux kernel's jhash() (Bob Jenkins' lookup3, reading 32-bit
// words in little-endian order as x86 does), which nft_jhash applies to its
// source registers.
func Jhash(key []byte, seed uint32) uint32 {
	a := 0xdeadbeef + uint32(len(key)) + seed
	b, c := a, a
	k := key
	for len(k) > 12 {
		a += le32(k[0:4])
		b += le32(k[4:8])
		c += le32(k[8:12])
		a, b, c = mix(a, b, c)
		k = k[12:]
	}
	if len(k) == 0 {
		return c
	}
	var tail [12]byte
	copy(tail[:], k)
	a += le32(tail[0:4])
	b += le32(tail[4:8])
	c += le32(tail[8:12])
	_, _, c = final(a, b, c)
	return c
}

func le32(p []byte) uint32 {
	return uint32(p[0]) | uint32(p[1])<<8 | uint32(p[2])<<16 | uint32(p[3])<<24
}

func mix(a, b, c uint32) (uint32, uint32, uint32) {
	a -= c
	a ^= bits.RotateLeft32(c, 4)
	c += b
	b -= a
	b ^= bits.RotateLeft32(a, 6)
	a += c
	c -= b
	c ^= bits.RotateLeft32(b, 8)
	b += a
	a -= c
	a ^= bits.RotateLeft32(c, 16)
	c += b
	b -= a
	b ^= bits.RotateLeft32(a, 19)
	a += c
	c -= b
	c ^= bits.RotateLeft32(b, 4)
	b += a
	return a, b, c
}

func final(a, b, c uint32) (uint32, uint32, uint32) {
	c ^= b
	c -= bits.RotateLeft32(b, 14)
	a ^= c
	a -= bits.RotateLeft32(c, 11)
	b ^= a
	b -= bits.RotateLeft32(a, 25)
	c ^= b
	c -= bits.RotateLeft32(b, 16)
	a ^= c
	a -= bits.RotateLeft32(c, 4)
	b ^= a
	b -= bits.RotateLeft32(a, 14)
	c ^= b
	c -= bits.RotateLeft32(b, 24)
	return a, b, c
}
