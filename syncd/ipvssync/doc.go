// Package ipvssync speaks the IPVS kernel's connection synchronisation
// protocol (net/netfilter/ipvs/ip_vs_sync.c) and reads the kernel's
// connection table as /proc/net/ip_vs_conn shows it.
//
// # Codec
//
// Decode parses one sync datagram into syncd's entries (conn.Entry): the
// version 1 format (8-byte header, 36-byte IPv4 and 72-byte IPv6
// connection records, the sequence-adjust, persistence-engine data and
// name options, optional options flagged with IPVS_OPT_F_PARAM, 4-byte
// padding between records) and the old version 0 format, chosen by the
// same rule as the kernel's ip_vs_process_message. This is where the
// kernel's entries enter syncd, so each record is checked here, once:
// against what the kernel's backup takes and against conn.Entry.Validate.
// Errors and refused records are *DecodeError values naming the field and
// the byte offset.
//
// Pack and AppendMessage build version 1 datagrams from entries. They
// refuse anything the kernel's backup would silently drop: an unknown
// protocol or state, a persistence-engine option the backup rejects, a
// datagram larger than the backup's receive limit (DefaultMaxLen unless
// configured), more than 255 records. Pack leaves a refused entry out and
// packs the rest. The header size always equals the datagram size.
//
// # Connection table
//
// ParseConnTable reads the text of /proc/net/ip_vs_conn into ProcConn
// values, which carry what the kernel prints (no flags, no fwmark, the
// remaining time rather than the full timeout). A Tracker turns
// successive reads into the entries to export, checked as Decode checks
// them.
//
// # What it does not do
//
// The package does no I/O: no sockets, no files, no clocks. The bridge
// between the kernel's sync threads and syncd lives in
// syncd/ipvssync/bridge.
package ipvssync
