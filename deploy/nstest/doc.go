// Package nstest is the scaffolding shared by the tests that run code in
// throw-away network namespaces: the host integration tests of filter,
// saru, syncd and cmd, and the kernel-lab tests.
//
// It creates a fresh namespace with lo up and deletes it when the test
// ends, pass or fail (New); runs a function on a thread inside a namespace
// (NetNS.Do, In); runs commands in one (NetNS.Sh) or on the host (Run);
// waits for a condition with a deadline instead of sleeping (WaitFor); and
// keeps the end of a daemon's log for a failure message (LastLines).
// RequireRoot skips a test only when root is truly missing.
//
// It is for tests only, and imports nothing from saru, syncd or cmd, so
// every part of the tree may use it.
package nstest
