// Package bucket is the vocabulary every part of saru shares about buckets:
// how many there may be, what a packet's bucket is computed from (Sense),
// the IP protocols a virtual service speaks (Protocol), the bucket of a
// packet (Of) and the kernel's jhash.
//
// # Buckets
//
// The connection space is split into B buckets, a power of two from Min to
// Max (CheckCount). Port senses map a packet to bucket port & (B-1). Address
// senses use the kernel's jhash with an explicit cluster-wide seed, as
// nftables `jhash <key> mod B seed S offset 0` computes it: bucket =
// (jhash(key, S) * B) >> 32 (Scale). The key is the address as the packet
// carries it (4 or 16 bytes) or, for src-addr+src-port, the address followed
// by the big-endian source port zero-padded to 4 bytes, as nftables
// registers hold a concatenation. testdata/kernel_jhash_vectors.json holds
// buckets the kernel computed for real packets; the tests check Of and Jhash
// against them.
//
// The package is pure: values and functions only, no I/O. It does not build
// rules (package filter does) nor assign buckets to directors (package
// saru/partition does).
package bucket
