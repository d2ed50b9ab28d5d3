package filter

import (
	"encoding/binary"
	"math/bits"
	"net/netip"
)

// jhash is the kernel's jhash() (include/linux/jhash.h): Bob Jenkins'
// lookup3 reading the key in 32-bit host-order (little-endian) words.
func jhash(key []byte, seed uint32) uint32 {
	const initval = 0xdeadbeef
	a := initval + uint32(len(key)) + seed
	b, c := a, a
	k := key
	for len(k) > 12 {
		a += binary.LittleEndian.Uint32(k)
		b += binary.LittleEndian.Uint32(k[4:])
		c += binary.LittleEndian.Uint32(k[8:])
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
		k = k[12:]
	}
	if len(k) == 0 {
		return c
	}
	var tail [12]byte
	copy(tail[:], k)
	a += binary.LittleEndian.Uint32(tail[0:])
	b += binary.LittleEndian.Uint32(tail[4:])
	c += binary.LittleEndian.Uint32(tail[8:])
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
	return c
}

// reciprocalScale is the kernel's reciprocal_scale(h, n).
func reciprocalScale(h, n uint32) uint32 { return uint32(uint64(h) * uint64(n) >> 32) }

// hashKey is the register content nftables hashes for an address, and for
// address+port the port big-endian zero-padded to 4 bytes after it.
func hashKey(addr netip.Addr, port uint16, withPort bool) []byte {
	k := addr.AsSlice()
	if withPort {
		k = append(k, byte(port>>8), byte(port), 0, 0)
	}
	return k
}

// predictBucket is the bucket of a client (src) talking to a VIP (dst) under
// sense s, computed in Go.
func predictBucket(s Sense, buckets int, seed uint32, src, dst netip.AddrPort) uint32 {
	m := uint32(buckets - 1)
	switch s {
	case SenseSrcPort:
		return uint32(src.Port()) & m
	case SenseDstPort:
		return uint32(dst.Port()) & m
	case SenseSrcAddr:
		return reciprocalScale(jhash(hashKey(src.Addr(), 0, false), seed), uint32(buckets))
	case SenseDstAddr:
		return reciprocalScale(jhash(hashKey(dst.Addr(), 0, false), seed), uint32(buckets))
	case SenseSrcAddrSrcPort:
		return reciprocalScale(jhash(hashKey(src.Addr(), src.Port(), true), seed), uint32(buckets))
	}
	panic("bad sense")
}
