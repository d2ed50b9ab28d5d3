package coord_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestPure: the coordinator core must stay free of I/O, clocks, goroutine
// machinery and transports.
func TestPure(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", "{{join .Imports \" \"}}", "github.com/saru-lb/saru/saru/coord").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, dep := range strings.Fields(string(out)) {
		for _, bad := range []string{"net", "os", "os/exec", "syscall", "time", "sync", "github.com/hashicorp/memberlist", "google.golang.org/grpc",
			"github.com/google/nftables", "github.com/mdlayher/netlink", "github.com/saru-lb/saru/filter"} {
			if dep == bad {
				t.Errorf("saru/coord depends on %s", dep)
			}
		}
	}
}
