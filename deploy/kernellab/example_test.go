package kernellab_test

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/saru-lb/saru/deploy/kernellab"
)

// A test body that needs IPVS runs in the guest; the host side only starts it.
// Subtests share one boot; extra binaries and files travel with options.
func ExampleRun() {
	_ = func(t *testing.T) { // func TestIntegrationDirector(t *testing.T)
		kernellab.Run(t, func(t *testing.T) {
			t.Run("services", func(t *testing.T) { /* ipvs.Dial, reconcile, ipvsadm -L -n ... */ })
			t.Run("sync", func(t *testing.T) { /* exec /usr/local/bin/syncd ... */ })
		},
			kernellab.WithGoBinary("/usr/local/bin/syncd", "github.com/saru-lb/saru/cmd/syncd"),
			kernellab.WithFile("/etc/saru/syncd.yaml", "testdata/syncd.yaml"),
			kernellab.WithTimeout(5*time.Minute))
	}
}

// Exec boots the lab once and runs a shell script, for tools and host-side
// tests that are not Go tests.
func ExampleExec() {
	res, err := kernellab.Exec(context.Background(), kernellab.Spec{
		Script: "ipvsadm -A -t 10.0.0.1:80 -s rr && ipvsadm -L -n\n",
		Output: os.Stdout,
	})
	if err != nil {
		fmt.Println("lab failed:", err)
		return
	}
	fmt.Println("exit status", res.ExitCode, "after", res.BootToReady, "to boot")
}
