package lab

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/saru-lb/saru/deploy/kernellab"
)

// KernelLabOptions configure a run of sarulab inside the kernel lab.
type KernelLabOptions struct {
	// Sarulab is the sarulab binary to run in the guest (default: this
	// executable).
	Sarulab string
	// BinDir holds saru, syncd and saructl.
	BinDir string
	// Grpcurl is the grpcurl binary; empty: not copied.
	Grpcurl string
	// Args are sarulab's arguments in the guest.
	Args []string
	// Out receives the guest's console.
	Out     io.Writer
	Timeout time.Duration
}

// RunInKernelLab boots Debian's kernel with deploy/kernellab, copies the
// binaries into the guest (with their shared libraries, if any) and runs
// sarulab there with the given arguments, streaming its output. It returns
// the guest's exit status.
func RunInKernelLab(ctx context.Context, o KernelLabOptions) (int, error) {
	if o.Sarulab == "" {
		exe, err := os.Executable()
		if err != nil {
			return 0, err
		}
		o.Sarulab = exe
	}
	if o.Timeout == 0 {
		o.Timeout = 60 * time.Minute
	}
	var out io.Writer
	if o.Out != nil {
		lf := &consoleFilter{w: o.Out}
		defer lf.flush()
		out = lf
	}
	spec := kernellab.Spec{Timeout: o.Timeout, MemoryMB: 2048, CPUs: 2, Output: out}
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "SARULAB_") {
			spec.Env = append(spec.Env, kv)
		}
	}
	const guestBin = "/usr/local/bin"
	for _, name := range []string{"saru", "syncd", "saructl"} {
		p, err := findBinary(o.BinDir, name)
		if err != nil {
			// The guest's scenarios report what is missing.
			if o.Out != nil {
				fmt.Fprintf(o.Out, "sarulab: warning: %v\n", err)
			}
			continue
		}
		spec.Files = append(spec.Files, kernellab.File{Guest: guestBin + "/" + name, Host: p})
	}
	spec.Files = append(spec.Files, kernellab.File{Guest: guestBin + "/sarulab", Host: o.Sarulab})
	args := append([]string{guestBin + "/sarulab"}, o.Args...)
	args = append(args, "--bin-dir", guestBin, "--in-kernel-lab")
	if o.Grpcurl != "" {
		// grpcurl may be dynamically linked: copy it with its libraries.
		spec.HostBinaries = append(spec.HostBinaries, o.Grpcurl)
		args = append(args, "--grpcurl", o.Grpcurl)
	}
	if _, err := os.Stat("/usr/sbin/bridge"); err == nil {
		spec.HostBinaries = append(spec.HostBinaries, "/usr/sbin/bridge")
	}
	script := "ulimit -n 65536\nexec"
	for _, a := range args {
		script += " " + shellWord(a)
	}
	spec.Script = script + "\n"
	res, err := kernellab.Exec(ctx, spec)
	if res != nil && o.Out != nil {
		fmt.Fprintf(o.Out, "[kernel lab: kernel %s, prepared in %v, booted in %v, ran %v]\n", res.Kernel,
			res.Prepare.Round(time.Millisecond), res.BootToReady.Round(time.Millisecond), res.Total.Round(time.Second))
	}
	if err != nil {
		return 0, err
	}
	return res.ExitCode, nil
}

func shellWord(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// consoleFilter passes the guest console through line by line, without
// the firmware's and the kernel's own chatter (terminal control sequences,
// SeaBIOS banner, power-down message).
type consoleFilter struct {
	w       io.Writer
	partial []byte
}

func (f *consoleFilter) Write(p []byte) (int, error) {
	f.partial = append(f.partial, p...)
	for {
		i := bytes.IndexByte(f.partial, '\n')
		if i < 0 {
			return len(p), nil
		}
		line := string(f.partial[:i+1])
		f.partial = f.partial[i+1:]
		if consoleNoise(line) {
			continue
		}
		if _, err := io.WriteString(f.w, line); err != nil {
			return len(p), err
		}
	}
}

func (f *consoleFilter) flush() {
	if len(f.partial) > 0 && !consoleNoise(string(f.partial)) {
		f.w.Write(f.partial)
	}
	f.partial = nil
}

// consoleNoise reports lines that are not the guest program's output.
func consoleNoise(line string) bool {
	switch {
	case strings.Contains(line, "SeaBIOS"), strings.HasPrefix(line, "Booting from ROM"),
		strings.Contains(line, "reboot: Power down"), strings.Contains(line, "\x1b["):
		return true
	}
	return false
}
