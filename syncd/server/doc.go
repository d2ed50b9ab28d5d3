// Package server serves syncd.v1.Sync over gRPC (status, per-peer stats,
// filtered and paged connection listing, the streamed snapshot) from a
// Source, and pulls a snapshot from a peer (Pull).
//
// It translates between the API's messages and syncd's types and checks
// requests (InvalidArgument naming the field); it holds no state of its
// own: the daemon is the Source.
package server
