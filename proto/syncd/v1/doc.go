// Package syncdpb holds the generated Go code for the syncd.v1 API (the sync
// daemon's Sync service and the peer wire messages). Edit the .proto files
// and run `make proto`; never edit the generated files.
package syncdpb
