package kernellab

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
)

// DefaultHostBinaries are the host programs copied into every guest that has
// them, with their shared libraries: independent witnesses of the kernel's
// state (ipvsadm, nft, conntrack) and an ip that knows network namespaces.
func DefaultHostBinaries() []string {
	return []string{"/usr/sbin/ipvsadm", "/usr/sbin/ip", "/usr/sbin/nft", "/usr/sbin/conntrack"}
}

// initScript is the guest's PID 1. It prepares the system, loads the modules
// listed in /etc/kernellab/modules, runs /kernellab/run and reports its exit
// status on the console before powering off.
const initScript = `#!/bin/sh
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root TMPDIR=/tmp
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /dev/shm
mount -t tmpfs tmpfs /tmp
mount -t tmpfs tmpfs /run
mkdir -p /run/netns /var/lib
echo /sbin/modprobe > /proc/sys/kernel/modprobe
for m in $(cat /etc/kernellab/modules); do
	modprobe "$m" || echo "kernellab: modprobe $m failed"
done
ip link set lo up
hostname kernellab
read up idle < /proc/uptime
echo "` + markerReady + `$up"
. /kernellab/env
cd /kernellab/work
/bin/sh /kernellab/run
rc=$?
echo "` + markerExit + `$rc"
poweroff -f
`

const (
	markerReady = "SARU-KERNELLAB-READY uptime="
	markerExit  = "SARU-KERNELLAB-EXIT="
)

// addBusybox puts busybox at /bin/busybox with a link for every applet.
func addBusybox(ctx context.Context, a *archive) error {
	busyboxPaths := []string{"/bin/busybox", "/usr/bin/busybox"}
	var bb string
	for _, p := range busyboxPaths {
		if _, err := os.Stat(p); err == nil {
			bb = p
			break
		}
	}
	if bb == "" {
		return fmt.Errorf("busybox not found in %v (install busybox-static)", busyboxPaths)
	}
	data, err := os.ReadFile(bb)
	if err != nil {
		return err
	}
	if !isStatic(data) {
		return fmt.Errorf("%s is not statically linked (install busybox-static)", bb)
	}
	a.file("/bin/busybox", 0o755, data)
	out, err := exec.CommandContext(ctx, bb, "--list-full").Output()
	if err != nil {
		return fmt.Errorf("busybox --list-full: %w", err)
	}
	for _, applet := range strings.Fields(string(out)) {
		p := "/" + applet
		if !a.has(p) {
			a.symlink(p, "/bin/busybox")
		}
	}
	return nil
}

// isStatic reports whether an ELF executable has no program interpreter.
func isStatic(elfData []byte) bool {
	return !bytes.Contains(elfData[:min(len(elfData), 4096)], []byte("/lib64/ld-linux"))
}

// addHostBinary copies a host executable and the shared libraries ldd finds
// for it to the same paths in the guest.
func addHostBinary(ctx context.Context, a *archive, bin string) error {
	data, err := os.ReadFile(bin)
	if err != nil {
		return fmt.Errorf("host binary: %w", err)
	}
	a.file(bin, 0o755, data)
	libs, err := sharedLibs(ctx, bin)
	if err != nil {
		return err
	}
	for _, lib := range libs {
		if a.has(lib) {
			continue
		}
		real, err := filepath.EvalSymlinks(lib)
		if err != nil {
			return fmt.Errorf("library %s of %s: %w", lib, bin, err)
		}
		d, err := os.ReadFile(real)
		if err != nil {
			return fmt.Errorf("library %s of %s: %w", lib, bin, err)
		}
		a.file(lib, 0o755, d)
	}
	return nil
}

// sharedLibs lists the absolute paths of the libraries and loader ldd
// reports for bin; a static binary has none.
func sharedLibs(ctx context.Context, bin string) ([]string, error) {
	out, err := exec.CommandContext(ctx, "ldd", bin).CombinedOutput()
	if err != nil {
		if bytes.Contains(out, []byte("not a dynamic executable")) {
			return nil, nil
		}
		return nil, fmt.Errorf("ldd %s: %w: %s", bin, err, bytes.TrimSpace(out))
	}
	return parseLdd(out)
}

// parseLdd extracts library paths from ldd output.
func parseLdd(out []byte) ([]string, error) {
	var libs []string
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "linux-vdso") || strings.HasPrefix(line, "statically linked") {
			continue
		}
		if strings.Contains(line, "=> not found") {
			return nil, fmt.Errorf("missing shared library: %s", line)
		}
		var p string
		if _, after, ok := strings.Cut(line, "=> "); ok {
			p = strings.Fields(after)[0]
		} else {
			p = strings.Fields(line)[0]
		}
		if path.IsAbs(p) {
			libs = append(libs, p)
		}
	}
	return libs, sc.Err()
}

// addHostTree copies a host file, or a directory recursively, to guest path g.
func addHostTree(a *archive, g, host string) error {
	return filepath.WalkDir(host, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(host, p)
		if err != nil {
			return err
		}
		gp := path.Join(g, filepath.ToSlash(rel))
		switch {
		case d.IsDir():
			a.dir(gp)
		case d.Type()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			a.symlink(gp, target)
		default:
			info, err := d.Info()
			if err != nil {
				return err
			}
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			a.file(gp, info.Mode().Perm(), data)
		}
		return nil
	})
}

// addModules adds the resolved modules, modules.dep and the load list.
func addModules(a *archive, k *Kernel, requested []string) ([]resolvedModule, error) {
	tree, err := loadModuleTree(k.Modules)
	if err != nil {
		return nil, err
	}
	mods, err := tree.resolve(requested)
	if err != nil {
		return nil, fmt.Errorf("kernel %s: %w", k.Release, err)
	}
	base := "/lib/modules/" + k.Release
	for _, m := range mods {
		data, err := os.ReadFile(filepath.Join(k.Modules, m.path))
		if err != nil {
			return nil, err
		}
		a.file(path.Join(base, filepath.ToSlash(m.path)), 0o644, data)
	}
	for _, f := range []string{"modules.builtin", "modules.order", "modules.builtin.modinfo"} {
		if data, err := os.ReadFile(filepath.Join(k.Modules, f)); err == nil {
			a.file(path.Join(base, f), 0o644, data)
		}
	}
	a.file(path.Join(base, "modules.dep"), 0o644, []byte(modulesDep(mods)))
	var list strings.Builder
	for _, m := range mods {
		list.WriteString(m.name + "\n")
	}
	a.file("/etc/kernellab/modules", 0o644, []byte(list.String()))
	return mods, nil
}
