package coord_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"pgregory.net/rapid"
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
		ids := []string{"d1", "d2", "d3", "d4", "d5"}
		s.run(rt, "add d1")
		steps := rapid.IntRange(1, 30).Draw(rt, "steps")
		for range steps {
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
		s.run(rt, "heal")
		s.run(rt, "tick 40")
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
	})
}
