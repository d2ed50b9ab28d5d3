package kernellab

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestIntegrationKernelLabGuest runs its body in the guest and checks the
// guest is what the lab promises: Debian's kernel, IPVS loaded, Debian's
// ipvsadm working against it, root, the lab's environment.
func TestIntegrationKernelLabGuest(t *testing.T) {
	Run(t, func(t *testing.T) {
		if !Inside() {
			t.Fatalf("body runs outside the guest")
		}
		if os.Geteuid() != 0 {
			t.Fatalf("guest runs as uid %d, want root", os.Geteuid())
		}
		mods, err := os.ReadFile("/proc/modules")
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range []string{"ip_vs ", "ip_vs_wlc ", "ip_vs_mh ", "nf_conntrack ", "nf_tables ", "nft_ct ", "veth ", "dummy ", "bridge "} {
			if !bytes.Contains(mods, []byte("\n"+m)) && !bytes.HasPrefix(mods, []byte(m)) {
				t.Errorf("module %s not loaded", strings.TrimSpace(m))
			}
		}
		out, err := exec.Command("ipvsadm", "-L", "-n").CombinedOutput()
		if err != nil {
			t.Fatalf("ipvsadm -L -n: %v: %s", err, out)
		}
		if !strings.Contains(string(out), "IP Virtual Server version") {
			t.Errorf("ipvsadm -L -n printed %q", out)
		}
		if out, err := exec.Command("ip", "netns", "add", "labcheck").CombinedOutput(); err != nil {
			t.Errorf("ip netns add: %v: %s", err, out)
		} else {
			exec.Command("ip", "netns", "del", "labcheck").Run()
		}
		if data, err := os.ReadFile("testdata/guest.txt"); err != nil || !bytes.Contains(data, []byte("testdata reaches the guest")) {
			t.Errorf("testdata/guest.txt in the guest: %q, %v", data, err)
		}
		if out, err := exec.Command("/usr/local/bin/hello").CombinedOutput(); err != nil || string(out) != "hello from 1\n" {
			t.Errorf("Go binary built for the guest: %q, %v", out, err)
		}
		if data, err := os.ReadFile("/etc/lab-extra"); err != nil || string(data) != "extra\n" {
			t.Errorf("/etc/lab-extra: %q, %v", data, err)
		}
		if v := os.Getenv("LAB_EXTRA_ENV"); v != "it's here" {
			t.Errorf("LAB_EXTRA_ENV=%q", v)
		}
		t.Run("subtest", func(t *testing.T) {
			if _, err := os.Stat("/proc/net/ip_vs"); err != nil {
				t.Errorf("/proc/net/ip_vs: %v", err)
			}
		})
	}, WithData("/etc/lab-extra", []byte("extra\n"), 0o644),
		WithGoBinary("/usr/local/bin/hello", "./testdata/hello"),
		WithEnv("LAB_EXTRA_ENV", "it's here"))
}

// TestIntegrationKernelLabExitStatus shows that a failing guest script is
// reported with its exit status and output, and measures boot time.
func TestIntegrationKernelLabExitStatus(t *testing.T) {
	if Inside() {
		t.Skip("host-side test")
	}
	if testing.Short() {
		t.Skip("skipping kernel lab test in -short mode")
	}
	if _, err := exec.LookPath(qemuBinary); err != nil {
		t.Skipf("skipping: %v", ErrNoQEMU)
	}
	var out bytes.Buffer
	res, err := Exec(context.Background(), Spec{
		Script: "cat /etc/lab-extra; uname -r; echo to-stderr >&2; exit 7\n",
		Files:  []File{{Guest: "/etc/lab-extra", Data: []byte("extra-file-content\n"), Mode: 0o644}},
		Output: &out,
	})
	if err != nil {
		t.Fatalf("Exec: %v\n%s", err, out.String())
	}
	t.Logf("kernel %s: prepare %v, boot to ready %v (guest uptime %v), total %v",
		res.Kernel, res.Prepare, res.BootToReady, res.GuestUptimeAtReady, res.Total)
	if res.ExitCode != 7 {
		t.Errorf("exit code %d, want 7; output:\n%s", res.ExitCode, out.String())
	}
	for _, want := range []string{"extra-file-content", res.Kernel, "to-stderr"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("guest output lacks %q:\n%s", want, out.String())
		}
	}
	if strings.Contains(out.String(), markerExit) {
		t.Errorf("marker line leaked into the output:\n%s", out.String())
	}
}

// TestIntegrationKernelLabTimeout shows that a guest that does not finish in
// time is killed and reported, not waited for.
func TestIntegrationKernelLabTimeout(t *testing.T) {
	if Inside() {
		t.Skip("host-side test")
	}
	if testing.Short() {
		t.Skip("skipping kernel lab test in -short mode")
	}
	if _, err := exec.LookPath(qemuBinary); err != nil {
		t.Skipf("skipping: %v", ErrNoQEMU)
	}
	_, err := Exec(context.Background(), Spec{Script: "sleep 600\n", Timeout: 12 * time.Second})
	if err == nil || !strings.Contains(err.Error(), "killed after 12s") {
		t.Errorf("Exec of a hanging guest: %v", err)
	}
}
