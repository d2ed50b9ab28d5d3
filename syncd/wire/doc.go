// Package wire encodes and authenticates the datagrams syncd peers
// exchange, and converts connection entries to and from the compact
// columnar syncdpb.Batch.
//
// # Framing
//
// A datagram is: magic "SY", format version 1, the id of the key that
// signed it (one byte), a protobuf syncdpb.Packet, and a 16-byte
// HMAC-SHA256-128 tag (RFC 4868 truncation) over everything before the tag.
// Open verifies the tag with the key the id names before anything is
// decoded; a packet that fails is rejected with a typed Reason and never
// reaches the table.
//
// # Keys
//
// The cluster key file lists keys, one per line as "<id> <hex secret>"; the
// first signs, all are accepted. Rolling a key over: add the new key as a
// second line everywhere, then move it first everywhere, then remove the
// old one; a Keyring built by Rollover keeps accepting removed keys for a
// grace period so peers reloaded at different moments still talk.
//
// # Decoding
//
// OpenPacket decodes any packet into the generated message, and
// AppendEntries turns batches into entries. OpenData is the receive fast
// path: a data packet in the canonical encoding (what Packer and
// SealPacket produce) is decoded straight into entries; anything else is
// left to the generic path, and a fuzz test holds the two to the same
// answers.
//
// The package does no I/O and reads no clock; replay protection (sequence
// numbers) is syncd/reliable's job.
package wire
