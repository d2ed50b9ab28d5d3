package filter

import (
	"testing"

	"github.com/saru-lb/saru/deploy/nstest"
)

type netNS = nstest.NetNS

func requireRoot(tb testing.TB) { nstest.RequireRoot(tb) }

func newNetNS(tb testing.TB, suffix string) *netNS { return nstest.New(tb, suffix) }
