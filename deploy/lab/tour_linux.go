package lab

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"time"
)

// TourOptions configure the guided tour.
type TourOptions struct {
	Mode   Mode
	BinDir string
	Out    io.Writer
	// Streams is the number of long-lived connections (default 300).
	Streams int
	// Once exits after the tour; otherwise the mesh stays up until ctx
	// ends (Ctrl-C).
	Once bool
	// InKernelLab says the tour runs in the kernel lab's guest (no shell
	// to explore from).
	InKernelLab bool
}

// saructl runs the real saructl against the director from inside its
// namespace and returns its output.
func (l *Lab) saructl(ctx context.Context, d *Director, args ...string) string {
	argv := append([]string{"--addr", d.SaruAddr(), "--syncd-addr", d.SyncdAddr(), "--token-file", filepath.Join(l.work, "token")}, args...)
	out, err := nsOutput(ctx, d.NS, l.bins.saructl, argv...)
	if err != nil {
		return strings.TrimRight(out, "\n") + "\n(saructl: " + err.Error() + ")"
	}
	return strings.TrimRight(out, "\n")
}

func (l *Lab) showSaructl(ctx context.Context, w io.Writer, d *Director, args ...string) {
	fmt.Fprintf(w, "\n  $ ip netns exec %s saructl --addr %s %s\n", d.NS, d.SaruAddr(), strings.Join(args, " "))
	for _, line := range strings.Split(l.saructl(ctx, d, args...), "\n") {
		fmt.Fprintf(w, "    %s\n", line)
	}
}

func step(w io.Writer, n int, title string) {
	fmt.Fprintf(w, "\n== %d. %s\n", n, title)
}

// Tour brings a mesh up and walks through the mission: connections spread
// over every director; one killed and its sessions continuing; another
// drained, rebooted and returned; a fourth joining; then a summary.
func Tour(ctx context.Context, to TourOptions) error {
	w := to.Out
	if w == nil {
		w = io.Discard
	}
	if to.Streams == 0 {
		to.Streams = 300
	}
	so := ScenarioOptions{Mode: to.Mode, Out: w, Interval: 500 * time.Millisecond, Requests: 300}
	fmt.Fprintf(w, "Saru lab: %s mode; 3 directors sharing VIP %s and MAC %s behind a hub, 3 real servers, 2 client namespaces\n", to.Mode, VIP, lanMAC)
	l, err := New(ctx, Options{Mode: to.Mode, BinDir: to.BinDir, Out: w})
	if err != nil {
		return err
	}
	if l.opts.ProbeInterval > 0 {
		fmt.Fprintf(w, "Gossip: probe every %v, timeout %v, suspicion x%d (a suspected director has %d probe intervals to refute)\n",
			l.opts.ProbeInterval, l.opts.ProbeTimeout, l.opts.SuspicionMult, l.opts.SuspicionMult)
	}
	defer l.Close()
	step(w, 1, "bring the mesh up: syncd and saru on every director")
	c, err := l.Up(ctx)
	if err != nil {
		l.dumpLogs(w)
		return err
	}
	defer c.close()
	d1 := l.Directors[0]
	l.showSaructl(ctx, w, d1, "status")
	l.showSaructl(ctx, w, d1, "members")

	step(w, 2, "connections spread over every director")
	var spread Result
	if err := scenarioSpread(ctx, l, c, so, &spread); err != nil {
		fmt.Fprintf(w, "  ! spread: %v\n", err)
	}
	ss, err := openAndSync(ctx, l, c, to.Streams, so)
	if ss != nil {
		defer ss.Close()
	}
	if err != nil {
		l.dumpLogs(w)
		return err
	}
	l.showSaructl(ctx, w, d1, "sync-stats")
	ss.ResetWindow()

	step(w, 3, "kill -9 a director: its sessions continue")
	var crash Result
	victim := l.Directors[1]
	_, a, _ := c.waitSettled(ctx, l.ids(nil), l.ids(nil), 10*time.Second)
	hit := affected(ss, a, victim.ID)
	t0 := time.Now()
	if err := l.Crash(ctx, victim); err != nil {
		return err
	}
	alive := l.ids(victim)
	if _, _, err := c.waitSettled(ctx, alive, alive, 30*time.Second); err != nil {
		fmt.Fprintf(w, "  ! %v\n", err)
	} else {
		crash.FailoverMS = ms(time.Since(t0))
		say(w, "kill -9 %s, which carried %d streams: the survivors own every bucket after %.0f ms", victim.ID, hit, crash.FailoverMS)
	}
	ss.WaitHealthy(ctx, time.Second, 15*time.Second)
	say(w, "%d/%d streams healthy", ss.Healthy(time.Second), ss.Len())
	l.showSaructl(ctx, w, d1, "members")

	step(w, 4, "rolling maintenance: drain, reboot and return another director")
	d3 := l.Directors[2]
	others := []string{d1.ID}
	t1 := time.Now()
	fmt.Fprintf(w, "\n  $ ip netns exec %s saructl drain %s\n", d3.NS, d3.ID)
	fmt.Fprintf(w, "    %s\n", l.saructl(ctx, d3, "drain", d3.ID))
	if _, _, err := c.waitSettled(ctx, []string{d1.ID, d3.ID}, others, 30*time.Second); err != nil {
		fmt.Fprintf(w, "  ! %v\n", err)
	}
	drainMS := ms(time.Since(t1))
	say(w, "%s's buckets moved after %.0f ms; stopping it (SIGTERM) and rebooting its namespace", d3.ID, drainMS)
	if err := l.StopDaemons(ctx, d3, 30*time.Second); err != nil {
		fmt.Fprintf(w, "  ! %v\n", err)
	}
	if err := l.Reboot(ctx, d3); err != nil {
		return err
	}
	if err := l.StartDaemons(ctx, d3, l.joinDelay()); err != nil {
		l.dumpLogs(w)
		return err
	}
	fmt.Fprintf(w, "\n  $ ip netns exec %s saructl undrain %s\n", d3.NS, d3.ID)
	out := l.saructl(ctx, d3, "undrain", d3.ID)
	for start := time.Now(); strings.Contains(out, "starting") && time.Since(start) < time.Minute; {
		time.Sleep(500 * time.Millisecond) // the restarted director is still joining
		out = l.saructl(ctx, d3, "undrain", d3.ID)
	}
	fmt.Fprintf(w, "    %s\n", out)
	if _, _, err := c.waitSettled(ctx, alive, alive, 60*time.Second); err != nil {
		fmt.Fprintf(w, "  ! %v\n", err)
	}
	say(w, "%d/%d streams healthy", ss.Healthy(time.Second), ss.Len())
	l.showSaructl(ctx, w, d1, "status")

	step(w, 5, "a fourth director joins")
	d4, err := l.AddDirector(ctx)
	if err != nil {
		return err
	}
	t2 := time.Now()
	if err := l.StartDaemons(ctx, d4, l.joinDelay()); err != nil {
		l.dumpLogs(w)
		return err
	}
	nc, err := l.clusterClients()
	if err != nil {
		return err
	}
	c.close()
	*c = *nc
	now := append(alive, d4.ID)
	if _, _, err := c.waitSettled(ctx, now, now, 60*time.Second); err != nil {
		fmt.Fprintf(w, "  ! %v\n", err)
	} else {
		say(w, "%s took its share %.1f s after starting (after its syncd snapshot; join_delay is 30 s)", d4.ID, time.Since(t2).Seconds())
	}
	l.showSaructl(ctx, w, d4, "members")

	step(w, 6, "summary")
	var res Result
	finish(ctx, ss, so, &res)
	fmt.Fprintf(w, "  HTTP spread:       %s\n", spread.Detail)
	fmt.Fprintf(w, "  crash failover:    %.0f ms (kill -9 %s to every survivor applying)\n", crash.FailoverMS, victim.ID)
	fmt.Fprintf(w, "  drain:             %.0f ms (%s)\n", drainMS, d3.ID)
	fmt.Fprintf(w, "  streams:           %d connections, %d lost, stall p50 %.0f ms, p99 %.0f ms\n", res.Connections, res.Lost, res.StallP50, res.StallP99)
	where := ""
	if to.InKernelLab {
		where = " (inside the VM: gone when it stops)"
	}
	fmt.Fprintf(w, "  logs and configs:  %s%s\n", l.WorkDir(), where)
	if to.Once {
		fmt.Fprintf(w, "\n--once: tearing the mesh down.\n")
		return nil
	}
	if to.InKernelLab {
		fmt.Fprintf(w, "\nThe mesh stays up inside the kernel lab's VM; it has no shell to explore from, so it prints\n"+
			"`saructl status` every 10 s. Press Ctrl-C to tear everything down (the VM stops).\n")
	} else {
		fmt.Fprintf(w, "\nThe mesh stays up. Explore from another shell, e.g.:\n")
		for _, d := range l.Directors {
			if d.Running() {
				fmt.Fprintf(w, "  ip netns exec %s saructl --addr %s status\n", d.NS, d.SaruAddr())
			}
		}
		fmt.Fprintf(w, "  ip netns exec %s curl http://%s/\n", l.Clients[0], VIP)
		fmt.Fprintf(w, "Press Ctrl-C (or send SIGTERM) to tear everything down.\n")
	}
	tick := time.NewTicker(10 * time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			fmt.Fprintf(w, "\ntearing the mesh down.\n")
			return nil
		case <-tick.C:
			if to.InKernelLab {
				l.showSaructl(ctx, w, d1, "status")
			}
		}
	}
}
