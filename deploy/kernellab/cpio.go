package kernellab

import (
	"bytes"
	"fmt"
	"io"
	"io/fs"
	"path"
	"sort"
	"strings"
)

// archive is an initramfs in the making: a set of entries keyed by their
// absolute guest path, written as a "newc" cpio archive, the format the kernel
// unpacks into its root file system.
type archive struct {
	entries map[string]entry
}

type entry struct {
	mode fs.FileMode // type bits and permissions
	data []byte      // file contents, or a symlink's target
}

func newArchive() *archive {
	return &archive{entries: map[string]entry{}}
}

// dir adds a directory and its parents.
func (a *archive) dir(p string) {
	p = path.Clean("/" + p)
	for p != "/" {
		if _, ok := a.entries[p]; ok {
			return
		}
		a.entries[p] = entry{mode: fs.ModeDir | 0o755}
		p = path.Dir(p)
	}
}

// file adds a regular file and its parent directories.
func (a *archive) file(p string, perm fs.FileMode, data []byte) {
	p = path.Clean("/" + p)
	a.dir(path.Dir(p))
	a.entries[p] = entry{mode: perm.Perm(), data: data}
}

// symlink adds a symbolic link and its parent directories.
func (a *archive) symlink(p, target string) {
	p = path.Clean("/" + p)
	a.dir(path.Dir(p))
	a.entries[p] = entry{mode: fs.ModeSymlink | 0o777, data: []byte(target)}
}

// has reports whether p is in the archive.
func (a *archive) has(p string) bool {
	_, ok := a.entries[path.Clean("/"+p)]
	return ok
}

const (
	cpioTypeDir     = 0o040000
	cpioTypeFile    = 0o100000
	cpioTypeSymlink = 0o120000
)

// writeTo writes the archive in newc format, parents before children, ending
// with the TRAILER!!! entry.
func (a *archive) writeTo(w io.Writer) (int64, error) {
	names := make([]string, 0, len(a.entries))
	for n := range a.entries {
		names = append(names, n)
	}
	sort.Strings(names) // a parent sorts before its children
	var n int64
	ino := uint32(1)
	for _, name := range names {
		e := a.entries[name]
		mode := uint32(e.mode.Perm())
		switch {
		case e.mode.IsDir():
			mode |= cpioTypeDir
		case e.mode&fs.ModeSymlink != 0:
			mode |= cpioTypeSymlink
		default:
			mode |= cpioTypeFile
		}
		nlink := uint32(1)
		if e.mode.IsDir() {
			nlink = 2
		}
		m, err := writeCPIOEntry(w, strings.TrimPrefix(name, "/"), ino, mode, nlink, e.data)
		n += m
		if err != nil {
			return n, fmt.Errorf("write %s: %w", name, err)
		}
		ino++
	}
	m, err := writeCPIOEntry(w, "TRAILER!!!", 0, 0, 1, nil)
	return n + m, err
}

func writeCPIOEntry(w io.Writer, name string, ino, mode, nlink uint32, data []byte) (int64, error) {
	var b bytes.Buffer
	fmt.Fprintf(&b, "070701%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x",
		ino, mode, 0, 0, nlink, 0, len(data), 0, 0, 0, 0, len(name)+1, 0)
	b.WriteString(name)
	b.WriteByte(0)
	pad4(&b)
	b.Write(data)
	pad4(&b)
	n, err := w.Write(b.Bytes())
	return int64(n), err
}

func pad4(b *bytes.Buffer) {
	for b.Len()%4 != 0 {
		b.WriteByte(0)
	}
}
