package kernellab

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
)

// EnvInside is set to "1" in the guest's environment; [Inside] reports it.
const EnvInside = "SARU_KERNELLAB"

// Inside reports whether this process runs inside the kernel lab's guest.
func Inside() bool { return os.Getenv(EnvInside) == "1" }

// File is an extra file or directory to put into the guest.
type File struct {
	Guest string      // absolute path in the guest
	Host  string      // host file or directory to copy; or
	Data  []byte      // contents, when Host is empty
	Mode  fs.FileMode // permissions for Data; default 0o755
}

// Spec describes one boot of the lab.
type Spec struct {
	// Script is run by /bin/sh in the guest, as root, in /kernellab/work; its
	// exit status is the result's.
	Script string
	// Env is added to the guest script's environment ("KEY=value").
	Env []string
	// Files are put into the guest before it boots.
	Files []File
	// Modules are loaded besides DefaultModules (with their dependencies).
	Modules []string
	// HostBinaries are copied with their shared libraries besides the
	// DefaultHostBinaries the host has.
	HostBinaries []string
	// Timeout kills the VM; default 10 minutes.
	Timeout time.Duration
	// MemoryMB is the guest's memory; default 1024.
	MemoryMB int
	// CPUs is the guest's CPU count; default 2.
	CPUs int
	// Output receives the guest console, as written, without the lab's own
	// marker lines. May be nil.
	Output io.Writer
	// CacheDir holds downloaded kernels; default DefaultCacheDir().
	CacheDir string
}

// Result is the outcome of a boot.
type Result struct {
	// ExitCode is the guest script's exit status.
	ExitCode int
	// Kernel is the kernel release that ran.
	Kernel string
	// Prepare is the time spent fetching the kernel and building the initramfs.
	Prepare time.Duration
	// BootToReady is from starting QEMU to the guest being ready to run the
	// script (modules loaded).
	BootToReady time.Duration
	// GuestUptimeAtReady is the guest's own uptime when it became ready.
	GuestUptimeAtReady time.Duration
	// Total is from starting QEMU to its exit.
	Total time.Duration
}

// ErrNoQEMU is returned when qemu-system-x86_64 is not installed.
var ErrNoQEMU = errors.New("qemu-system-x86_64 not found in PATH (install qemu-system-x86)")

// qemuBinary is the emulator the lab boots.
const qemuBinary = "qemu-system-x86_64"

// Exec boots the lab, runs spec.Script in the guest and returns its exit
// status. An error means the lab could not run the script to completion:
// it could not be prepared, the guest died or the timeout struck.
func Exec(ctx context.Context, spec Spec) (*Result, error) {
	qemu, err := exec.LookPath(qemuBinary)
	if err != nil {
		return nil, ErrNoQEMU
	}
	if spec.Timeout <= 0 {
		spec.Timeout = 10 * time.Minute
	}
	if spec.MemoryMB <= 0 {
		spec.MemoryMB = 1024
	}
	if spec.CPUs <= 0 {
		spec.CPUs = 2
	}
	if spec.CacheDir == "" {
		if spec.CacheDir, err = DefaultCacheDir(); err != nil {
			return nil, err
		}
	}
	ctx, cancel := context.WithTimeout(ctx, spec.Timeout)
	defer cancel()

	start := time.Now()
	k, err := FetchKernel(ctx, spec.CacheDir)
	if err != nil {
		return nil, fmt.Errorf("kernel lab: %w", err)
	}
	tmp, err := os.MkdirTemp("", "kernellab-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	initrd := filepath.Join(tmp, "initramfs.cpio")
	if err := buildInitramfs(ctx, k, spec, initrd); err != nil {
		return nil, fmt.Errorf("kernel lab: initramfs: %w", err)
	}
	res := &Result{Kernel: k.Release, Prepare: time.Since(start)}

	image := k.Image
	if k.VMLinux != "" {
		image = k.VMLinux
	}
	args := []string{
		"-m", strconv.Itoa(spec.MemoryMB), "-smp", strconv.Itoa(spec.CPUs),
		"-nographic", "-no-reboot", "-nodefaults", "-no-user-config",
		"-serial", "stdio", "-monitor", "none",
		"-kernel", image, "-initrd", initrd,
		// The emulated HPET traps on every clock read: clock on the TSC,
		// with the periodic tick. A soft lockup panics, which ends the run
		// at once instead of at its timeout.
		"-append", "console=ttyS0 quiet loglevel=3 panic=-1 rdinit=/init mitigations=off random.trust_cpu=on tsc=reliable clocksource=tsc highres=off nohz=off softlockup_panic=1",
	}
	cmd := exec.CommandContext(ctx, qemu, args...)
	cmd.Stdin = nil
	cmd.WaitDelay = 5 * time.Second
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	boot := time.Now()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("kernel lab: start %s: %w", qemu, err)
	}
	exit, ready, uptime, scanErr := scanConsole(stdout, spec.Output, func() time.Duration { return time.Since(boot) })
	waitErr := cmd.Wait()
	res.Total = time.Since(boot)
	res.BootToReady = ready
	res.GuestUptimeAtReady = uptime
	switch {
	case ctx.Err() != nil:
		return res, fmt.Errorf("kernel lab: guest killed after %v: %w", spec.Timeout, ctx.Err())
	case scanErr != nil:
		return res, fmt.Errorf("kernel lab: reading console: %w", scanErr)
	case exit < 0:
		return res, fmt.Errorf("kernel lab: guest stopped without reporting an exit status (qemu: %v; %s)", waitErr, strings.TrimSpace(stderr.String()))
	}
	res.ExitCode = exit
	return res, nil
}

// scanConsole copies the guest console to out, without the lab's marker
// lines and carriage returns, and returns the exit status reported (-1 if
// none), when the guest became ready and its uptime then.
func scanConsole(r io.Reader, out io.Writer, since func() time.Duration) (exit int, ready, uptime time.Duration, err error) {
	exit = -1
	br := bufio.NewReaderSize(r, 64<<10)
	for {
		line, rerr := br.ReadString('\n')
		if line != "" {
			clean := strings.ReplaceAll(line, "\r", "")
			if i := strings.Index(clean, markerReady); i >= 0 {
				ready = since()
				if f, perr := strconv.ParseFloat(strings.TrimSpace(clean[i+len(markerReady):]), 64); perr == nil {
					uptime = time.Duration(f * float64(time.Second))
				}
				clean = clean[:i]
			} else if i := strings.Index(clean, markerExit); i >= 0 {
				if n, perr := strconv.Atoi(strings.TrimSpace(clean[i+len(markerExit):])); perr == nil {
					exit = n
				}
				clean = clean[:i]
			}
			if clean != "" && out != nil {
				if !strings.HasSuffix(clean, "\n") && rerr == nil {
					clean += "\n"
				}
				if _, werr := io.WriteString(out, clean); werr != nil {
					return exit, ready, uptime, werr
				}
			}
		}
		if rerr == io.EOF {
			return exit, ready, uptime, nil
		}
		if rerr != nil {
			if errors.Is(rerr, os.ErrClosed) {
				return exit, ready, uptime, nil
			}
			return exit, ready, uptime, rerr
		}
	}
}

// buildInitramfs writes the guest's root file system to dst.
func buildInitramfs(ctx context.Context, k *Kernel, spec Spec, dst string) error {
	a := newArchive()
	for _, d := range []string{"/proc", "/sys", "/dev", "/tmp", "/run", "/root", "/etc", "/kernellab/work", "/usr/local/bin"} {
		a.dir(d)
	}
	a.symlink("/var/run", "/run")
	if err := addBusybox(ctx, a); err != nil {
		return err
	}
	a.file("/init", 0o755, []byte(initScript))
	a.file("/etc/passwd", 0o644, []byte("root:x:0:0:root:/root:/bin/sh\n"))
	a.file("/etc/group", 0o644, []byte("root:x:0:\n"))
	a.file("/etc/hosts", 0o644, []byte("127.0.0.1 localhost kernellab\n::1 localhost\n"))
	a.file("/etc/nsswitch.conf", 0o644, []byte("hosts: files\n"))
	if _, err := addModules(a, k, append(DefaultModules(), spec.Modules...)); err != nil {
		return err
	}
	bins := spec.HostBinaries
	for _, b := range DefaultHostBinaries() {
		if _, err := os.Stat(b); err == nil {
			bins = append(bins, b)
		}
	}
	for _, b := range bins {
		if err := addHostBinary(ctx, a, b); err != nil {
			return err
		}
	}
	for _, f := range spec.Files {
		if !path.IsAbs(f.Guest) {
			return fmt.Errorf("guest path %q of an extra file is not absolute", f.Guest)
		}
		if f.Host != "" {
			if err := addHostTree(a, f.Guest, f.Host); err != nil {
				return fmt.Errorf("extra file %s: %w", f.Guest, err)
			}
			continue
		}
		mode := f.Mode
		if mode == 0 {
			mode = 0o755
		}
		a.file(f.Guest, mode, f.Data)
	}
	env := append([]string{EnvInside + "=1"}, spec.Env...)
	sort.Strings(env[1:])
	var envScript strings.Builder
	for _, kv := range env {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return fmt.Errorf("guest environment entry %q is not KEY=value", kv)
		}
		fmt.Fprintf(&envScript, "export %s=%s\n", k, shellQuote(v))
	}
	a.file("/kernellab/env", 0o644, []byte(envScript.String()))
	a.file("/kernellab/run", 0o755, []byte(spec.Script))
	f, err := os.Create(dst)
	if err != nil {
		return err
	}
	bw := bufio.NewWriterSize(f, 1<<20)
	if _, err := a.writeTo(bw); err != nil {
		f.Close()
		return err
	}
	if err := bw.Flush(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// shellQuote quotes s for a POSIX shell.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
