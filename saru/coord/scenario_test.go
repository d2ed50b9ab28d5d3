package coord_test

import (
	"flag"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/saru-lb/saru/saru/coord"
	"github.com/saru-lb/saru/saru/partition"
)

var rewrite = flag.Bool("rewrite", false, "rewrite the golden output of testdata/*.txt")

// TestScenarios runs the scripts in testdata: a simulated cluster of cores
// joined by a perfect in-memory network (gossip, assignment streams,
// fetches and filter applies are delivered at once), driven by commands
// and compared with the golden output under each command.
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

type fataler interface {
	Fatal(args ...any)
	Fatalf(format string, args ...any)
}

type simNode struct {
	id        string
	c         *coord.Core
	up        bool
	side      int
	meta      coord.Meta
	published partition.Assignment
	leader    string
	installed []uint32
	instEpoch uint64
	failover  bool
	muted     bool // receives no assignment (gossip still flows)
}

type sim struct {
	cfg     coord.Config
	nodes   map[string]*simNode
	order   []string
	history map[uint64]partition.Assignment
	out     strings.Builder
	log     []string // every command and its output, for a failing property
}

func newSim() *sim {
	return &sim{
		cfg: coord.Config{Weight: 1, Buckets: 64, Seed: 7, JoinDelay: 30, Settle: 2,
			DrainConfirmTimeout: 20, Retry: 5, FastFailover: true},
		nodes:   make(map[string]*simNode),
		history: make(map[uint64]partition.Assignment),
	}
}

func (s *sim) printf(format string, args ...any) { fmt.Fprintf(&s.out, format, args...) }

func (s *sim) connected(a, b *simNode) bool { return a.up && b.up && a.side == b.side && a != b }

func (s *sim) node(t fataler, id string) *simNode {
	n, ok := s.nodes[id]
	if !ok {
		t.Fatalf("unknown director %q", id)
	}
	return n
}

func (s *sim) run(t fataler, line string) string {
	out := s.exec(t, line)
	s.log = append(s.log, "> "+line+"\n"+out)
	return out
}

func (s *sim) exec(t fataler, line string) string {
	s.out.Reset()
	f := strings.Fields(line)
	if len(f) == 0 {
		t.Fatalf("empty command")
	}
	args := f[1:]
	switch f[0] {
	case "add":
		for _, a := range args {
			id, opts, _ := strings.Cut(a, ":")
			cfg := s.cfg
			cfg.ID = id
			cfg.GRPC = id + ":7400"
			for _, o := range strings.Split(opts, ",") {
				k, v, _ := strings.Cut(o, "=")
				n, _ := strconv.Atoi(v)
				switch k {
				case "weight":
					cfg.Weight = n
				case "drained":
					cfg.StartDrained = true
				case "":
				default:
					t.Fatalf("add: unknown option %q", k)
				}
			}
			c, err := coord.New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			side := 0
			if old, ok := s.nodes[id]; ok {
				side = old.side // a restart stays on its side of a partition
			} else {
				s.order = append(s.order, id)
				slices.Sort(s.order)
			}
			n := &simNode{id: id, c: c, up: true, side: side}
			s.nodes[id] = n
			// Memberlist's push-pull tells a newcomer of every live
			// member, foreign ones included.
			for _, fid := range slices.Sorted(maps.Keys(s.nodes)) {
				if f := s.nodes[fid]; f.c == nil && s.connected(n, f) {
					s.alive(n, f.meta)
				}
			}
			s.stabilize(t)
		}
	case "fast":
		s.cfg.FastFailover = args[0] == "on"
	case "join-delay":
		s.cfg.JoinDelay, _ = strconv.Atoi(args[0])
	case "tick":
		k := 1
		if len(args) > 0 {
			k, _ = strconv.Atoi(args[0])
		}
		for range k {
			for _, id := range s.order {
				if n := s.nodes[id]; n.up {
					n.c.Tick()
				}
			}
			s.stabilize(t)
		}
	case "stabilize":
		s.stabilize(t)
	case "mute", "unmute":
		// mute X: X's assignment streams and fetches deliver nothing
		// (its gRPC port is unreachable); gossip still flows.
		s.node(t, args[0]).muted = f[0] == "mute"
		s.stabilize(t)
	case "kill":
		for _, id := range args {
			s.node(t, id).up = false
		}
	case "detect":
		// detect X [by A,B]: failure detection on A and B (default: every
		// live director) declares X dead.
		dead := s.node(t, args[0])
		by := s.order
		if len(args) == 3 && args[1] == "by" {
			by = strings.Split(args[2], ",")
		}
		for _, id := range by {
			if n := s.node(t, id); n.up && n != dead && (!dead.up || n.side != dead.side) {
				n.c.PeerDead(dead.id)
			}
		}
		s.stabilize(t)
	case "partition":
		side := 0
		for _, a := range args {
			if a == "|" {
				side++
				continue
			}
			s.node(t, a).side = side
		}
		for _, a := range s.order {
			for _, b := range s.order {
				na, nb := s.nodes[a], s.nodes[b]
				if a != b && na.up && nb.up && na.side != nb.side {
					na.c.PeerDead(b)
				}
			}
		}
		s.stabilize(t)
	case "heal":
		for _, id := range s.order {
			s.nodes[id].side = 0
		}
		for _, a := range s.order {
			for _, b := range s.order {
				na, nb := s.nodes[a], s.nodes[b]
				if s.connected(na, nb) {
					s.alive(na, nb.meta)
				}
			}
		}
		s.stabilize(t)
	case "sync-ready":
		s.node(t, args[0]).c.SyncReady()
		s.stabilize(t)
	case "confirm":
		// confirm A X: A's syncd holds X's connections.
		s.node(t, args[0]).c.SyncConfirm(args[1], true)
		s.stabilize(t)
	case "drain", "undrain":
		n := s.node(t, args[0])
		var err error
		if f[0] == "drain" {
			err = n.c.Drain()
		} else {
			err = n.c.Undrain()
		}
		if err != nil {
			s.printf("error: %v\n", err)
		}
		s.stabilize(t)
	case "replay":
		// replay X E [from Y]: X receives the assignment of epoch E again,
		// from Y (default: X's leader).
		e, _ := strconv.ParseUint(args[1], 10, 64)
		a, ok := s.history[e]
		if !ok {
			t.Fatalf("replay: no epoch %d", e)
		}
		n := s.node(t, args[0])
		from := n.leader
		if len(args) == 4 && args[2] == "from" {
			from = args[3]
		}
		r := n.c.Receive(from, a)
		s.printf("%s: receive epoch %d: %s\n", args[0], e, orOK(r))
		s.stabilize(t)
	case "announce":
		// announce ID [buckets=N] [seed=S] [epoch=E] [state=S]: a foreign
		// director gossips to every live director. It stays in the
		// simulation (it serves what forge gives it; kill and detect make
		// it leave) but runs no core.
		m := coord.Meta{ID: args[0], Weight: 1, State: partition.Active, GRPC: args[0] + ":7400", Buckets: s.cfg.Buckets, Seed: s.cfg.Seed}
		for _, o := range args[1:] {
			k, v, _ := strings.Cut(o, "=")
			n, _ := strconv.ParseUint(v, 10, 64)
			switch k {
			case "buckets":
				m.Buckets = int(n)
			case "seed":
				m.Seed = uint32(n)
			case "epoch":
				m.Epoch = n
			case "state":
				m.State = parseState(t, v)
			default:
				t.Fatalf("announce: unknown option %q", k)
			}
		}
		if f := s.foreign(m.ID); f.c == nil {
			f.meta, f.up = m, true
		}
		for _, id := range s.order {
			if n := s.nodes[id]; n.up {
				s.printf("%s: %s\n", id, orOK(n.c.PeerAlive(m)))
			}
		}
		s.stabilize(t)
	case "forge":
		// forge ID epoch=E owners=A,B [standby=S]: director ID sends an
		// assignment of epoch E whose buckets go to A, B, ... in turn ("-":
		// no owner), each with standby S; the other directors are listed
		// joining. It reaches every live director, as a stream message or
		// a fetch answer would; a foreign ID serves it from then on.
		a := s.forge(t, args[0], args[1:])
		f := s.foreign(args[0])
		if f.c == nil {
			f.published = a
		}
		for _, id := range s.order {
			if n := s.nodes[id]; n.up {
				s.printf("%s: receive epoch %d from %s: %s\n", id, a.Epoch, f.id, orOK(n.c.Receive(f.id, a)))
			}
		}
		s.stabilize(t)
	case "print":
		s.print()
	case "buckets":
		n := s.node(t, args[0])
		a := n.c.Assignment()
		s.printf("epoch %d\n", a.Epoch)
		for _, r := range a.Ranges() {
			s.printf("%d-%d %s standby %s\n", r.First, r.Last, or(r.Owner, "-"), or(r.Standby, "-"))
		}
	case "check":
		s.check()
	default:
		t.Fatalf("unknown command %q", f[0])
	}
	return s.out.String()
}

// foreign returns the simulated director id that runs no core (announced
// or forged), adding it if needed.
func (s *sim) foreign(id string) *simNode {
	n, ok := s.nodes[id]
	if !ok {
		n = &simNode{id: id, up: true}
		s.nodes[id] = n
	}
	return n
}

func (s *sim) forge(t fataler, id string, opts []string) partition.Assignment {
	var epoch uint64
	var owners []string
	standby := ""
	for _, o := range opts {
		k, v, _ := strings.Cut(o, "=")
		switch k {
		case "epoch":
			epoch, _ = strconv.ParseUint(v, 10, 64)
		case "owners":
			owners = strings.Split(v, ",")
		case "standby":
			standby = v
		default:
			t.Fatalf("forge: unknown option %q", k)
		}
	}
	if len(owners) == 0 {
		t.Fatalf("forge: no owners")
	}
	active := map[string]bool{}
	for _, o := range append(slices.Clone(owners), standby) {
		if o != "-" && o != "" {
			active[o] = true
		}
	}
	var members []partition.Member
	for _, mid := range append(slices.Clone(s.order), id) {
		if !active[mid] && !slices.ContainsFunc(members, func(m partition.Member) bool { return m.ID == mid }) {
			members = append(members, partition.Member{ID: mid, Weight: 1, State: partition.Joining})
		}
	}
	for o := range active {
		members = append(members, partition.Member{ID: o, Weight: 1, State: partition.Active})
	}
	slices.SortFunc(members, func(a, b partition.Member) int { return strings.Compare(a.ID, b.ID) })
	a, err := partition.Empty(s.cfg.Buckets)
	if err != nil {
		t.Fatal(err)
	}
	a.Epoch, a.Members = epoch, members
	for b := range a.Owners {
		if o := owners[b%len(owners)]; o != "-" {
			a.Owners[b] = o
			if standby != o {
				a.Standbys[b] = standby
			}
		}
	}
	return a
}

func parseState(t fataler, s string) partition.State {
	for _, st := range []partition.State{partition.Active, partition.Joining, partition.Draining} {
		if st.String() == s {
			return st
		}
	}
	t.Fatalf("unknown state %q", s)
	return 0
}

func orOK(r coord.Reason) string { return or(string(r), "accepted") }

func or(s, d string) string {
	if s == "" {
		return d
	}
	return s
}

func (s *sim) alive(n *simNode, m coord.Meta) {
	if m.ID == "" {
		return
	}
	if r := n.c.PeerAlive(m); r != "" {
		s.printf("%s: refused %s: %s\n", n.id, m.ID, r)
	}
}

// stabilize delivers every node's output until nothing changes.
func (s *sim) stabilize(t fataler) {
	for round := 0; ; round++ {
		if round > 1000 {
			t.Fatal("no stable state after 1000 rounds")
		}
		changed := false
		for _, id := range s.order {
			n := s.nodes[id]
			if !n.up {
				continue
			}
			rd := n.c.Ready()
			if rd.Empty() {
				continue
			}
			changed = true
			for _, e := range rd.Events {
				s.printf("%s: %s: %s\n", id, e.Reason, e.Detail)
			}
			if rd.Meta != nil {
				first := n.meta.ID == ""
				n.meta = *rd.Meta
				for _, oid := range s.order {
					o := s.nodes[oid]
					if s.connected(n, o) {
						s.alive(o, n.meta)
						if first {
							s.alive(n, o.meta)
						}
					}
				}
			}
			if rd.Publish != nil {
				n.published = *rd.Publish
				if _, ok := s.history[n.published.Epoch]; !ok {
					s.history[n.published.Epoch] = n.published
				}
				for _, oid := range s.order {
					if o := s.nodes[oid]; s.connected(n, o) && o.leader == id && !o.muted {
						o.c.Receive(id, n.published)
					}
				}
			}
			if rd.Leader != nil {
				n.leader = rd.Leader.ID
				if l := s.nodes[n.leader]; s.connected(n, l) && !n.muted {
					n.c.Receive(l.id, l.published)
				}
			}
			if rd.Fetch != "" {
				if o := s.nodes[rd.Fetch]; s.connected(n, o) && !n.muted {
					s.printf("%s: fetch epoch %d from %s\n", id, o.published.Epoch, o.id)
					n.c.Receive(o.id, o.published)
				}
			}
			if rd.Apply != nil {
				n.installed, n.instEpoch, n.failover = rd.Apply.Owned, rd.Apply.Epoch, rd.Apply.Failover
				n.c.Applied(rd.Apply.Seq)
			}
		}
		if !changed {
			return
		}
	}
}

func (s *sim) print() {
	for _, id := range s.order {
		n := s.nodes[id]
		if !n.up {
			s.printf("%s down\n", id)
			continue
		}
		m := n.c.Self()
		fo := ""
		if n.failover {
			fo = " (standby takeover)"
		}
		s.printf("%s %s side=%d leader=%s epoch=%d applied=%d owned=%d%s\n", id, m.State, n.side, n.c.LeaderID(), m.Epoch, m.Applied, len(n.installed), fo)
	}
}

// check reports, per network side, whether the live directors' installed
// bucket sets cover every bucket exactly once.
func (s *sim) check() {
	sides := map[int][]*simNode{}
	for _, id := range s.order {
		if n := s.nodes[id]; n.up {
			sides[n.side] = append(sides[n.side], n)
		}
	}
	for side := 0; side < len(s.order); side++ {
		ns, ok := sides[side]
		if !ok {
			continue
		}
		count := make([]int, s.cfg.Buckets)
		for _, n := range ns {
			for _, b := range n.installed {
				count[b]++
			}
		}
		var none, dup int
		for _, c := range count {
			switch {
			case c == 0:
				none++
			case c > 1:
				dup++
			}
		}
		if none == 0 && dup == 0 {
			s.printf("side %d: every bucket owned exactly once\n", side)
		} else {
			s.printf("side %d: %d buckets unowned, %d owned twice\n", side, none, dup)
		}
	}
}
