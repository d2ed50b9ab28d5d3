package coord_test

import (
	"testing"

	"github.com/saru-lb/saru/saru/coord"
	"github.com/saru-lb/saru/saru/partition"
)

// TestSameEpochDifferentContent: two leaders that did not see each other
// may issue the same epoch with different content. When the leader sees a
// peer advertise its own epoch with another fingerprint, it issues the next
// epoch even though the member set is unchanged, so every director
// converges on one assignment.
func TestSameEpochDifferentContent(t *testing.T) {
	cfg := coord.Config{ID: "d1", Weight: 1, GRPC: "d1:7400", Buckets: 64, Seed: 7, JoinDelay: 30, Settle: 0, DrainConfirmTimeout: 20, Retry: 5, FastFailover: true}
	n, err := coord.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	n.Ready()
	members := []partition.Member{{ID: "d1", Weight: 1, State: partition.Active}, {ID: "d2", Weight: 1, State: partition.Active}}
	empty, _ := partition.Empty(64)
	mine, err := partition.Assign(empty, members)
	if err != nil {
		t.Fatal(err)
	}
	mine.Epoch = 10
	// d2's version of epoch 10: the same members, owners swapped.
	theirs := mine
	theirs.Owners = append([]string(nil), mine.Owners...)
	theirs.Standbys = append([]string(nil), mine.Standbys...)
	for b := range theirs.Owners {
		theirs.Owners[b], theirs.Standbys[b] = theirs.Standbys[b], theirs.Owners[b]
	}
	d2 := coord.Meta{ID: "d2", Weight: 1, State: partition.Active, Epoch: 9, GRPC: "d2:7400", Buckets: 64, Seed: 7}
	n.PeerAlive(d2)
	n.Ready()
	if r := n.Receive("d2", mine); r != "" {
		t.Fatalf("receive: %s", r)
	}
	rd := n.Ready()
	if rd.Publish == nil || rd.Publish.Epoch != 10 {
		t.Fatalf("after receiving epoch 10 with an unchanged member set: %+v", rd.Publish)
	}
	// d2 announces the same epoch with another fingerprint.
	d2.Epoch, d2.Hash = 10, coord.Fingerprint(theirs)
	if coord.Fingerprint(theirs) == coord.Fingerprint(mine) {
		t.Fatal("fingerprints collide")
	}
	n.PeerAlive(d2)
	rd = n.Ready()
	if rd.Publish == nil || rd.Publish.Epoch != 11 || partition.Moved(*rd.Publish, mine) != 0 {
		t.Fatalf("want epoch 11 with epoch 10's owners, got %+v", rd.Publish)
	}
	var diverged bool
	for _, e := range rd.Events {
		diverged = diverged || e.Reason == coord.AssignDiverged
	}
	if !diverged {
		t.Errorf("no %s event in %+v", coord.AssignDiverged, rd.Events)
	}
	// The same fingerprint changes nothing.
	d2.Epoch, d2.Hash = 11, rd.Meta.Hash
	n.PeerAlive(d2)
	if rd := n.Ready(); rd.Publish != nil {
		t.Fatalf("agreeing peer caused epoch %d", rd.Publish.Epoch)
	}
}

func TestForgetDead(t *testing.T) {
	n, err := coord.New(coord.Config{ID: "d1", Weight: 1, Buckets: 64, Seed: 7, Retry: 1, ForgetDead: 3})
	if err != nil {
		t.Fatal(err)
	}
	n.PeerAlive(coord.Meta{ID: "d2", Weight: 1, State: partition.Active, Buckets: 64, Seed: 7})
	n.PeerDead("d2")
	n.Tick()
	n.Tick()
	if p := n.Peers(); len(p) != 1 || p[0].Alive {
		t.Fatalf("after 2 ticks: %+v", p)
	}
	n.Tick()
	if p := n.Peers(); len(p) != 0 {
		t.Fatalf("after 3 ticks: %+v", p)
	}
}

// TestFollowerCatchesUp: a follower whose leader stream delivers nothing
// (say its gRPC port is unreachable) pulls the epoch that gossip says a
// peer has, after Retry ticks.
func TestFollowerCatchesUp(t *testing.T) {
	n, err := coord.New(coord.Config{ID: "d2", Weight: 1, GRPC: "d2:7400", Buckets: 64, Seed: 7, JoinDelay: 30, Settle: 0, DrainConfirmTimeout: 20, Retry: 3, FastFailover: true})
	if err != nil {
		t.Fatal(err)
	}
	members := []partition.Member{{ID: "d1", Weight: 1, State: partition.Active}, {ID: "d2", Weight: 1, State: partition.Active}}
	empty, _ := partition.Empty(64)
	a, _ := partition.Assign(empty, members)
	a.Epoch = 5
	n.PeerAlive(coord.Meta{ID: "d1", Weight: 1, State: partition.Active, Epoch: 5, Hash: coord.Fingerprint(a), GRPC: "d1:7400", Buckets: 64, Seed: 7})
	if rd := n.Ready(); rd.Leader == nil || rd.Leader.ID != "d1" || rd.Fetch != "" {
		t.Fatalf("first: leader %+v, fetch %q", rd.Leader, rd.Fetch)
	}
	for i := 0; i < 2; i++ {
		n.Tick()
		if rd := n.Ready(); rd.Fetch != "" {
			t.Fatalf("fetch after %d ticks, before the stream had its chance", i+1)
		}
	}
	n.Tick()
	rd := n.Ready()
	if rd.Fetch != "d1" {
		t.Fatalf("after Retry ticks: fetch %q, want d1", rd.Fetch)
	}
	if r := n.Receive("d1", a); r != "" {
		t.Fatal(r)
	}
	for range 5 {
		n.Tick()
		if rd := n.Ready(); rd.Fetch != "" {
			t.Fatalf("fetch %q after catching up", rd.Fetch)
		}
	}
	if got := len(n.Owned()); got != 32 {
		t.Fatalf("owns %d after catching up, want 32", got)
	}
}

// TestLeaderPassesRefusedEpoch: a peer announcing a newer epoch whose
// assignment the leader cannot take (it names a director nobody knows)
// neither blocks the leader nor makes it ask again: the leader's next
// epoch passes the peer's, so directors that took it follow the leader.
func TestLeaderPassesRefusedEpoch(t *testing.T) {
	n, err := coord.New(coord.Config{ID: "d1", Weight: 1, GRPC: "d1:7400", Buckets: 64, Seed: 7, JoinDelay: 30, Settle: 0, DrainConfirmTimeout: 20, Retry: 3, FastFailover: true})
	if err != nil {
		t.Fatal(err)
	}
	n.Tick()
	n.Ready()
	empty, _ := partition.Empty(64)
	bogus, _ := partition.Assign(empty, []partition.Member{{ID: "d2", Weight: 1, State: partition.Active}, {ID: "ghost", Weight: 1, State: partition.Active}})
	bogus.Epoch = 9
	n.PeerAlive(coord.Meta{ID: "d2", Weight: 1, State: partition.Active, Epoch: 9, GRPC: "d2:7400", Buckets: 64, Seed: 7})
	rd := n.Ready()
	if rd.Fetch != "d2" {
		t.Fatalf("fetch %q, want d2", rd.Fetch)
	}
	if r := n.Receive("d2", bogus); r != coord.DropNonMember {
		t.Fatalf("receive: %q, want %s", r, coord.DropNonMember)
	}
	rd = n.Ready()
	if rd.Fetch != "" || rd.Publish == nil || rd.Publish.Epoch != 10 || len(rd.Publish.Owned("d1")) != 32 {
		t.Fatalf("after the refusal: fetch %q, publish %+v", rd.Fetch, rd.Publish)
	}
	for range 5 {
		n.Tick()
		if rd := n.Ready(); rd.Fetch != "" {
			t.Fatalf("asked %s again", rd.Fetch)
		}
	}
}
