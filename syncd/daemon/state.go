package daemon

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/saru-lb/saru/syncd/mesh"
)

// incarnationFile, in the state directory, holds the incarnation of the
// latest run.
const incarnationFile = "incarnation"

// nextIncarnation reads the incarnation the last run kept in dir, and
// records and returns the next one (mesh.NextIncarnation). It is written
// before the first packet leaves, atomically and readable by syncd alone,
// so that a crash leaves either the old or the new value: never one a
// run already used.
func nextIncarnation(dir string, wall time.Time) (uint64, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return 0, fmt.Errorf("state_dir: %w", err)
	}
	path := filepath.Join(dir, incarnationFile)
	var last uint64
	data, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return 0, fmt.Errorf("state_dir: %w", err)
	default:
		if last, err = strconv.ParseUint(strings.TrimSpace(string(data)), 10, 64); err != nil {
			return 0, fmt.Errorf("state_dir: %s: %w", path, err)
		}
	}
	inc := mesh.NextIncarnation(last, wall)
	if err := writeAtomic(path, []byte(strconv.FormatUint(inc, 10)+"\n")); err != nil {
		return 0, fmt.Errorf("state_dir: %w", err)
	}
	return inc, nil
}

// writeAtomic replaces path by data, mode 0600, durably.
func writeAtomic(path string, data []byte) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name()) // after a failure; gone after the rename
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
