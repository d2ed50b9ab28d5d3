package ipvssync

import (
	"os/exec"
	"strings"
	"testing"
)

// The codec and table parser stay pure: no sockets, netlink or RPC.
func TestNoIODependencies(t *testing.T) {
	goCmd, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go command not available")
	}
	out, err := exec.Command(goCmd, "list", "-deps", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for _, dep := range strings.Fields(string(out)) {
		for _, banned := range []string{"golang.org/x/sys/unix", "github.com/mdlayher/", "github.com/jsimonetti/", "google.golang.org/grpc", "net/http", "os/exec"} {
			if strings.HasPrefix(dep, banned) {
				t.Errorf("ipvssync depends on %s", dep)
			}
		}
	}
	imports, err := exec.Command(goCmd, "list", "-f", "{{join .Imports \" \"}}", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, imports)
	}
	for _, imp := range strings.Fields(string(imports)) {
		switch imp {
		case "bufio", "encoding/binary", "errors", "fmt", "io", "net/netip", "strconv", "strings", "time",
			"github.com/saru-lb/saru/syncd/conn":
		default:
			t.Errorf("ipvssync imports %s", imp)
		}
	}
}
