// Package table is syncd's in-memory connection table: one entry per
// conn.Key, upserted by newest version (conn.Newer), expired by timeout,
// counted per origin director.
//
// It stores entries compactly (fixed-size records in chunked slabs and an
// open-addressing index of uint32s, no per-entry pointers), so a million
// entries cost about a hundred bytes each. It does no I/O, reads no clock
// (callers pass the time) and is not safe for concurrent use: the daemon
// guards it with a lock.
package table
