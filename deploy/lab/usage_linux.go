package lab

import (
	"cmp"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// usage is the machine's CPU time (the cpu line of /proc/stat) and each
// process's (its own and its reaped children's), in clock ticks, for
// SARULAB_DEBUG: it tells which daemon a slow scenario starved on.
type usage struct {
	cpu   []int64
	procs map[int]procUsage
}

type procUsage struct {
	ticks int64
	cmd   string
}

func readUsage() usage {
	u := usage{procs: map[int]procUsage{}}
	if b, err := os.ReadFile("/proc/stat"); err == nil {
		line, _, _ := strings.Cut(string(b), "\n")
		for _, f := range strings.Fields(line)[1:] {
			v, _ := strconv.ParseInt(f, 10, 64)
			u.cpu = append(u.cpu, v)
		}
	}
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, d := range dirs {
		b, err := os.ReadFile(d + "/stat")
		if err != nil {
			continue
		}
		// pid (comm) state ppid ... utime stime cutime cstime: fields 14-17.
		lp, rp := strings.IndexByte(string(b), '('), strings.LastIndexByte(string(b), ')')
		if lp < 0 || rp < lp {
			continue
		}
		f := strings.Fields(string(b[rp+1:]))
		if len(f) < 15 {
			continue
		}
		var t int64
		for _, s := range f[11:15] {
			v, _ := strconv.ParseInt(s, 10, 64)
			t += v
		}
		cmd := "[" + string(b[lp+1:rp]) + "]"
		if c, err := os.ReadFile(d + "/cmdline"); err == nil && len(c) > 0 {
			cmd = strings.TrimSpace(strings.ReplaceAll(string(c), "\x00", " "))
		}
		pid, _ := strconv.Atoi(filepath.Base(d))
		u.procs[pid] = procUsage{ticks: t, cmd: cmd}
	}
	return u
}

// printUsage prints where the CPU time went between before and now: the
// machine's split and the busiest processes.
func printUsage(w io.Writer, before, now usage) {
	names := []string{"user", "nice", "system", "idle", "iowait", "irq", "softirq"}
	var split []string
	for i, n := range names {
		if i < len(before.cpu) && i < len(now.cpu) {
			split = append(split, fmt.Sprintf("%s %d", n, now.cpu[i]-before.cpu[i]))
		}
	}
	fmt.Fprintf(w, "CPU ticks since the step began: %s\n", strings.Join(split, ", "))
	type row struct {
		pid   int
		ticks int64
	}
	var rows []row
	for pid, p := range now.procs {
		if d := p.ticks - before.procs[pid].ticks; d > 0 {
			rows = append(rows, row{pid, d})
		}
	}
	slices.SortFunc(rows, func(a, b row) int { return cmp.Compare(b.ticks, a.ticks) })
	for _, r := range rows[:min(len(rows), 10)] {
		cmd := now.procs[r.pid].cmd
		if len(cmd) > 70 {
			cmd = cmd[:70]
		}
		fmt.Fprintf(w, "  %5d ticks  %6d %s\n", r.ticks, r.pid, cmd)
	}
}
