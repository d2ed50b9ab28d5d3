// Command sarulab is saru's end-to-end lab: a director mesh in network
// namespaces with real traffic, a guided tour and measured scenarios (see
// package deploy/lab).
//
//	sarulab [--mode dr|nat] [--once]          the guided tour (make lab)
//	sarulab scenarios [--mode dr|nat] [--only NAME] [--streams N]
//	sarulab cleanup                           remove namespaces of killed runs
//
// It needs root. When the kernel has no IPVS it runs itself inside the
// kernel lab (Debian's kernel under QEMU), where --once is the default.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/saru-lb/saru/deploy/lab"
)

func main() {
	code, err := run(os.Args[1:])
	if err != nil {
		fmt.Fprintln(os.Stderr, "sarulab:", err)
		if code == 0 {
			code = 1
		}
	}
	os.Exit(code)
}

type common struct {
	mode, binDir, grpcurl, kernelLab, gossip string
	inKernelLab                              bool
}

func (c *common) register(fs *flag.FlagSet) {
	fs.StringVar(&c.mode, "mode", "dr", "LVS forwarding method: dr or nat")
	fs.StringVar(&c.binDir, "bin-dir", "", "directory holding saru, syncd and saructl (default: this program's directory, then $PATH)")
	fs.StringVar(&c.grpcurl, "grpcurl", "", "grpcurl binary (default: $(go env GOPATH)/bin/grpcurl, then $PATH)")
	fs.StringVar(&c.kernelLab, "kernel-lab", "auto", "run inside the QEMU kernel lab: auto (when this kernel has no IPVS), always or never")
	fs.BoolVar(&c.inKernelLab, "in-kernel-lab", false, "set by sarulab itself inside the kernel lab's guest")
	fs.StringVar(&c.gossip, "gossip", "", "saru's memberlist timings as interval/timeout/suspicion-mult, e.g. 500ms/400ms/5 for a busy host (default: saru's own, 100ms/50ms/2)")
}

func (c *common) fill() error {
	if _, err := lab.ParseMode(c.mode); err != nil {
		return fmt.Errorf("--mode: %w", err)
	}
	switch c.kernelLab {
	case "auto", "always", "never":
	default:
		return fmt.Errorf("--kernel-lab %q: want auto, always or never", c.kernelLab)
	}
	if c.binDir == "" {
		if exe, err := os.Executable(); err == nil {
			c.binDir = filepath.Dir(exe)
		}
	}
	if c.grpcurl == "" {
		gopath := os.Getenv("GOPATH")
		if gopath == "" {
			if out, err := exec.Command("go", "env", "GOPATH").Output(); err == nil {
				gopath = strings.TrimSpace(string(out))
			}
		}
		if gopath == "" {
			gopath = filepath.Join(os.Getenv("HOME"), "go")
		}
		if p := filepath.Join(gopath, "bin", "grpcurl"); fileExists(p) {
			c.grpcurl = p
		} else if p, err := exec.LookPath("grpcurl"); err == nil {
			c.grpcurl = p
		}
	}
	if c.gossip != "" {
		// Read by deploy/lab, and passed on into the kernel lab's guest.
		os.Setenv("SARULAB_GOSSIP", c.gossip)
	}
	if c.grpcurl != "" {
		// deploy/lab finds grpcurl next to the other binaries or on $PATH.
		os.Setenv("PATH", filepath.Dir(c.grpcurl)+string(os.PathListSeparator)+os.Getenv("PATH"))
	}
	return nil
}

func fileExists(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir()
}

// needKernelLab decides whether to re-run inside the kernel lab.
func (c *common) needKernelLab(ctx context.Context) bool {
	if c.inKernelLab {
		return false
	}
	switch c.kernelLab {
	case "always":
		return true
	case "never":
		return false
	}
	return !lab.HasIPVS(ctx)
}

func run(args []string) (int, error) {
	if os.Geteuid() != 0 {
		return 1, errors.New("needs root (network namespaces, IPVS, nftables): run it as root, e.g. sudo make lab")
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if gone := lab.Cleanup(ctx); len(gone) > 0 {
		fmt.Fprintf(os.Stderr, "sarulab: removed %d namespaces left by an earlier run that was killed\n", len(gone))
	}
	cmd := ""
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "", "tour":
		return tour(ctx, args)
	case "scenarios":
		return scenarios(ctx, args)
	case "cleanup":
		return 0, nil
	}
	return 2, fmt.Errorf("unknown command %q: want tour, scenarios or cleanup", cmd)
}

func inLab(ctx context.Context, c common, args []string) (int, error) {
	code, err := lab.RunInKernelLab(ctx, lab.KernelLabOptions{BinDir: c.binDir, Grpcurl: c.grpcurl, Args: args, Out: os.Stdout})
	if ctx.Err() != nil {
		fmt.Println("\ninterrupted: the kernel lab's VM is stopped, and the mesh with it (everything ran inside it).")
		return 130, nil
	}
	if err != nil {
		return 1, err
	}
	if code != 0 {
		return code, fmt.Errorf("sarulab in the kernel lab exited with status %d", code)
	}
	return 0, nil
}

func tour(ctx context.Context, args []string) (int, error) {
	var c common
	fs := flag.NewFlagSet("sarulab", flag.ContinueOnError)
	c.register(fs)
	once := fs.Bool("once", false, "exit after the tour (the default inside the kernel lab)")
	streams := fs.Int("streams", 300, "long-lived connections during the tour")
	if err := fs.Parse(args); err != nil {
		return 2, err
	}
	if err := c.fill(); err != nil {
		return 2, err
	}
	onceSet := false
	fs.Visit(func(f *flag.Flag) { onceSet = onceSet || f.Name == "once" })
	if c.needKernelLab(ctx) {
		if !onceSet {
			*once = true
		}
		fmt.Printf("This kernel has no IPVS, so the lab runs inside the kernel lab: Debian's stock kernel under QEMU\n" +
			"(software emulation, so everything is slower than on real hardware). Here --once is the default:\n" +
			"the VM has no shell to explore from, so the tour ends and everything is torn down. Pass --once=false\n" +
			"to keep the mesh up and watch `saructl status` until Ctrl-C.\n\n")
		return inLab(ctx, c, []string{"tour", "--mode", c.mode, fmt.Sprintf("--once=%v", *once), fmt.Sprintf("--streams=%d", *streams)})
	}
	err := lab.Tour(ctx, lab.TourOptions{Mode: lab.Mode(c.mode), BinDir: c.binDir, Out: os.Stdout, Streams: *streams, Once: *once, InKernelLab: c.inKernelLab})
	if err != nil {
		return 1, err
	}
	return 0, nil
}

func scenarios(ctx context.Context, args []string) (int, error) {
	var c common
	fs := flag.NewFlagSet("sarulab scenarios", flag.ContinueOnError)
	c.register(fs)
	only := fs.String("only", "", "run only this scenario: "+strings.Join(lab.ScenarioNames, ", "))
	streams := fs.Int("streams", 0, "long-lived connections (default 500 for crash and lossy-sync, 200 for the others)")
	noSync := fs.Bool("no-sync", false, "run without syncd: the baseline that shows what connection sync is for")
	if err := fs.Parse(args); err != nil {
		return 2, err
	}
	if err := c.fill(); err != nil {
		return 2, err
	}
	names := lab.ScenarioNames
	if *only != "" {
		names = strings.Split(*only, ",")
	}
	for _, n := range names {
		known := false
		for _, k := range lab.ScenarioNames {
			known = known || k == n
		}
		if !known {
			return 2, fmt.Errorf("--only %q: want one of %s", n, strings.Join(lab.ScenarioNames, ", "))
		}
	}
	if c.needKernelLab(ctx) {
		fmt.Fprintln(os.Stderr, "sarulab: this kernel has no IPVS; running the scenarios inside the kernel lab (QEMU)")
		return inLab(ctx, c, []string{"scenarios", "--mode", c.mode, "--only", strings.Join(names, ","), fmt.Sprintf("--streams=%d", *streams), fmt.Sprintf("--no-sync=%v", *noSync)})
	}
	failed := 0
	for _, n := range names {
		fmt.Fprintf(os.Stderr, "== scenario %s (%s)\n", n, c.mode)
		r := lab.RunScenario(ctx, n, lab.ScenarioOptions{Mode: lab.Mode(c.mode), BinDir: c.binDir, Out: os.Stderr, Streams: *streams, NoSync: *noSync})
		fmt.Println(r.JSON())
		if r.Error != "" || r.Lost > 0 {
			failed++
		}
		if ctx.Err() != nil {
			break
		}
	}
	if failed > 0 {
		return 1, fmt.Errorf("%d of %d scenarios failed or lost connections", failed, len(names))
	}
	return 0, nil
}
