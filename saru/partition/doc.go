// Package partition divides the connection space among live directors.
//
// The space is split into B buckets (a power of two, 16 to 65536). An
// Assignment maps every bucket to one owner among the active members, and to
// a precomputed standby (a different active member) that takes the bucket
// over if the owner dies. Assign computes the next assignment from the
// previous one and the current member set:
//
//   - every bucket has exactly one owner among the active members;
//   - each active member owns its weight-proportional share, within one
//     bucket of ideal;
//   - movement is minimal: when a member leaves or drains only its buckets
//     move, each to its standby where that keeps the balance; when one joins
//     it takes its share from the most loaded members, and no bucket moves
//     between two members that were already there;
//   - the same inputs give the same output on every director.
//
// The bucket of a packet, and the bucket limits, are package filter/bucket's.
//
// The package is pure: no I/O, no clock, no goroutines. It knows nothing of
// how assignments are distributed (package saru) or installed (package
// filter).
package partition
