package mesh_test

import (
	"flag"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/saru-lb/saru/syncd/conn"
	"github.com/saru-lb/saru/syncd/mesh"
	"github.com/saru-lb/saru/syncd/reliable"
	"github.com/saru-lb/saru/syncd/table"
	"github.com/saru-lb/saru/syncd/wire"
)

var rewrite = flag.Bool("rewrite", false, "rewrite the golden output of testdata/*.txt")

// TestScenarios runs the scripts in testdata: a simulated mesh of cores
// joined by an in-memory multicast network with seeded loss, delay and
// reordering, and pulls served at once from the peer's table, driven by
// commands and compared with the golden output under each command.
//
// Commands:
//
//	set KEY VALUE          loss (percent), delay, jitter, ring, window,
//	                       refresh, snapshot-wait, seed; before add for
//	                       the core's settings
//	add ID...              start cores
//	export ID N            the core's backend exports N new entries
//	update ID N            ... and changes the state of its first N
//	run DURATION           let simulated time pass
//	down ID / up ID        cut a core off the network, or reconnect it
//	restart ID             replace a core by a new incarnation
//	step ID DURATION       step a core's wall clock
//	replay FROM TO         deliver FROM's last data datagram to TO again
//	record ID              keep the core's last data datagram, for replay-old
//	replay-old FROM TO     deliver the one kept (by record, or by restart:
//	                       the last one of the previous run) to TO again
//	forge FROM TO          ... with one byte flipped
//	fail-pulls on|off      pulls fail (the peer's API is unreachable)
//	print                  each core's table and state
//	stats ID               a core's counters
//	check                  whether the up cores hold the same table
func TestScenarios(t *testing.T) {
	files, err := filepath.Glob("testdata/*.txt")
	if err != nil || len(files) == 0 {
		t.Fatalf("no scenarios: %v", err)
	}
	for _, f := range files {
		t.Run(strings.TrimSuffix(filepath.Base(f), ".txt"), func(t *testing.T) {
			runScript(t, f)
		})
	}
}

type block struct {
	pre  []string
	cmd  string
	want string
}

func parseScript(t *testing.T, path string) []block {
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []block
	var cur *block
	var pre []string
	for _, line := range strings.Split(string(raw), "\n") {
		switch {
		case strings.HasPrefix(line, "> "):
			out = append(out, block{pre: pre, cmd: strings.TrimPrefix(line, "> ")})
			cur, pre = &out[len(out)-1], nil
		case strings.HasPrefix(line, "#") || (line == "" && (cur == nil || cur.want == "")):
			if cur != nil && line != "" {
				cur = nil
			}
			if line != "" || len(pre) > 0 {
				pre = append(pre, line)
			}
		case line == "":
			cur = nil
		case cur != nil:
			cur.want += line + "\n"
		default:
			pre = append(pre, line)
		}
	}
	return out
}

func runScript(t *testing.T, path string) {
	blocks := parseScript(t, path)
	s := newSim()
	var b strings.Builder
	failed := false
	for i, bl := range blocks {
		got := s.run(t, bl.cmd)
		for _, p := range bl.pre {
			b.WriteString(p + "\n")
		}
		b.WriteString("> " + bl.cmd + "\n" + got + "\n")
		if !*rewrite && got != bl.want {
			t.Errorf("%s: command %d %q:\ngot:\n%swant:\n%s", path, i+1, bl.cmd, got, bl.want)
			failed = true
		}
	}
	if *rewrite {
		if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	} else if failed {
		t.Log("run with -rewrite to accept the new output")
	}
}

var keys = []wire.Key{{ID: 1, Secret: []byte("scenario-key-0123456789abcdef")}}

// tickMin is the simulated daemon's shortest interval between ticks (its
// Tick setting).
const tickMin = time.Millisecond

type simNode struct {
	id      string
	num     int // position in add order: the entries' client network
	m       *mesh.Mesh
	addr    netip.AddrPort
	up      bool
	wallOff time.Duration
	due     time.Duration
	// backend is what the core imported into the local backend.
	backend  map[conn.Key]conn.Entry
	exported int
	lastData []byte
	oldData  []byte // kept by record, or lastData of the previous run
	inc      uint64 // the incarnation, as the daemon keeps it across runs
	drops    map[mesh.Reason]int
}

type datagram struct {
	at       time.Duration
	n        int // send order, to break ties
	from, to string
	src      netip.AddrPort
	dg       []byte
}

type pendingPull struct {
	at   time.Duration
	node string
	pull mesh.Pull
}

type sim struct {
	now     time.Duration
	wall0   time.Time
	nodes   map[string]*simNode
	order   []string
	rng     *rand.Rand
	loss    float64
	delay   time.Duration
	jitter  time.Duration
	cfg     mesh.Config
	net     []datagram
	pulls   []pendingPull
	sent    int
	failPul bool
	opener  *wire.Sealer
	out     strings.Builder
}

func newSim() *sim {
	kr, err := wire.NewKeyring(keys)
	if err != nil {
		panic(err)
	}
	return &sim{
		wall0: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC),
		nodes: map[string]*simNode{},
		rng:   rand.New(rand.NewPCG(1, 2)),
		delay: 200 * time.Microsecond,
		cfg: mesh.Config{Budget: 1200, Heartbeat: 100 * time.Millisecond, Flush: time.Millisecond,
			Refresh: time.Hour, Expire: time.Hour, SnapshotWait: 500 * time.Millisecond},
		opener: wire.NewSealer(kr),
	}
}

func (s *sim) printf(format string, args ...any) { fmt.Fprintf(&s.out, format, args...) }

func (s *sim) time(n *simNode) mesh.Time {
	return mesh.Time{Mono: s.now, Wall: s.wall0.Add(s.now + n.wallOff)}
}

func (s *sim) node(t *testing.T, id string) *simNode {
	n, ok := s.nodes[id]
	if !ok {
		t.Fatalf("unknown core %q", id)
	}
	return n
}

func (s *sim) start(t *testing.T, n *simNode) {
	cfg := s.cfg
	cfg.ID, cfg.Advertise = n.id, n.id+":7401"
	cfg.Incarnation = mesh.NextIncarnation(n.inc, s.time(n).Wall)
	n.inc = cfg.Incarnation
	m, err := mesh.New(cfg, keys, s.time(n))
	if err != nil {
		t.Fatal(err)
	}
	n.m, n.up, n.due = m, true, s.now+tickMin
}

func (s *sim) run(t *testing.T, cmd string) string {
	s.out.Reset()
	f := strings.Fields(cmd)
	args := f[1:]
	dur := func(a string) time.Duration {
		d, err := time.ParseDuration(a)
		if err != nil {
			t.Fatalf("%s: %v", cmd, err)
		}
		return d
	}
	num := func(a string) int {
		v, err := strconv.Atoi(a)
		if err != nil {
			t.Fatalf("%s: %v", cmd, err)
		}
		return v
	}
	switch f[0] {
	case "set":
		switch args[0] {
		case "loss":
			s.loss = float64(num(args[1])) / 100
		case "delay":
			s.delay = dur(args[1])
		case "jitter":
			s.jitter = dur(args[1])
		case "ring":
			s.cfg.Reliable.RingSize = num(args[1])
		case "window":
			s.cfg.Reliable.Window = uint64(num(args[1]))
		case "refresh":
			s.cfg.Refresh = dur(args[1])
		case "snapshot-wait":
			s.cfg.SnapshotWait = dur(args[1])
		case "seed":
			s.rng = rand.New(rand.NewPCG(uint64(num(args[1])), 2))
		default:
			t.Fatalf("unknown setting %q", args[0])
		}
	case "add":
		for _, id := range args {
			n := &simNode{id: id, num: len(s.order) + 1, backend: map[conn.Key]conn.Entry{}, drops: map[mesh.Reason]int{},
				addr: netip.AddrPortFrom(netip.AddrFrom4([4]byte{192, 0, 2, byte(len(s.order) + 1)}), 8848)}
			s.nodes[id] = n
			s.order = append(s.order, id)
			s.start(t, n)
		}
	case "export", "update":
		n := s.node(t, args[0])
		k := num(args[1])
		es := make([]conn.Entry, 0, k)
		for i := range k {
			if f[0] == "export" {
				es = append(es, entry(n.num, n.exported+i, 1))
			} else {
				es = append(es, entry(n.num, i, 2))
			}
		}
		if f[0] == "export" {
			n.exported += k
		}
		n.m.Export(es, s.time(n))
		s.handle(n, n.m.Ready(), false)
	case "run":
		s.advance(dur(args[0]))
	case "down", "up":
		s.node(t, args[0]).up = f[0] == "up"
	case "restart":
		n := s.node(t, args[0])
		n.oldData = n.lastData
		s.start(t, n)
	case "step":
		n := s.node(t, args[0])
		n.wallOff += dur(args[1])
	case "record":
		n := s.node(t, args[0])
		n.oldData = n.lastData
	case "replay", "replay-old", "forge":
		from, to := s.node(t, args[0]), s.node(t, args[1])
		dg := slices.Clone(from.lastData)
		if f[0] == "replay-old" {
			dg = slices.Clone(from.oldData)
		}
		if dg == nil {
			t.Fatalf("%s sent no data packet", from.id)
		}
		if f[0] == "forge" {
			dg[len(dg)/2] ^= 1
		}
		to.m.Receive(dg, from.addr, s.time(to))
		s.handle(to, to.m.Ready(), false)
		s.printDrops()
	case "fail-pulls":
		s.failPul = args[0] == "on"
	case "print":
		for _, id := range s.order {
			s.print(s.nodes[id])
		}
	case "stats":
		s.stats(s.node(t, args[0]))
	case "check":
		s.check()
	default:
		t.Fatalf("unknown command %q", cmd)
	}
	return s.out.String()
}

// entry is the i-th connection of the core numbered origin.
func entry(origin, i int, state uint16) conn.Entry {
	return conn.Entry{
		Protocol:    conn.ProtoTCP,
		ClientAddr:  netip.AddrFrom4([4]byte{10, byte(origin), byte(i >> 8), byte(i)}),
		ClientPort:  uint16(40000 + i),
		VirtualAddr: netip.MustParseAddr("198.51.100.10"), VirtualPort: 443,
		DestAddr: netip.AddrFrom4([4]byte{10, 0, 1, byte(1 + i%20)}), DestPort: 8443,
		Flags: conn.FlagMasq, State: state, Timeout: 900,
	}
}

// handle carries out a core's Ready the way the daemon does.
func (s *sim) handle(n *simNode, rd mesh.Ready, fromTick bool) {
	for _, dg := range rd.Send {
		if h, _, handled, r := s.opener.OpenData(slices.Clone(dg), s.time(n).Wall, nil); r == wire.OK && handled && h.Sequence != 0 && !h.Retransmit {
			n.lastData = slices.Clone(dg)
		}
		for _, id := range s.order {
			o := s.nodes[id]
			if o == n {
				continue
			}
			// Loss is drawn for every link (multicast reaches each
			// receiver or not on its own).
			lost := s.loss > 0 && s.rng.Float64() < s.loss
			d := s.delay
			if s.jitter > 0 {
				d += time.Duration(s.rng.Int64N(int64(s.jitter)))
			}
			s.sent++
			if lost || !n.up || !o.up {
				continue
			}
			s.net = append(s.net, datagram{at: s.now + d, n: s.sent, from: n.id, to: o.id, src: n.addr, dg: slices.Clone(dg)})
		}
	}
	for _, e := range rd.Import {
		n.backend[e.Key()] = e
	}
	for _, p := range rd.Pulls {
		s.pulls = append(s.pulls, pendingPull{at: s.now + time.Millisecond, node: n.id, pull: p})
	}
	for _, e := range rd.Events {
		if e.Reason.Drop() {
			n.drops[e.Reason]++
			continue
		}
		line := fmt.Sprintf("%s: %s", n.id, e.Reason)
		if e.Peer != "" {
			line += " " + e.Peer
		}
		if e.Entries > 0 {
			line += fmt.Sprintf(" (%d entries)", e.Entries)
		}
		if e.Err != nil {
			line += ": " + e.Err.Error()
		}
		s.printf("%s at %v\n", line, s.now.Truncate(time.Microsecond))
	}
	switch {
	case fromTick:
		n.due = max(rd.NextTick, s.now+tickMin)
	case rd.HasTick:
		n.due = min(n.due, s.now+tickMin)
	}
}

// advance runs the simulation for d: deliveries, pulls and ticks in time
// order.
func (s *sim) advance(d time.Duration) {
	end := s.now + d
	for {
		next := end + 1
		for _, dg := range s.net {
			next = min(next, dg.at)
		}
		for _, p := range s.pulls {
			next = min(next, p.at)
		}
		for _, id := range s.order {
			next = min(next, s.nodes[id].due)
		}
		if next > end {
			break
		}
		s.now = max(s.now, next)
		sort.SliceStable(s.net, func(i, j int) bool {
			if s.net[i].at != s.net[j].at {
				return s.net[i].at < s.net[j].at
			}
			return s.net[i].n < s.net[j].n
		})
		for len(s.net) > 0 && s.net[0].at <= s.now {
			dg := s.net[0]
			s.net = s.net[1:]
			to := s.nodes[dg.to]
			if !to.up || !s.nodes[dg.from].up {
				continue
			}
			to.m.Receive(dg.dg, dg.src, s.time(to))
			s.handle(to, to.m.Ready(), false)
		}
		var later []pendingPull
		due := s.pulls
		s.pulls = nil
		for _, p := range due {
			if p.at > s.now {
				later = append(later, p)
				continue
			}
			s.pull(p)
		}
		s.pulls = append(later, s.pulls...)
		for _, id := range s.order {
			n := s.nodes[id]
			if n.due <= s.now {
				n.m.Tick(s.time(n))
				s.handle(n, n.m.Ready(), true)
			}
		}
	}
	s.now = end
	s.printDrops()
}

// pull serves a pull from the addressed core's table at once.
func (s *sim) pull(p pendingPull) {
	n := s.nodes[p.node]
	var src *simNode
	for _, id := range s.order {
		if s.nodes[id].id+":7401" == p.pull.Addr {
			src = s.nodes[id]
		}
	}
	if src == nil || !src.up || !n.up || s.failPul {
		n.m.PullDone(p.pull, 0, fmt.Errorf("pull from %s: unreachable", p.pull.Addr), s.time(n))
		s.handle(n, n.m.Ready(), false)
		return
	}
	src.m.ServeStart(s.time(src))
	es, _ := src.m.Scan(0, 1<<30, table.Filter{Origin: p.pull.Origin}, s.time(src), nil)
	src.m.ServeDone()
	n.m.PullChunk(es, uint64(len(es)), s.time(n))
	s.handle(n, n.m.Ready(), false)
	n.m.PullDone(p.pull, uint64(len(es)), nil, s.time(n))
	s.handle(n, n.m.Ready(), false)
}

func (s *sim) printDrops() {
	for _, id := range s.order {
		n := s.nodes[id]
		if len(n.drops) == 0 {
			continue
		}
		var parts []string
		for r, c := range n.drops {
			parts = append(parts, fmt.Sprintf("%s=%d", r, c))
		}
		sort.Strings(parts)
		s.printf("%s: dropped %s\n", id, strings.Join(parts, " "))
		clear(n.drops)
	}
}

// table lists a core's entries in key order.
func (s *sim) entries(n *simNode) []conn.Entry {
	es, _ := n.m.Scan(0, 1<<30, table.Filter{}, s.time(n), nil)
	slices.SortFunc(es, func(a, b conn.Entry) int { return strings.Compare(fmt.Sprint(a.Key()), fmt.Sprint(b.Key())) })
	return es
}

// digest sums what every replica must agree on: key, origin, version,
// state and real server.
func digest(es []conn.Entry) string {
	h := fnv.New32a()
	for _, e := range es {
		fmt.Fprintf(h, "%v|%s|%d|%d|%v\n", e.Key(), e.Origin, e.Version, e.State, e.DestAddr)
	}
	return fmt.Sprintf("%08x", h.Sum32())
}

func (s *sim) print(n *simNode) {
	if n.m == nil {
		return
	}
	st := n.m.Status(s.time(n))
	es := s.entries(n)
	by := map[string]int{}
	states := map[uint16]int{}
	for _, e := range es {
		by[e.Origin]++
		states[e.State]++
	}
	var origins []string
	for _, id := range s.order {
		if by[id] > 0 {
			origins = append(origins, fmt.Sprintf("%s=%d", id, by[id]))
		}
	}
	up := "up"
	if !n.up {
		up = "down"
	}
	s.printf("%s %s %s entries=%d [%s] updated=%d imported=%d digest=%s\n", n.id, up,
		strings.TrimPrefix(strings.ToLower(st.SnapshotState.String()), "snapshot_state_"),
		len(es), strings.Join(origins, " "), states[2], len(n.backend), digest(es))
}

func (s *sim) stats(n *simNode) {
	c := n.m.Counters(s.time(n))
	s.printf("%s sent data=%d control=%d retransmit=%d nacked-gone=%d\n", n.id, c.SentData, c.SentControl, c.SentRetransmit, c.NackedGone)
	var rej []string
	for r, v := range c.Rejected {
		rej = append(rej, fmt.Sprintf("%s=%d", r, v))
	}
	sort.Strings(rej)
	if len(rej) > 0 {
		s.printf("%s rejected %s\n", n.id, strings.Join(rej, " "))
	}
	for _, p := range c.Peers {
		var replay []string
		for _, v := range []reliable.Verdict{reliable.Duplicate, reliable.TooOld, reliable.StaleIncarnation} {
			if x := p.Replay[v.String()]; x > 0 {
				replay = append(replay, fmt.Sprintf("%s=%d", v, x))
			}
		}
		ps := n.m.Stats(p.ID, s.time(n)).Peers[0]
		s.printf("  from %s: packets=%d entries=%d retransmitted=%d lost=%d missing=%d snapshots=%d caught-up=%v auth=%d replay=[%s]\n",
			p.ID, p.Accepted, p.Entries, p.Retransmits, p.Lost, p.Missing, ps.Snapshots, ps.CaughtUp, p.Auth, strings.Join(replay, " "))
	}
}

// check compares the up cores' tables with what was exported.
func (s *sim) check() {
	want := 0
	for _, id := range s.order {
		want += s.nodes[id].exported
	}
	var ref string
	ok := true
	var ups []string
	for _, id := range s.order {
		n := s.nodes[id]
		if !n.up {
			continue
		}
		ups = append(ups, id)
		es := s.entries(n)
		d := digest(es)
		if ref == "" {
			ref = d
		}
		if len(es) != want || d != ref {
			s.printf("%s differs: %d entries of %d, digest %s\n", id, len(es), want, d)
			ok = false
		}
	}
	if ok {
		s.printf("converged: %s hold the same %d entries\n", strings.Join(ups, " "), want)
	}
}
