package mesh_test

import (
	"fmt"
	"strings"
	"testing"
)

// Four cores converge under 30% loss and reordering whatever the loss
// pattern: the loss scenario, over several seeds, with updates in flight.
func TestLossConvergesAnySeed(t *testing.T) {
	seeds := 8
	if testing.Short() {
		seeds = 2
	}
	for seed := 1; seed <= seeds; seed++ {
		s := newSim()
		for _, cmd := range []string{
			fmt.Sprintf("set seed %d", seed), "set loss 30", "set jitter 3ms", "add n1 n2 n3 n4", "run 1s",
			"export n1 300", "export n2 300", "run 10ms", "export n3 300", "update n1 100", "export n4 300", "run 3s",
		} {
			s.run(t, cmd)
		}
		if got := s.run(t, "check"); !strings.HasPrefix(got, "converged") {
			t.Errorf("seed %d: %s%s", seed, got, s.run(t, "print"))
		}
	}
}
