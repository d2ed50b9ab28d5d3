// Package conn defines the connection entry every syncd carries and the
// Backend interface through which a local kernel (IPVS via its sync
// protocol, or nf_conntrack) exports its entries and imports its peers'.
//
// An Entry holds every field of the IPVS sync protocol v1 message
// (net/netfilter/ipvs/ip_vs_sync.c: struct ip_vs_sync_v4/v6 plus the
// sequence-adjust and persistence-engine options), and the origin director
// and version syncd adds. A Key identifies an entry as IPVS keys its
// connection hash table, templates included.
//
// The package does no I/O. MemoryBackend is an in-memory Backend for tests
// and for running syncd without a kernel table.
package conn
