package filter

import (
	"context"
	"encoding/binary"
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"

	"github.com/saru-lb/saru/filter/bucket"
)

func smallConfig() Config {
	return Config{Buckets: 16, Seed: 0x77, Services: []Service{
		{VIP: netip.MustParseAddr("10.95.0.1"), Protocols: []bucket.Protocol{bucket.TCP, bucket.UDP}},
		{VIP: netip.MustParseAddr("fd00:95::1"), Protocols: []bucket.Protocol{bucket.TCP}, Port: 22, Sense: bucket.SrcAddr},
	}, NAT: &NATConfig{RealServers: []netip.Prefix{netip.MustParsePrefix("192.168.95.0/24"), netip.MustParsePrefix("fd00:195::/64")}}}
}

// genID reads the ruleset generation, which every committed batch bumps.
func genID(t *testing.T, ns *netNS) uint32 {
	t.Helper()
	c, err := netlink.Dial(unix.NETLINK_NETFILTER, &netlink.Config{NetNS: ns.FD})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	msgs, err := c.Execute(netlink.Message{
		Header: netlink.Header{Type: netlink.HeaderType(unix.NFNL_SUBSYS_NFTABLES<<8 | unix.NFT_MSG_GETGEN), Flags: netlink.Request},
		Data:   []byte{unix.AF_UNSPEC, 0, 0, 0},
	})
	if err != nil {
		t.Fatal(err)
	}
	ad, err := netlink.NewAttributeDecoder(msgs[0].Data[4:])
	if err != nil {
		t.Fatal(err)
	}
	for ad.Next() {
		if ad.Type() == unix.NFTA_GEN_ID {
			return binary.BigEndian.Uint32(ad.Bytes())
		}
	}
	t.Fatal("no NFTA_GEN_ID")
	return 0
}

func kernelBuckets(t testing.TB, f *Filter) []uint32 {
	t.Helper()
	elems, err := f.conn.GetSetElements(f.rs.Owned)
	if err != nil {
		t.Fatal(err)
	}
	var out []uint32
	for _, e := range elems {
		out = append(out, binary.NativeEndian.Uint32(e.Key))
	}
	slices.Sort(out)
	return out
}

func TestIntegrationApplyIdempotent(t *testing.T) {
	requireRoot(t)
	ns := newNetNS(t, "idem")
	ctx := context.Background()
	f, err := Open(ctx, smallConfig(), WithNetNS(ns.FD))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close(ctx)
	steps := [][]uint32{{1, 2, 3}, {1, 2, 3}, {2, 3, 9, 15}, {}, {0, 15}, {0, 15}}
	for i, step := range steps {
		owned, _ := NewBucketSet(16, step...)
		before := genID(t, ns)
		if err := f.Apply(ctx, owned); err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		after := genID(t, ns)
		if got := kernelBuckets(t, f); !slices.Equal(got, step) && len(step)+len(got) > 0 {
			t.Fatalf("step %d: kernel holds %v, want %v", i, got, step)
		}
		same := i > 0 && slices.Equal(steps[i-1], step)
		if same && after != before {
			t.Fatalf("step %d: re-applying the same buckets committed a batch (generation %d -> %d)", i, before, after)
		}
		if !same && i > 0 && after != before+1 {
			t.Fatalf("step %d: generation %d -> %d, want exactly one batch", i, before, after)
		}
	}
	if got, want := kernelBuckets(t, f), f.Applied().Buckets(); !slices.Equal(got, want) {
		t.Fatalf("kernel holds %v, last applied %v", got, want)
	}
	if !f.Applied().Equal(mustSmall(t, 0, 15)) {
		t.Fatalf("Applied() = %v", f.Applied().Buckets())
	}
}

func mustSmall(t *testing.T, bs ...uint32) *BucketSet {
	s, err := NewBucketSet(16, bs...)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// Drift: another writer changes the set. Apply repairs a missing element by
// a full replacement.
func TestIntegrationApplyDrift(t *testing.T) {
	requireRoot(t)
	ns := newNetNS(t, "drift")
	ctx := context.Background()
	f, err := Open(ctx, smallConfig(), WithNetNS(ns.FD))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close(ctx)
	if err := f.Apply(ctx, mustSmall(t, 1, 2, 3)); err != nil {
		t.Fatal(err)
	}
	ns.Sh(t, "nft delete element inet saru owned { 2 }")
	ns.Sh(t, "nft add element inet saru owned { 7 }")
	// Giving up 2 (already gone) makes the delta batch fail; Apply falls
	// back to a replacement, which also drops the stray 7.
	if err := f.Apply(ctx, mustSmall(t, 1, 3, 4)); err != nil {
		t.Fatal(err)
	}
	if got := kernelBuckets(t, f); !slices.Equal(got, []uint32{1, 3, 4}) {
		t.Fatalf("after drift repair kernel holds %v", got)
	}
}

// A refused batch changes nothing: the set is declared with room for B
// elements, so a batch that deletes some buckets and then adds more keys than
// fit is refused by the kernel, and the deletions do not happen either.
func TestIntegrationApplyRefusedLeavesPrevious(t *testing.T) {
	requireRoot(t)
	ns := newNetNS(t, "refuse")
	ctx := context.Background()
	f, err := Open(ctx, smallConfig(), WithNetNS(ns.FD))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close(ctx)
	if err := f.Apply(ctx, mustSmall(t, 1, 2, 3)); err != nil {
		t.Fatal(err)
	}
	gen := genID(t, ns)
	var tooMany []uint32
	for b := uint32(100); b < 100+64; b++ {
		tooMany = append(tooMany, b)
	}
	err = f.applyDelta(tooMany, []uint32{1, 2})
	if err == nil {
		t.Fatal("kernel accepted 64 extra elements in a 16-element set")
	}
	if !strings.Contains(err.Error(), "set inet saru owned") {
		t.Fatalf("error does not name the set: %v", err)
	}
	t.Logf("refused as expected: %v", err)
	if got := kernelBuckets(t, f); !slices.Equal(got, []uint32{1, 2, 3}) {
		t.Fatalf("after a refused batch the kernel holds %v, want the previous [1 2 3]", got)
	}
	if g := genID(t, ns); g != gen {
		t.Fatalf("generation moved %d -> %d on a refused batch", gen, g)
	}
	// The socket is still in step: the next Apply works.
	if err := f.Apply(ctx, mustSmall(t, 3, 4)); err != nil {
		t.Fatal(err)
	}
	if got := kernelBuckets(t, f); !slices.Equal(got, []uint32{3, 4}) {
		t.Fatalf("kernel holds %v, want [3 4]", got)
	}
}

// Open replaces a stale table of ours atomically, leaves other tables alone,
// and Close removes only ours.
func TestIntegrationOpenReconcileClose(t *testing.T) {
	requireRoot(t)
	ns := newNetNS(t, "recon")
	ctx := context.Background()
	ns.Sh(t, "nft add table inet saru")
	ns.Sh(t, "nft add chain inet saru stale { type filter hook input priority 0 ; }")
	ns.Sh(t, "nft add set inet saru owned { type inet_service ; }")
	ns.Sh(t, "nft add table inet other")
	ns.Sh(t, "nft add chain inet other keep { type filter hook input priority 0 ; }")
	f, err := Open(ctx, smallConfig(), WithNetNS(ns.FD))
	if err != nil {
		t.Fatal(err)
	}
	out := ns.Sh(t, "nft list ruleset")
	if strings.Contains(out, "stale") || !strings.Contains(out, "chain keep") || !strings.Contains(out, "chain prerouting") ||
		!strings.Contains(out, "chain forward") || !strings.Contains(out, "masquerade") {
		t.Fatalf("after Open:\n%s", out)
	}
	for _, want := range []string{"priority raw", "seed 0x77", "jhash ip6 saddr mod 16", "ip6 saddr fd00:195::/64 ip6 daddr != fd00:195::/64 counter packets 0 bytes 0 masquerade",
		"icmpv6 type echo-request jhash ip6 daddr mod 16"} {
		if !strings.Contains(out, want) {
			t.Errorf("ruleset lacks %q:\n%s", want, out)
		}
	}
	if err := f.Close(ctx); err != nil {
		t.Fatal(err)
	}
	out = ns.Sh(t, "nft list ruleset")
	if strings.Contains(out, "table inet saru") || !strings.Contains(out, "table inet other") {
		t.Fatalf("after Close:\n%s", out)
	}
	if err := f.Apply(ctx, mustSmall(t, 1)); err == nil {
		t.Fatal("Apply after Close succeeded")
	}
}

// A kernel refusal at Open (a table of the same name owned by another
// process cannot be deleted) leaves that table in force and names ours.
func TestIntegrationOpenRefused(t *testing.T) {
	requireRoot(t)
	ns := newNetNS(t, "owned")
	ctx := context.Background()
	// google/nftables does not send table flags; create the owner table
	// by hand on a socket kept open for the test.
	other, err := netlink.Dial(unix.NETLINK_NETFILTER, &netlink.Config{NetNS: ns.FD})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	data := []byte{unix.NFPROTO_INET, 0, 0, 0}
	data = appendStringAttr(data, unix.NFTA_TABLE_NAME, "saru")
	data = appendAttrHeader(data, 8, unix.NFTA_TABLE_FLAGS)
	data = binary.BigEndian.AppendUint32(data, 0x2) // NFT_TABLE_F_OWNER
	if _, err := other.SendMessages([]netlink.Message{
		batchMarker(nfnlMsgBatchBegin),
		{Header: netlink.Header{Type: netlink.HeaderType(unix.NFNL_SUBSYS_NFTABLES<<8 | unix.NFT_MSG_NEWTABLE),
			Flags: netlink.Request | netlink.Acknowledge | netlink.Create}, Data: data},
		batchMarker(nfnlMsgBatchEnd),
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := other.Receive(); err != nil {
		t.Fatalf("create owner table: %v", err)
	}
	_, err = Open(ctx, smallConfig(), WithNetNS(ns.FD))
	if err == nil {
		t.Fatal("Open replaced a table owned by another process")
	}
	if !strings.Contains(err.Error(), "table inet saru") {
		t.Fatalf("error does not name the table: %v", err)
	}
	t.Logf("refused as expected: %v", err)
	out := ns.Sh(t, "nft list ruleset")
	if !strings.Contains(out, "table inet saru") || !strings.Contains(out, "flags owner") || strings.Contains(out, "prerouting") {
		t.Fatalf("after a refused Open:\n%s", out)
	}
	var fe *FieldError
	if _, err := Open(ctx, Config{Buckets: 3, Seed: 1}, WithNetNS(ns.FD)); !errors.As(err, &fe) {
		t.Fatalf("Open with a bad config: %v, want a FieldError", err)
	}
}
