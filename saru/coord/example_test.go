package coord_test

import (
	"fmt"

	"github.com/saru-lb/saru/saru/coord"
)

// A lone director: it starts joining, becomes active after the settle time
// (no other director is active), leads, assigns itself every bucket and
// asks for the owned set to be installed.
func ExampleCore() {
	n, err := coord.New(coord.Config{ID: "dir1", Weight: 1, GRPC: "10.0.0.1:7400", Buckets: 16, Seed: 0x5eed,
		JoinDelay: 300, Settle: 2, DrainConfirmTimeout: 100, Retry: 10, FastFailover: true})
	if err != nil {
		panic(err)
	}
	for range 2 {
		n.Tick()
	}
	rd := n.Ready()
	for _, e := range rd.Events {
		fmt.Println(e.Reason)
	}
	fmt.Println("state:", rd.Meta.State, "epoch:", rd.Publish.Epoch, "owned:", len(rd.Apply.Owned))
	n.Applied(rd.Apply.Seq)
	fmt.Println("applied:", n.Ready().Meta.Applied)
	// Output:
	// leader-changed
	// assignment-computed
	// bootstrap
	// assignment-computed
	// state: active epoch: 2 owned: 16
	// applied: 2
}
