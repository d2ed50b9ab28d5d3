package coord_test

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"

	"pgregory.net/rapid"

	"github.com/saru-lb/saru/saru/partition"
)

// TestConvergenceProperty drives a simulated cluster through random
// joins, crashes, restarts, partitions, drains and ticks, then heals the
// network and lets time pass: every director must agree on the epoch and
// the leader (the lowest live id), and the installed bucket sets must
// cover every bucket exactly once.
func TestConvergenceProperty(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		s := newSim()
		s.cfg.FastFailover = rapid.Bool().Draw(rt, "fast")
		s.run(rt, "add d1")
		steps := rapid.IntRange(1, 30).Draw(rt, "steps")
		for range steps {
			step(rt, s)
		}
		converge(rt, s)
	})
}

// TestFakeDirectorProperty adds a fake director (gossip without a key lets
// anyone in) that announces absurd or plausible epochs and sends forged
// assignments, as the leader (a0, the lowest id) or not (d9), between the
// same random steps. Once it leaves, the cluster must converge as before:
// no epoch wrapped, no director left owning nothing.
func TestFakeDirectorProperty(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		s := newSim()
		s.cfg.FastFailover = rapid.Bool().Draw(rt, "fast")
		s.run(rt, "add d1")
		fakes := map[string]bool{}
		steps := rapid.IntRange(1, 30).Draw(rt, "steps")
		for range steps {
			if rapid.IntRange(0, 2).Draw(rt, "fake") != 0 {
				step(rt, s)
				continue
			}
			fake := rapid.SampledFrom([]string{"a0", "d9"}).Draw(rt, "fake-id")
			var newest uint64
			for _, x := range s.order {
				newest = max(newest, s.nodes[x].c.Assignment().Epoch)
			}
			// Plausible epochs, and absurd ones that every director
			// refuses. (Claims a director takes and another refuses can
			// split them: see MaxEpochJump.)
			epoch := rapid.SampledFrom([]uint64{newest, newest + 1, newest + 3,
				partition.MaxEpoch/2 + 1, partition.MaxEpoch, partition.MaxEpoch + 1, math.MaxUint64}).Draw(rt, "epoch")
			if rapid.Bool().Draw(rt, "announce") {
				state := rapid.SampledFrom([]string{"active", "joining", "draining"}).Draw(rt, "state")
				s.run(rt, fmt.Sprintf("announce %s epoch=%d state=%s", fake, epoch, state))
				fakes[fake] = true
				continue
			}
			ids := []string{fake, "d1", "d2", "d3", "ghost", "-"}
			owners := rapid.SliceOfNDistinct(rapid.SampledFrom(ids), 1, 3, rapid.ID[string]).Draw(rt, "owners")
			line := fmt.Sprintf("forge %s epoch=%d owners=%s", fake, epoch, strings.Join(owners, ","))
			if sb := rapid.SampledFrom(append(ids[:5], "")).Draw(rt, "standby"); sb != "" {
				line += " standby=" + sb
			}
			s.run(rt, line)
		}
		for fake := range fakes {
			if s.nodes[fake].up {
				s.run(rt, "kill "+fake)
				s.run(rt, "detect "+fake)
			}
		}
		converge(rt, s)
	})
}

// step is one random event: a join, a crash, time passing, a snapshot, a
// drain or undrain, a partition, a heal or a drain confirmation.
func step(rt *rapid.T, s *sim) {
	ids := []string{"d1", "d2", "d3", "d4", "d5"}
	id := rapid.SampledFrom(ids).Draw(rt, "id")
	var up []string
	for _, x := range s.order {
		if s.nodes[x].up {
			up = append(up, x)
		}
	}
	switch op := rapid.IntRange(0, 8).Draw(rt, "op"); op {
	case 0:
		if n, ok := s.nodes[id]; !ok || !n.up {
			s.run(rt, "add "+id)
		}
	case 1:
		if len(up) > 1 && slices.Contains(up, id) {
			s.run(rt, "kill "+id)
			s.run(rt, "detect "+id)
		}
	case 2:
		s.run(rt, fmt.Sprintf("tick %d", rapid.IntRange(1, 10).Draw(rt, "ticks")))
	case 3:
		if slices.Contains(up, id) {
			s.run(rt, "sync-ready "+id)
		}
	case 4:
		if slices.Contains(up, id) {
			s.run(rt, "drain "+id)
		}
	case 5:
		if slices.Contains(up, id) {
			s.run(rt, "undrain "+id)
		}
	case 6:
		if len(up) > 1 {
			cut := rapid.IntRange(1, len(up)-1).Draw(rt, "cut")
			s.run(rt, "partition "+strings.Join(up[:cut], " ")+" | "+strings.Join(up[cut:], " "))
		}
	case 7:
		s.run(rt, "heal")
	case 8:
		if slices.Contains(up, id) && len(up) > 1 {
			other := up[0]
			if other == id {
				other = up[1]
			}
			s.run(rt, "confirm "+other+" "+id)
		}
	}
}

// converge heals the network and lets time pass: every director must then
// agree on the epoch and the leader (the lowest live id), and the
// installed bucket sets must cover every bucket exactly once.
func converge(rt *rapid.T, s *sim) {
	s.run(rt, "heal")
	s.run(rt, "tick 40")
	rt.Log(strings.Join(s.log, "\n"))
	var epoch uint64
	leader := ""
	for _, x := range s.order {
		n := s.nodes[x]
		if !n.up {
			continue
		}
		if leader == "" {
			leader, epoch = x, n.c.Assignment().Epoch
		}
		if n.c.LeaderID() != leader {
			rt.Fatalf("%s follows %s, want %s", x, n.c.LeaderID(), leader)
		}
		if e := n.c.Assignment().Epoch; e != epoch || n.c.Self().Applied != e {
			rt.Fatalf("%s at epoch %d applied %d, leader at %d", x, e, n.c.Self().Applied, epoch)
		}
	}
	if out := s.run(rt, "check"); out != "side 0: every bucket owned exactly once\n" {
		rt.Fatalf("after healing: %s", out)
	}
}
