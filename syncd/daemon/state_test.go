package daemon

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// A run's incarnation exceeds the last run's even when the clock has
// stepped back since, and is kept in a file only syncd reads.
func TestIncarnationSurvivesClockStepBack(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	first, err := nextIncarnation(dir, t0)
	if err != nil {
		t.Fatal(err)
	}
	if first != uint64(t0.UnixNano()) {
		t.Errorf("first incarnation %d, want the wall clock %d", first, t0.UnixNano())
	}
	second, err := nextIncarnation(dir, t0.Add(-10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if second != first+1 {
		t.Errorf("incarnation after a 10 s step back: %d, want %d", second, first+1)
	}
	third, err := nextIncarnation(dir, t0.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if third != uint64(t0.Add(time.Hour).UnixNano()) {
		t.Errorf("incarnation an hour later: %d, want the wall clock", third)
	}
	fi, err := os.Stat(filepath.Join(dir, incarnationFile))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("incarnation file mode %v, want 0600", fi.Mode().Perm())
	}
	if err := os.WriteFile(filepath.Join(dir, incarnationFile), []byte("garbage\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := nextIncarnation(dir, t0); err == nil {
		t.Error("a corrupt incarnation file was accepted")
	}
}
