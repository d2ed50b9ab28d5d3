// Package sarupb holds the generated Go code for the saru.v1 API (the
// coordinator's Cluster service). Edit cluster.proto and run `make proto`;
// never edit the generated files.
package sarupb
