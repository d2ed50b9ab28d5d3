package lab

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	sarupb "github.com/saru-lb/saru/proto/saru/v1"
	syncdpb "github.com/saru-lb/saru/proto/syncd/v1"
)

// ScenarioNames lists the scenarios in the order they run.
var ScenarioNames = []string{"spread", "crash", "rolling-maintenance", "join", "inspection", "lossy-sync"}

// ScenarioOptions configure a scenario run.
type ScenarioOptions struct {
	Mode   Mode
	BinDir string
	// Out receives the narrative (not the JSON lines); nil: discarded.
	Out io.Writer
	// Streams is the number of long-lived connections for crash and
	// lossy-sync (default 500) and the others (default 200).
	Streams int
	// Interval between a stream's messages (default: 2ms times the
	// number of streams, at least 200ms).
	Interval time.Duration
	// Requests is the number of HTTP requests of spread (default 300).
	Requests int
	// NoSync runs without syncd (a baseline).
	NoSync bool
}

// defaultStreams is the scenario's default number of long-lived
// connections.
func defaultStreams(name string) int {
	switch name {
	case "crash", "lossy-sync":
		return 500
	case "inspection":
		return 50
	}
	return 200
}

func (o *ScenarioOptions) streams(def int) int {
	if o.Streams > 0 {
		return o.Streams
	}
	return def
}

// RunScenario builds a fresh lab, runs one scenario and returns its result.
func RunScenario(ctx context.Context, name string, so ScenarioOptions) Result {
	if so.Interval == 0 {
		// At most about 500 messages a second over all streams: the
		// kernel lab emulates its CPUs in software.
		so.Interval = max(200*time.Millisecond, time.Duration(so.streams(defaultStreams(name)))*2*time.Millisecond)
	}
	if so.Requests == 0 {
		so.Requests = 300
	}
	if so.Out == nil {
		so.Out = io.Discard
	}
	if so.Mode == "" {
		so.Mode = ModeDR
	}
	start := time.Now()
	if os.Getenv("SARULAB_DEBUG") != "" {
		sctx, cancel := context.WithCancel(ctx)
		defer cancel()
		go watchStalls(sctx, so.Out)
	}
	res := Result{Scenario: name, Mode: so.Mode}
	opts := Options{Mode: so.Mode, BinDir: so.BinDir, Out: so.Out, NoSync: so.NoSync}
	if name == "lossy-sync" {
		opts.LossPercent = 10
	}
	var run func(context.Context, *Lab, *cluster, ScenarioOptions, *Result) error
	switch name {
	case "spread":
		run = scenarioSpread
	case "crash", "lossy-sync":
		run = scenarioCrash
	case "rolling-maintenance":
		run = scenarioRolling
	case "join":
		run = scenarioJoin
	case "inspection":
		run = scenarioInspection
	default:
		res.Error = fmt.Sprintf("unknown scenario %q (want one of %s)", name, strings.Join(ScenarioNames, ", "))
		return res
	}
	err := func() (err error) {
		defer func() {
			if r := recover(); r != nil {
				err = fmt.Errorf("panic: %v", r)
			}
		}()
		l, err := New(ctx, opts)
		if err != nil {
			return fmt.Errorf("topology: %w", err)
		}
		defer func() {
			if err != nil || os.Getenv("SARULAB_DEBUG") != "" {
				l.dumpLogs(so.Out)
			}
			l.Close()
		}()
		c, err := l.Up(ctx)
		if err != nil {
			return err
		}
		defer c.close()
		err = run(ctx, l, c, so, &res)
		if err != nil || res.Lost > 0 {
			if e, ok := l.flapped(ctx, c); ok {
				res.Flapped = true
				err = fmt.Errorf("membership flapped before the scenario acted (epoch %d became %d with every director alive: the host starved the lab): %w", l.upEpoch, e, orErr(err, "lost connections"))
			}
		}
		return err
	}()
	if err != nil {
		res.Error = err.Error()
	}
	res.Seconds = float64(time.Since(start).Round(100*time.Millisecond)) / float64(time.Second)
	return res
}

func orErr(err error, s string) error {
	if err != nil {
		return err
	}
	return errors.New(s)
}

// flapped reports whether saru declared a live director dead before the
// scenario acted (or at all, for scenarios that never act, as spread): the
// assignment moved on from the epoch Up settled on, or a saru log shows a
// peer gone or a standby takeover (which moves buckets before any new
// epoch). It returns the newest epoch seen.
func (l *Lab) flapped(ctx context.Context, c *cluster) (uint64, bool) {
	var newest uint64
	for _, d := range l.Directors {
		if !d.Running() {
			continue
		}
		v, err := c.view(ctx, d.ID)
		if err != nil {
			continue
		}
		newest = max(newest, v.asg.GetEpoch())
	}
	if l.acted {
		return newest, false
	}
	if newest > l.upEpoch {
		return newest, true
	}
	for _, d := range l.Directors {
		if d.saru == nil {
			continue
		}
		b, _ := os.ReadFile(d.saru.log)
		for _, line := range strings.Split(string(b), "\n") {
			if !strings.Contains(line, `"msg":"peer gone"`) && !strings.Contains(line, `"reason":"standby-takeover"`) {
				continue
			}
			var e struct {
				Time time.Time `json:"time"`
			}
			if json.Unmarshal([]byte(line), &e) == nil && e.Time.After(l.upAt) {
				return newest, true
			}
		}
	}
	return newest, false
}

// say prints one line of narrative.
func say(w io.Writer, format string, args ...any) {
	fmt.Fprintf(w, "  · "+format+"\n", args...)
}

// Up starts the real servers and every director's daemons and waits
// until the cluster has settled on an assignment covering every director.
func (l *Lab) Up(ctx context.Context) (*cluster, error) {
	if err := l.StartServers(); err != nil {
		return nil, err
	}
	start := time.Now()
	for _, d := range l.Directors {
		if err := l.StartDaemons(ctx, d, l.joinDelay()); err != nil {
			return nil, err
		}
	}
	c, err := l.clusterClients()
	if err != nil {
		return nil, err
	}
	ids := l.ids(nil)
	took, a, err := c.waitSettled(ctx, ids, ids, 90*time.Second)
	if err != nil {
		c.close()
		return nil, fmt.Errorf("mesh up: %w", err)
	}
	l.upEpoch, l.upAt = a.GetEpoch(), time.Now()
	say(l.opts.Out, "%d directors up (%s mode), assignment epoch %d settled %v after start (%.1fs total)",
		len(ids), l.opts.Mode, a.GetEpoch(), took.Round(time.Millisecond), time.Since(start).Seconds())
	if os.Getenv("SARULAB_DEBUG") != "" {
		time.Sleep(3 * time.Second)
		debugTop(ctx, l.opts.Out)
	}
	return c, nil
}

// joinDelay is saru's join_delay: 30 s (the default), gated by syncd's
// snapshot; without syncd nothing else gates a join, so it is short.
func (l *Lab) joinDelay() time.Duration {
	if l.opts.NoSync {
		return 3 * time.Second
	}
	return 30 * time.Second
}

// ids are the director ids, without except.
func (l *Lab) ids(except *Director) []string {
	var out []string
	for _, d := range l.Directors {
		if d != except {
			out = append(out, d.ID)
		}
	}
	return out
}

func (l *Lab) dumpLogs(w io.Writer) {
	for _, d := range l.Directors {
		for _, p := range []*proc{d.syncd, d.saru} {
			if p == nil {
				continue
			}
			fmt.Fprintf(w, "---- %s (last lines of %s)\n%s\n", p.name, p.log, p.tail(logLines()))
		}
	}
}

// settledConns reads every director's IPVS connection counter of the HTTP
// service until done says the reading is current, for at most 10 s. IPVS
// folds its per-CPU counters into what netlink reports only when its rate
// estimator visits the service, every 2 s and later on a starved guest, so
// one reading can miss the last connections. done gets the reading and the
// one before it (nil at first); after 10 s the last reading is returned.
func settledConns(ctx context.Context, l *Lab, done func(cur, prev map[string]uint64) bool) (map[string]uint64, error) {
	deadline := time.Now().Add(10 * time.Second)
	var prev map[string]uint64
	for {
		cur := map[string]uint64{}
		for _, d := range l.Directors {
			n, err := ipvsConns(ctx, d, HTTPPort)
			if err != nil {
				return nil, err
			}
			cur[d.ID] = n
		}
		if done(cur, prev) || time.Now().After(deadline) {
			return cur, nil
		}
		prev = cur
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(2500 * time.Millisecond):
		}
	}
}

// bucketOf is the bucket of a src-port service.
func bucketOf(port int, buckets uint32) uint32 { return uint32(port) & (buckets - 1) }

func scenarioSpread(ctx context.Context, l *Lab, c *cluster, so ScenarioOptions, res *Result) error {
	// The baseline must include the earlier scenarios' connections, which
	// IPVS may not have folded into its counters yet.
	before, err := settledConns(ctx, l, func(cur map[string]uint64, prev map[string]uint64) bool {
		return prev != nil && maps.Equal(cur, prev)
	})
	if err != nil {
		return fmt.Errorf("IPVS connection counters before the requests: %w", err)
	}
	_, a, err := c.waitSettled(ctx, l.ids(nil), l.ids(nil), 10*time.Second)
	if err != nil {
		return err
	}
	type got struct {
		port   int
		server string
		err    error
	}
	results := make([]got, so.Requests)
	var wg sync.WaitGroup
	jobs := make(chan int)
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				port, server, err := HTTPGet(ctx, l.Clients[i%len(l.Clients)], 5*time.Second)
				results[i] = got{port, server, err}
			}
		}()
	}
	for i := 0; i < so.Requests; i++ {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	expect := map[string]int{}
	servers := map[string]int{}
	var firstErr error
	for _, r := range results {
		if r.err != nil {
			res.Lost++
			if firstErr == nil {
				firstErr = r.err
			}
			continue
		}
		servers[r.server]++
		expect[ownerOf(a, bucketOf(r.port, a.GetBucketCount()))]++
	}
	res.Connections = so.Requests
	ok := uint64(so.Requests - res.Lost)
	after, err := settledConns(ctx, l, func(cur map[string]uint64, _ map[string]uint64) bool {
		var n uint64
		for id, v := range cur {
			n += v - before[id]
		}
		return n >= ok
	})
	if err != nil {
		return fmt.Errorf("IPVS connection counters after the requests: %w", err)
	}
	var parts, bad []string
	for _, d := range l.Directors {
		handled := int(after[d.ID] - before[d.ID])
		parts = append(parts, fmt.Sprintf("%s handled %d (assignment: %d)", d.ID, handled, expect[d.ID]))
		if handled == 0 || handled != expect[d.ID] {
			bad = append(bad, d.ID)
		}
	}
	res.Detail = fmt.Sprintf("%d HTTP requests from %d client namespaces; IPVS connection counters: %s; real servers %v",
		so.Requests, len(l.Clients), strings.Join(parts, ", "), servers)
	say(so.Out, "%s", res.Detail)
	if firstErr != nil {
		return fmt.Errorf("%d requests failed, first: %w", res.Lost, firstErr)
	}
	if len(bad) > 0 {
		return fmt.Errorf("directors %v did not handle the connections their buckets give them", bad)
	}
	return nil
}

// openAndSync opens n streams, waits until every one echoes and every
// director's syncd holds every one of them.
func openAndSync(ctx context.Context, l *Lab, c *cluster, n int, so ScenarioOptions) (*Streams, error) {
	start := time.Now()
	ss, err := l.OpenStreams(ctx, n, so.Interval)
	if err != nil {
		return nil, err
	}
	if !ss.WaitHealthy(ctx, time.Second, 30*time.Second) {
		debugTop(ctx, so.Out)
		var none, slow, failed int
		var maxWait time.Duration
		for _, st := range ss.Snapshot() {
			switch {
			case st.Err != nil:
				failed++
			case st.Echoes == 0:
				none++
			case st.Waiting > time.Second:
				slow++
			}
			maxWait = max(maxWait, st.Waiting)
		}
		return ss, fmt.Errorf("only %d of %d stream connections echo within 1s 30s after opening (%d failed, %d never echoed, %d waiting, longest %v)",
			ss.Healthy(time.Second), n, failed, none, slow, maxWait.Round(time.Millisecond))
	}
	say(so.Out, "%d long-lived connections streaming (one message every %v each), opened in %.1fs (%d connection attempts failed and were retried)",
		n, so.Interval, time.Since(start).Seconds(), ss.retries.Load())
	if l.opts.NoSync {
		say(so.Out, "no syncd (--no-sync): the directors share nothing about connections")
		return ss, nil
	}
	ports := map[uint32]bool{}
	for _, s := range ss.list {
		ports[uint32(s.Port)] = true
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		var short []string
		for _, d := range l.Directors {
			got, err := c.streamConns(ctx, d.ID)
			if err != nil {
				return ss, err
			}
			have := 0
			for p := range ports {
				if got[p] {
					have++
				}
			}
			if have < len(ports) {
				short = append(short, fmt.Sprintf("%s %d/%d", d.ID, have, len(ports)))
			}
		}
		if len(short) == 0 {
			say(so.Out, "every director's syncd holds all %d connections (%.1fs after opening)", n, time.Since(start).Seconds())
			return ss, nil
		}
		if time.Now().After(deadline) {
			return ss, fmt.Errorf("syncd did not spread the connections within 30s: %s", strings.Join(short, ", "))
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// streamConns lists the client ports of the stream service's connections
// in the director's syncd table.
func (c *cluster) streamConns(ctx context.Context, id string) (map[uint32]bool, error) {
	out := map[uint32]bool{}
	token := ""
	for {
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		r, err := c.syncd[id].ListConnections(cctx, &syncdpb.ListConnectionsRequest{Vip: VIP.String(), PageSize: 5000, PageToken: token})
		cancel()
		if err != nil {
			return nil, fmt.Errorf("%s syncd ListConnections: %w", id, err)
		}
		for _, e := range r.GetConnections() {
			if e.GetVirtualPort() == StreamPort {
				out[e.GetClientPort()] = true
			}
		}
		if token = r.GetNextPageToken(); token == "" {
			return out, nil
		}
	}
}

// finish waits for the streams to recover and fills in the result.
func finish(ctx context.Context, ss *Streams, so ScenarioOptions, res *Result) {
	// Lost means reset or never back. After a long stall TCP's
	// retransmission back-off (200ms doubling) leaves a live connection
	// silent for up to ~26s more; the stall it had is in stall_ms.
	ok := ss.WaitHealthy(ctx, time.Second, 60*time.Second)
	time.Sleep(time.Second)
	debugTop(ctx, so.Out)
	states := ss.Snapshot()
	lost, p50, p99 := Outcome(states, 5*time.Second)
	res.Connections, res.Lost = len(states), lost
	res.StallP50, res.StallP99 = ms(p50), ms(p99)
	var why []string
	for _, s := range states {
		if s.Err != nil && len(why) < 3 {
			why = append(why, fmt.Sprintf("port %d: %v", s.Port, s.Err))
		}
	}
	if !ok || lost > 0 {
		say(so.Out, "%d connections lost; e.g. %s", lost, strings.Join(why, "; "))
	}
}

// watchStalls reports when this process's timers fire late by more than
// 150ms: the whole machine (in the kernel lab, the emulated guest) stalled,
// and every daemon with it.
func watchStalls(ctx context.Context, w io.Writer) {
	const tick = 20 * time.Millisecond
	last := time.Now()
	t := time.NewTicker(tick)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			if late := now.Sub(last) - tick; late > 150*time.Millisecond {
				fmt.Fprintf(w, "  ! stall: timers fired %v late at %s\n", late.Round(time.Millisecond), now.Format("15:04:05.000"))
			}
			last = now
		}
	}
}

// debugSyncStats prints each syncd's packet counters per peer.
func debugSyncStats(ctx context.Context, w io.Writer, c *cluster, ids []string) {
	for _, id := range ids {
		ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		st, err := c.syncd[id].GetStats(ctx, &syncdpb.GetStatsRequest{})
		cancel()
		if err != nil {
			fmt.Fprintf(w, "%s syncd stats: %v\n", id, err)
			continue
		}
		var parts []string
		for _, p := range st.GetPeers() {
			parts = append(parts, fmt.Sprintf("%s rx %d lost %d resent %d", p.GetPeerId(), p.GetReceivedPackets(), p.GetLostPackets(), p.GetRetransmittedPackets()))
		}
		fmt.Fprintf(w, "%s syncd: %s; rejected %v\n", id, strings.Join(parts, ", "), st.GetRejected())
	}
}

// debugStallStarts prints when the longest wait of each stream that
// stalled over 300ms began, in 250ms bins: a handover stalls the moved
// streams at the move, a starved machine stalls them all at once.
func debugStallStarts(w io.Writer, ss *Streams) {
	bins := map[string]int{}
	for _, s := range ss.list {
		s.mu.Lock()
		if s.maxWait > 300*time.Millisecond {
			bins[s.maxSent.Truncate(250*time.Millisecond).Format("15:04:05.000")]++
		}
		s.mu.Unlock()
	}
	for _, k := range slices.Sorted(maps.Keys(bins)) {
		fmt.Fprintf(w, "  worst stall began %s: %d streams\n", k, bins[k])
	}
}

// debugTop prints the guest's busiest processes when SARULAB_DEBUG is set.
func debugTop(ctx context.Context, w io.Writer) {
	if os.Getenv("SARULAB_DEBUG") == "" {
		return
	}
	out, _ := output(ctx, "top", "-b", "-n", "1")
	lines := strings.Split(out, "\n")
	if len(lines) > 16 {
		lines = lines[:16]
	}
	fmt.Fprintln(w, strings.Join(lines, "\n"))
	if b, err := os.ReadFile("/proc/net/softnet_stat"); err == nil {
		fmt.Fprintf(w, "softnet_stat (processed dropped squeezed ...):\n%s", b)
	}
}

// movedPorts adds to set the streams whose owner differs between two
// assignments (two client namespaces may use the same port, so streams,
// not ports, are the keys).
func movedPorts(ss *Streams, before, after *sarupb.Assignment, set map[*Stream]bool) {
	for _, s := range ss.list {
		if ownerOf(before, bucketOf(s.Port, before.GetBucketCount())) != ownerOf(after, bucketOf(s.Port, after.GetBucketCount())) {
			set[s] = true
		}
	}
}

// moved describes which streams changed owner (those in set): how many
// of each kind were lost and how long each kind stalled, which tells a
// handover's stall from the whole machine's.
func moved(ss *Streams, set map[*Stream]bool, lossAfter time.Duration) string {
	var mv, stay []StreamState
	for i, st := range ss.Snapshot() {
		if set[ss.list[i]] {
			mv = append(mv, st)
		} else {
			stay = append(stay, st)
		}
	}
	group := func(states []StreamState) string {
		lost, p50, p99 := Outcome(states, lossAfter)
		return fmt.Sprintf("(%d lost, stall p50 %v p99 %v)", lost, p50.Round(time.Millisecond), p99.Round(time.Millisecond))
	}
	return fmt.Sprintf("%d streams changed director %s, %d kept theirs %s", len(mv), group(mv), len(stay), group(stay))
}

// affected counts the streams whose bucket the director owns.
func affected(ss *Streams, a *sarupb.Assignment, id string) int {
	n := 0
	for _, s := range ss.list {
		if ownerOf(a, bucketOf(s.Port, a.GetBucketCount())) == id {
			n++
		}
	}
	return n
}

func scenarioCrash(ctx context.Context, l *Lab, c *cluster, so ScenarioOptions, res *Result) error {
	n := so.streams(500)
	ss, err := openAndSync(ctx, l, c, n, so)
	if ss != nil {
		defer ss.Close()
	}
	if err != nil {
		return err
	}
	victim := l.Directors[1]
	survivors := l.ids(victim)
	_, a, err := c.waitSettled(ctx, l.ids(nil), l.ids(nil), 10*time.Second)
	if err != nil {
		return err
	}
	hit := affected(ss, a, victim.ID)
	debugTop(ctx, so.Out)
	if e, ok := l.flapped(ctx, c); ok {
		return fmt.Errorf("assignment epoch %d became %d before the crash", l.upEpoch, e)
	}
	l.acted = true
	ss.ResetWindow()
	t0 := time.Now()
	if err := l.Crash(ctx, victim); err != nil {
		return err
	}
	var seen time.Duration
	for time.Since(t0) < 30*time.Second && seen == 0 {
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		m, err := c.saru[survivors[0]].ListMembers(cctx, &sarupb.ListMembersRequest{})
		cancel()
		if err == nil {
			for _, mm := range m.GetMembers() {
				if mm.GetId() == victim.ID && !mm.GetAlive() {
					seen = time.Since(t0)
				}
			}
			if !slices.ContainsFunc(m.GetMembers(), func(mm *sarupb.Member) bool { return mm.GetId() == victim.ID }) {
				seen = time.Since(t0)
			}
		}
		time.Sleep(pollEvery)
	}
	_, a2, err := c.waitSettled(ctx, survivors, survivors, 30*time.Second)
	fo := time.Since(t0)
	say(so.Out, "%s saw %s dead after %v", survivors[0], victim.ID, seen.Round(time.Millisecond))
	if err != nil {
		return fmt.Errorf("after kill -9 of %s: %w", victim.ID, err)
	}
	res.FailoverMS, res.DetectMS = ms(fo), ms(seen)
	say(so.Out, "kill -9 %s (and its links down) with %d of its connections in flight: survivors %v own every bucket after %v",
		victim.ID, hit, survivors, fo.Round(time.Millisecond))
	finish(ctx, ss, so, res)
	mv := map[*Stream]bool{}
	movedPorts(ss, a, a2, mv)
	res.Moved = len(mv)
	say(so.Out, "%s; epochs %d -> %d", moved(ss, mv, 5*time.Second), a.GetEpoch(), a2.GetEpoch())
	loss := ""
	if l.opts.LossPercent > 0 {
		loss = fmt.Sprintf(" with %d%% of syncd's peer packets dropped on every director", l.opts.LossPercent)
	}
	res.Detail = fmt.Sprintf("kill -9 of %s owning %d of %d streams%s; failover polled over saru.v1.Cluster every %v", victim.ID, hit, n, loss, pollEvery)
	return nil
}

// authCtx adds the drain token.
func (l *Lab) authCtx(ctx context.Context) context.Context {
	return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+l.token)
}

func (l *Lab) drain(ctx context.Context, c *cluster, d *Director) error {
	cctx, cancel := context.WithTimeout(l.authCtx(ctx), 60*time.Second)
	defer cancel()
	_, err := c.saru[d.ID].Drain(cctx, &sarupb.DrainRequest{NodeId: d.ID})
	if err != nil {
		return fmt.Errorf("drain %s: %w", d.ID, err)
	}
	return nil
}

// undrain returns the director to service; it retries while the
// director is still starting.
func (l *Lab) undrain(ctx context.Context, c *cluster, d *Director) (bool, error) {
	deadline := time.Now().Add(60 * time.Second)
	for {
		cctx, cancel := context.WithTimeout(l.authCtx(ctx), 60*time.Second)
		_, err := c.saru[d.ID].Undrain(cctx, &sarupb.UndrainRequest{NodeId: d.ID})
		cancel()
		switch {
		case err == nil:
			return true, nil
		case status.Code(err) == codes.FailedPrecondition:
			return false, nil // came back active already
		case status.Code(err) == codes.Unavailable && time.Now().Before(deadline):
			time.Sleep(200 * time.Millisecond)
			continue
		}
		return false, fmt.Errorf("undrain %s: %w", d.ID, err)
	}
}

func scenarioRolling(ctx context.Context, l *Lab, c *cluster, so ScenarioOptions, res *Result) error {
	n := so.streams(200)
	ss, err := openAndSync(ctx, l, c, n, so)
	if ss != nil {
		defer ss.Close()
	}
	if err != nil {
		return err
	}
	ss.ResetWindow()
	var moves []time.Duration
	all := l.ids(nil)
	mv := map[*Stream]bool{}
	_, prev, err := c.waitSettled(ctx, all, all, 10*time.Second)
	if err != nil {
		return err
	}
	if e, ok := l.flapped(ctx, c); ok {
		return fmt.Errorf("assignment epoch %d became %d before the first drain", l.upEpoch, e)
	}
	l.acted = true
	for _, d := range l.Directors {
		others := l.ids(d)
		t0 := time.Now()
		if err := l.drain(ctx, c, d); err != nil {
			return err
		}
		_, drained, err := c.waitSettled(ctx, all, others, 30*time.Second)
		if err != nil {
			return fmt.Errorf("after draining %s: %w", d.ID, err)
		}
		movedPorts(ss, prev, drained, mv)
		moves = append(moves, time.Since(t0))
		if err := l.StopDaemons(ctx, d, 30*time.Second); err != nil {
			return err
		}
		if err := l.Reboot(ctx, d); err != nil {
			return err
		}
		if err := l.StartDaemons(ctx, d, l.joinDelay()); err != nil {
			return err
		}
		t1 := time.Now()
		undrained, err := l.undrain(ctx, c, d)
		if err != nil {
			return err
		}
		_, back, err := c.waitSettled(ctx, all, all, 60*time.Second)
		if err != nil {
			return fmt.Errorf("after restarting %s: %w", d.ID, err)
		}
		movedPorts(ss, drained, back, mv)
		prev = back
		how := "came back active"
		if undrained {
			how = "undrained"
		}
		say(so.Out, "%s drained in %v, stopped, rebooted (fresh namespace), started, %s; serving again %v later; %d/%d streams healthy",
			d.ID, moves[len(moves)-1].Round(time.Millisecond), how, time.Since(t1).Round(time.Millisecond), ss.Healthy(time.Second), n)
	}
	res.FailoverMS = ms(slices.Max(moves))
	res.Moved = len(mv)
	finish(ctx, ss, so, res)
	say(so.Out, "%s", moved(ss, mv, 5*time.Second))
	res.Detail = fmt.Sprintf("drain, stop, reboot, start, undrain of each of %d directors in turn; failover_ms is the slowest drain (request to every director applying the move)", len(l.Directors))
	return nil
}

func scenarioJoin(ctx context.Context, l *Lab, c *cluster, so ScenarioOptions, res *Result) error {
	n := so.streams(200)
	ss, err := openAndSync(ctx, l, c, n, so)
	if ss != nil {
		defer ss.Close()
	}
	if err != nil {
		return err
	}
	_, before, err := c.waitSettled(ctx, l.ids(nil), l.ids(nil), 10*time.Second)
	if err != nil {
		return err
	}
	if e, ok := l.flapped(ctx, c); ok {
		return fmt.Errorf("assignment epoch %d became %d before the join", l.upEpoch, e)
	}
	l.acted = true
	ss.ResetWindow()
	var use usage
	if os.Getenv("SARULAB_DEBUG") != "" {
		use = readUsage()
	}
	d, err := l.AddDirector(ctx)
	if err != nil {
		return err
	}
	t0 := time.Now()
	if err := l.StartDaemons(ctx, d, l.joinDelay()); err != nil {
		return err
	}
	nc, err := l.clusterClients()
	if err != nil {
		return err
	}
	c.close()
	*c = *nc
	var readyAt, ownAt time.Duration
	early := false
	for time.Since(t0) < 60*time.Second && ownAt == 0 {
		// The assignment first, then syncd: readiness never goes back, so
		// "not ready" after a view in which the newcomer owns buckets
		// proves it took them first. (The other order let a slow poll
		// of a busy guest report a correct join as early.)
		v, verr := c.view(ctx, l.Directors[0].ID)
		owned := verr == nil && owners(v.asg)[d.ID] > 0
		st, err := c.syncStatus(ctx, d.ID)
		if err == nil && st.GetReady() && readyAt == 0 {
			readyAt = time.Since(t0)
		}
		if owned {
			ownAt = time.Since(t0)
			early = err == nil && !st.GetReady()
		}
		time.Sleep(pollEvery)
	}
	if ownAt == 0 {
		return fmt.Errorf("%s owned no bucket 60s after starting", d.ID)
	}
	all := l.ids(nil)
	// A starved kernel-lab guest can set off false deaths while the
	// newcomer starts; the epochs they cause take a while to settle (the
	// line's failover_ms shows how long).
	_, after, err := c.waitSettled(ctx, all, all, 60*time.Second)
	if err != nil {
		return fmt.Errorf("after %s joined: %w", d.ID, err)
	}
	res.FailoverMS = ms(time.Since(t0))
	if os.Getenv("SARULAB_DEBUG") != "" {
		printUsage(so.Out, use, readUsage())
		debugSyncStats(ctx, so.Out, c, all)
		debugStallStarts(so.Out, ss)
	}
	mv := map[*Stream]bool{}
	movedPorts(ss, before, after, mv)
	res.Moved = len(mv)
	say(so.Out, "%s started: syncd snapshot complete after %v, first buckets after %v, every director applied after %v",
		d.ID, readyAt.Round(time.Millisecond), ownAt.Round(time.Millisecond), time.Since(t0).Round(time.Millisecond))
	finish(ctx, ss, so, res)
	say(so.Out, "%s", moved(ss, mv, 5*time.Second))
	res.Detail = fmt.Sprintf("%s joined with join_delay 30s; its syncd snapshot completed after %v and it took buckets after %v; failover_ms is start to every director applying its share",
		d.ID, readyAt.Round(time.Millisecond), ownAt.Round(time.Millisecond))
	if early {
		return fmt.Errorf("%s took buckets before its syncd reported a complete snapshot", d.ID)
	}
	return nil
}

func scenarioInspection(ctx context.Context, l *Lab, c *cluster, so ScenarioOptions, res *Result) error {
	if l.bins.grpcurl == "" {
		return &ErrMissing{What: "grpcurl", Why: "not found (make tools installs it in $(go env GOPATH)/bin)"}
	}
	n := so.streams(50)
	ss, err := openAndSync(ctx, l, c, n, so)
	if ss != nil {
		defer ss.Close()
	}
	if err != nil {
		return err
	}
	// Tables and assignments can be caught mid-change (an entry being
	// synced, an epoch being applied): compare up to three times.
	var problems []string
	attempts := 0
	for attempts < 3 {
		attempts++
		if _, _, err := c.waitSettled(ctx, l.ids(nil), l.ids(nil), 20*time.Second); err != nil {
			return err
		}
		if problems = inspectOnce(ctx, l, n); len(problems) == 0 {
			break
		}
		say(so.Out, "attempt %d: %s", attempts, strings.Join(problems, "; "))
		time.Sleep(time.Second)
	}
	finish(ctx, ss, so, res)
	res.Detail = fmt.Sprintf("grpcurl list, saru.v1.Cluster/GetAssignment and syncd.v1.Sync/ListConnections on each of %d directors; agreed on attempt %d", len(l.Directors), attempts)
	say(so.Out, "grpcurl lists saru.v1.Cluster and syncd.v1.Sync on every director; %d problems", len(problems))
	if len(problems) > 0 {
		return errors.New(strings.Join(problems, "; "))
	}
	return nil
}

// inspectOnce asks every director with grpcurl and returns what
// disagrees.
func inspectOnce(ctx context.Context, l *Lab, n int) []string {
	var problems []string
	var firstAsg string
	var firstEpoch json.RawMessage
	var firstPorts []string // client address and port of each stream entry
	for _, d := range l.Directors {
		for _, svc := range []struct{ addr, name string }{{d.SaruAddr(), "saru.v1.Cluster"}, {d.SyncdAddr(), "syncd.v1.Sync"}} {
			out, err := nsOutput(ctx, d.NS, l.bins.grpcurl, "-plaintext", svc.addr, "list")
			if err != nil {
				problems = append(problems, fmt.Sprintf("%s: grpcurl list %s: %v", d.ID, svc.addr, err))
				continue
			}
			if !slices.Contains(strings.Fields(out), svc.name) {
				problems = append(problems, fmt.Sprintf("%s: grpcurl list %s does not show %s: %q", d.ID, svc.addr, svc.name, out))
			}
		}
		out, err := nsOutput(ctx, d.NS, l.bins.grpcurl, "-plaintext", "-d", "{}", d.SaruAddr(), "saru.v1.Cluster/GetAssignment")
		if err != nil {
			problems = append(problems, fmt.Sprintf("%s: GetAssignment: %v", d.ID, err))
			continue
		}
		var ga struct {
			Assignment struct {
				Epoch       json.RawMessage   `json:"epoch"`
				BucketCount int               `json:"bucketCount"`
				Ranges      []json.RawMessage `json:"ranges"`
			} `json:"assignment"`
		}
		if err := json.Unmarshal([]byte(out), &ga); err != nil {
			problems = append(problems, fmt.Sprintf("%s: GetAssignment answer is not JSON: %v", d.ID, err))
			continue
		}
		canon, _ := json.Marshal(ga)
		if firstAsg == "" {
			firstAsg, firstEpoch = string(canon), ga.Assignment.Epoch
		} else if string(canon) != firstAsg {
			problems = append(problems, fmt.Sprintf("%s: assignment (epoch %s) differs from %s's (epoch %s)", d.ID, ga.Assignment.Epoch, l.Directors[0].ID, firstEpoch))
		}
		out, err = nsOutput(ctx, d.NS, l.bins.grpcurl, "-plaintext", "-d", fmt.Sprintf(`{"vip":%q,"page_size":5000}`, VIP), d.SyncdAddr(), "syncd.v1.Sync/ListConnections")
		if err != nil {
			problems = append(problems, fmt.Sprintf("%s: ListConnections: %v", d.ID, err))
			continue
		}
		var lc struct {
			Connections []struct {
				ClientAddr  string `json:"clientAddress"`
				ClientPort  uint32 `json:"clientPort"`
				VirtualPort uint32 `json:"virtualPort"`
			} `json:"connections"`
		}
		if err := json.Unmarshal([]byte(out), &lc); err != nil {
			problems = append(problems, fmt.Sprintf("%s: ListConnections answer is not JSON: %v", d.ID, err))
			continue
		}
		var ports []string
		for _, e := range lc.Connections {
			if e.VirtualPort == StreamPort {
				ports = append(ports, fmt.Sprintf("%s:%d", e.ClientAddr, e.ClientPort))
			}
		}
		sort.Strings(ports)
		ports = slices.Compact(ports)
		if firstPorts == nil {
			firstPorts = ports
		} else if !slices.Equal(ports, firstPorts) {
			problems = append(problems, fmt.Sprintf("%s: connection table (%d streams) differs from %s's (%d)", d.ID, len(ports), l.Directors[0].ID, len(firstPorts)))
		}
	}
	if len(firstPorts) < n {
		problems = append(problems, fmt.Sprintf("connection tables list %d of the %d open streams", len(firstPorts), n))
	}
	return problems
}
