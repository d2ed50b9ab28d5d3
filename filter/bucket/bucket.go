package bucket

import (
	"fmt"
	"net/netip"
)

// Bucket counts.
const (
	Min     = 16
	Max     = 65536
	Default = 4096
)

// CheckCount reports whether n is an accepted bucket count: a power of two
// from Min to Max.
func CheckCount(n int) error {
	if n < Min || n > Max || n&(n-1) != 0 {
		return fmt.Errorf("bucket count %d: must be a power of two from %d to %d", n, Min, Max)
	}
	return nil
}

// Of returns the bucket of a packet from src to dst under sense s, for n
// buckets (a power of two) and hash seed seed. It equals what the kernel
// computes for the rules package filter installs:
//
//	src-port, dst-port   th sport & (B-1)
//	src-addr, dst-addr   jhash ip saddr mod B seed S
//	src-addr+src-port    jhash ip saddr . th sport mod B seed S
//
// Addresses are hashed as the packet carries them: 4 bytes for IPv4, 16 for
// IPv6 (an IPv4-mapped IPv6 address is hashed as 16 bytes).
func Of(s Sense, n int, seed uint32, src, dst netip.AddrPort) uint32 {
	switch s {
	case DstPort:
		return uint32(dst.Port()) & uint32(n-1)
	case SrcAddr:
		return OfAddr(src.Addr(), n, seed)
	case DstAddr:
		return OfAddr(dst.Addr(), n, seed)
	case SrcAddrPort:
		var key [20]byte
		k := putAddr(key[:], src.Addr())
		// nftables registers are 4 bytes wide: the 2-byte port is zero-padded.
		key[k], key[k+1] = byte(src.Port()>>8), byte(src.Port())
		return Scale(Jhash(key[:k+4], seed), uint32(n))
	default:
		return uint32(src.Port()) & uint32(n-1)
	}
}

// OfAddr returns the bucket of address a under an address sense.
func OfAddr(a netip.Addr, n int, seed uint32) uint32 {
	var key [16]byte
	k := putAddr(key[:], a)
	return Scale(Jhash(key[:k], seed), uint32(n))
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
