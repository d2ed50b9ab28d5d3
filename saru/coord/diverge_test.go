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
	if r := n.Receive(mine); r != "" {
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
