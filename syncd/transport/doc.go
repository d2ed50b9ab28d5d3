// Package transport moves syncd datagrams between peers: UDP multicast
// (IPv4 or IPv6; group, port, interface, TTL/hop limit configurable) or a
// unicast peer list where multicast is not available.
//
// It is a thin adapter: it sends and receives opaque datagrams and knows
// nothing of their contents, authentication or reliability. Lossy wraps a
// Transport to drop datagrams at random, for tests of the layers above.
package transport
