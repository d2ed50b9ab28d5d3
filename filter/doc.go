// Package filter installs saru's nftables ownership filter: every director
// carries the same VIP and MAC and so receives every packet for a virtual
// service; the filter accepts the packets whose bucket this director owns and
// drops the rest before IPVS (or conntrack) spends anything on them.
//
// It reproduces the seed's `-m saru` iptables rules in one nftables table
// (default "inet saru"):
//
//   - tcp and udp to a VIP are bucketed by the service's Sense (default
//     src-port) and accepted if the bucket is owned, else dropped;
//   - ICMP (ICMPv6) echo-request to a VIP is bucketed by src-addr;
//   - other ICMP to a VIP is accepted by every director;
//   - everything else to a VIP is dropped.
//
// In LVS-NAT mode (Config.NAT) a forward chain (priority 200, after IPVS
// rewrote a reply at forward priority 100) lets exactly one director forward
// each reply from a virtual service (the owner of the client's bucket:
// source and destination swap, so src-port is read from the reply's
// destination port) and each new connection from the real servers (the
// owner of its source port; echo-request by destination address, as in the
// seed), and a nat chain masquerades the latter; traffic between real
// servers is untouched. These are the seed's POSTROUTING rules. Replies to
// masqueraded connections come back to the director's address on the
// outgoing interface (typically the VIP) on a port no service claims; the
// prerouting chain accepts them at the owner of that port's bucket, which is
// the forwarding director as long as masquerade keeps the real server's
// source port (it does unless two real servers use the same port towards
// the same destination at once). A VIP with an all-ports service cannot
// also serve as the masquerade address.
//
// # Buckets
//
// B = Config.Buckets is a power of two from 16 to 65536. Port senses map a
// packet to bucket port & (B-1) on the 16-bit port. Address senses use the
// kernel's jhash with the explicit cluster seed Config.Seed, as nftables
// `jhash <key> mod B seed S offset 0`: bucket = (jhash(key, len, S) * B) >> 32.
// The key is the address (4 or 16 bytes) or, for src-addr+src-port, the
// address followed by the big-endian source port zero-padded to 4 bytes (8
// or 20 bytes), exactly as nftables registers hold a concatenation. The seed
// must be non-zero: google/nftables omits a zero seed and the kernel would
// then pick a random seed per rule. Package filter/bucket computes the same
// buckets in Go (bucket.Of); its testdata/kernel_jhash_vectors.json holds
// buckets observed from the kernel with real packets, which
// TestIntegrationKernelJhash records.
//
// The owned buckets are the set "owned" of 32-bit host-order integers with a
// declared size of B; the kernel then uses a fixed-size hash backend, so
// lookups, inserts and removals are O(1) whatever the number of owned buckets.
//
// # Use
//
//	f, err := filter.Open(ctx, cfg)          // install, owning nothing; replaces a stale table
//	err = f.Apply(ctx, owned)                // one atomic batch: the buckets given up and gained
//	counters, err := f.Counters(ctx)         // per-rule packets and bytes, with descriptions
//	err = f.Close(ctx)                       // remove the table
//
// Build is the pure part: it turns a Config and a BucketSet into the nftables
// objects without any I/O. The Filter methods are the thin netlink adapter.
// Apply is a single netlink batch carrying only the change (so reassigning a
// departed director's share of 65536 buckets takes about 2 ms, against about
// 30 ms for `nft -f`); the kernel applies all of it or nothing: when it
// refuses, the previous ownership stays in force and the error names the
// set. Applying the same buckets again sends nothing. If another writer
// changed the set so that a deletion fails, Apply falls back to a full
// replacement in a second atomic batch.
//
// # What it does not do
//
// It does not decide ownership (saru/partition does), does not configure
// addresses or MACs (filter/sharedmac does), and does not load IPVS. Non-first
// IP fragments carry no ports; they are dropped unless conntrack's
// defragmentation (priority -400) reassembled them first. Big-endian hosts are
// not supported.
//
// # Debugging
//
//	nft list table inet saru     # rules with their counters and descriptions
//	nft list set inet saru owned # the owned buckets
package filter
