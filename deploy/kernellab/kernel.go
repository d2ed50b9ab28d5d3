package kernellab

import (
	"bytes"
	"context"
	"debug/elf"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
)

// Kernel is an unpacked Debian kernel package.
type Kernel struct {
	Package string // e.g. linux-image-6.1.0-56-amd64
	Release string // uname -r, e.g. 6.1.0-56-amd64
	Image   string // path of vmlinuz
	// VMLinux is the uncompressed kernel with a PVH entry point, which QEMU
	// boots directly (no firmware, no self-decompression: seconds faster
	// under software emulation); empty when it could not be extracted.
	VMLinux string
	Modules string // path of lib/modules/<release>
}

// metaPackage is the Debian package that depends on the current kernel.
const metaPackage = "linux-image-amd64"

var dependsRE = regexp.MustCompile(`(?m)^\s*Depends:\s*(linux-image-[0-9][^\s]*-amd64)\s*$`)

// kernelPackage asks apt which versioned kernel package linux-image-amd64
// depends on.
func kernelPackage(ctx context.Context) (string, error) {
	out, err := exec.CommandContext(ctx, "apt-cache", "depends", metaPackage).Output()
	if err != nil {
		return "", fmt.Errorf("apt-cache depends %s: %w%s", metaPackage, err, stderrOf(err))
	}
	m := dependsRE.FindSubmatch(out)
	if m == nil {
		return "", fmt.Errorf("apt-cache depends %s: no versioned linux-image dependency in %q", metaPackage, out)
	}
	return string(m[1]), nil
}

func stderrOf(err error) string {
	var ee *exec.ExitError
	if errors.As(err, &ee) && len(ee.Stderr) > 0 {
		return ": " + strings.TrimSpace(string(ee.Stderr))
	}
	return ""
}

// FetchKernel returns the Debian kernel cached under cacheDir, downloading and
// unpacking it first if needed. Concurrent callers (parallel test packages)
// serialise on a lock file; the unpacked tree appears atomically.
func FetchKernel(ctx context.Context, cacheDir string) (*Kernel, error) {
	pkg, err := kernelPackage(ctx)
	if err != nil {
		// Offline or not Debian: fall back to any kernel already cached.
		if k, cerr := cachedKernel(cacheDir, ""); cerr == nil {
			return k, nil
		}
		return nil, err
	}
	if k, err := cachedKernel(cacheDir, pkg); err == nil && k.VMLinux != "" {
		return k, nil
	}
	if err := os.MkdirAll(cacheDir, 0o755); err != nil {
		return nil, fmt.Errorf("kernel cache: %w", err)
	}
	unlock, err := lockFile(filepath.Join(cacheDir, ".lock"))
	if err != nil {
		return nil, err
	}
	defer unlock()
	if k, err := cachedKernel(cacheDir, pkg); err == nil {
		if k.VMLinux == "" && !fileExists(filepath.Join(cacheDir, pkg, "vmlinux.none")) {
			return withVMLinux(ctx, k, filepath.Join(cacheDir, pkg))
		}
		return k, nil // another process fetched it while we waited
	}
	tmp, err := os.MkdirTemp(cacheDir, ".fetch-")
	if err != nil {
		return nil, fmt.Errorf("kernel cache: %w", err)
	}
	defer os.RemoveAll(tmp)
	dl := exec.CommandContext(ctx, "apt-get", "download", "-q", pkg)
	dl.Dir = tmp
	if out, err := dl.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("apt-get download %s: %w: %s", pkg, err, bytes.TrimSpace(out))
	}
	debs, _ := filepath.Glob(filepath.Join(tmp, pkg+"_*.deb"))
	if len(debs) != 1 {
		return nil, fmt.Errorf("apt-get download %s: expected one .deb, found %d", pkg, len(debs))
	}
	tree := filepath.Join(tmp, "tree")
	if out, err := exec.CommandContext(ctx, "dpkg-deb", "-x", debs[0], tree).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("dpkg-deb -x %s: %w: %s", filepath.Base(debs[0]), err, bytes.TrimSpace(out))
	}
	if err := os.WriteFile(filepath.Join(tree, "deb"), []byte(filepath.Base(debs[0])+"\n"), 0o644); err != nil {
		return nil, err
	}
	if err := os.Rename(tree, filepath.Join(cacheDir, pkg)); err != nil {
		return nil, fmt.Errorf("kernel cache: %w", err)
	}
	k, err := cachedKernel(cacheDir, pkg)
	if err != nil {
		return nil, err
	}
	return withVMLinux(ctx, k, filepath.Join(cacheDir, pkg))
}

// withVMLinux extracts the uncompressed kernel next to vmlinuz (the caller
// holds the cache lock). When that is impossible the lab boots vmlinuz, and
// a marker file stops later runs from trying again.
func withVMLinux(ctx context.Context, k *Kernel, dir string) (*Kernel, error) {
	data, err := os.ReadFile(k.Image)
	if err != nil {
		return nil, err
	}
	vmlinux, err := extractVMLinux(ctx, data)
	if err != nil {
		os.WriteFile(filepath.Join(dir, "vmlinux.none"), []byte(err.Error()+"\n"), 0o644)
		return k, nil
	}
	tmp := filepath.Join(dir, ".vmlinux.tmp")
	if err := os.WriteFile(tmp, vmlinux, 0o644); err != nil {
		return nil, err
	}
	if err := os.Rename(tmp, filepath.Join(dir, "vmlinux")); err != nil {
		return nil, err
	}
	k.VMLinux = filepath.Join(dir, "vmlinux")
	return k, nil
}

// extractVMLinux finds the xz stream in a bzImage (Debian compresses its
// kernels with xz) and decompresses it with the xz tool, accepting the result
// only if it is an ELF image with a PVH entry note.
func extractVMLinux(ctx context.Context, bzImage []byte) ([]byte, error) {
	magic := []byte("\xfd7zXZ\x00")
	for off := 0; ; {
		i := bytes.Index(bzImage[off:], magic)
		if i < 0 {
			return nil, errors.New("no xz-compressed kernel found in the image")
		}
		off += i
		cmd := exec.CommandContext(ctx, "xz", "-dc")
		cmd.Stdin = bytes.NewReader(bzImage[off:])
		out, _ := cmd.Output() // trailing data after the stream makes xz complain
		if hasPVHNote(out) {
			return out, nil
		}
		off++
	}
}

// hasPVHNote reports whether an ELF kernel carries XEN_ELFNOTE_PHYS32_ENTRY,
// the entry point QEMU's PVH boot uses.
func hasPVHNote(image []byte) bool {
	f, err := elf.NewFile(bytes.NewReader(image))
	if err != nil {
		return false
	}
	defer f.Close()
	const xenElfNotePhys32Entry = 18
	for _, p := range f.Progs {
		if p.Type != elf.PT_NOTE {
			continue
		}
		b, err := io.ReadAll(p.Open())
		if err != nil {
			continue
		}
		for len(b) >= 12 {
			namesz, descsz, typ := binary.LittleEndian.Uint32(b), binary.LittleEndian.Uint32(b[4:]), binary.LittleEndian.Uint32(b[8:])
			nameEnd := 12 + int(namesz+3)&^3
			end := nameEnd + int(descsz+3)&^3
			if nameEnd > len(b) || end > len(b) {
				break
			}
			if typ == xenElfNotePhys32Entry && bytes.HasPrefix(b[12:], []byte("Xen")) {
				return true
			}
			b = b[end:]
		}
	}
	return false
}

// cachedKernel returns the unpacked kernel package pkg from the cache, or,
// with pkg empty, the newest one cached.
func cachedKernel(cacheDir, pkg string) (*Kernel, error) {
	if pkg == "" {
		m, _ := filepath.Glob(filepath.Join(cacheDir, "linux-image-*-amd64"))
		if len(m) == 0 {
			return nil, fmt.Errorf("no kernel cached in %s", cacheDir)
		}
		pkg = filepath.Base(m[len(m)-1])
	}
	dir := filepath.Join(cacheDir, pkg)
	images, _ := filepath.Glob(filepath.Join(dir, "boot", "vmlinuz-*"))
	if len(images) != 1 {
		return nil, fmt.Errorf("kernel %s not cached in %s", pkg, cacheDir)
	}
	release := strings.TrimPrefix(filepath.Base(images[0]), "vmlinuz-")
	mods := filepath.Join(dir, "lib", "modules", release)
	if _, err := os.Stat(mods); err != nil {
		return nil, fmt.Errorf("kernel %s: modules: %w", pkg, err)
	}
	k := &Kernel{Package: pkg, Release: release, Image: images[0], Modules: mods}
	if v := filepath.Join(dir, "vmlinux"); fileExists(v) {
		k.VMLinux = v
	}
	return k, nil
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// lockFile takes an exclusive flock on path, returning the release function.
func lockFile(path string) (func(), error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	return func() {
		syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}, nil
}

// DefaultCacheDir is build/kernellab under the root of the Go module that
// contains the working directory, or under the working directory itself when
// there is none. The environment variable SARU_KERNELLAB_CACHE overrides it.
func DefaultCacheDir() (string, error) {
	if d := os.Getenv("SARU_KERNELLAB_CACHE"); d != "" {
		return d, nil
	}
	wd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for d := wd; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return filepath.Join(d, "build", "kernellab"), nil
		}
		if filepath.Dir(d) == d {
			return filepath.Join(wd, "build", "kernellab"), nil
		}
	}
}
