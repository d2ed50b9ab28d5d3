package services

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/saru-lb/saru/filter/bucket"

	"pgregory.net/rapid"

	"github.com/saru-lb/saru/saru/ipvs"
)

// fakeKernel is an in-memory IPVS table with the kernel's refusals
// (duplicates, missing objects), plus an injectable refusal.
type fakeKernel struct {
	table  index
	refuse func(kind OpKind, id ipvs.ServiceID, d ipvs.Destination) error
	calls  int
}

func newFakeKernel(es []ipvs.Entry) *fakeKernel { return &fakeKernel{table: indexTable(es)} }

func (f *fakeKernel) List(context.Context) ([]ipvs.Entry, error) {
	var out []ipvs.Entry
	for _, k := range f.table.keys() {
		in := f.table[k]
		e := ipvs.Entry{Service: in.svc}
		e.Service.Flags |= ipvs.FlagHashed // as the kernel reports
		for _, a := range sortedAddrs(in.dests) {
			e.Destinations = append(e.Destinations, in.dests[a])
		}
		out = append(out, e)
	}
	return out, nil
}

func (f *fakeKernel) do(kind OpKind, id ipvs.ServiceID, d ipvs.Destination, fn func() error) error {
	f.calls++
	if f.refuse != nil {
		if err := f.refuse(kind, id, d); err != nil {
			return err
		}
	}
	return fn()
}

var errExists, errMissing = errors.New("file exists"), errors.New("no such process")

func (f *fakeKernel) NewService(_ context.Context, s ipvs.Service) error {
	return f.do(CreateService, s.ServiceID, ipvs.Destination{}, func() error {
		if _, ok := f.table[s.Key()]; ok {
			return errExists
		}
		f.table[s.Key()] = &indexed{svc: s, dests: map[netip.AddrPort]ipvs.Destination{}}
		return nil
	})
}

func (f *fakeKernel) UpdateService(_ context.Context, s ipvs.Service) error {
	return f.do(UpdateService, s.ServiceID, ipvs.Destination{}, func() error {
		in, ok := f.table[s.Key()]
		if !ok {
			return errMissing
		}
		in.svc = s
		return nil
	})
}

func (f *fakeKernel) DeleteService(_ context.Context, id ipvs.ServiceID) error {
	return f.do(DeleteService, id, ipvs.Destination{}, func() error {
		if _, ok := f.table[id.Key()]; !ok {
			return errMissing
		}
		delete(f.table, id.Key())
		return nil
	})
}

func (f *fakeKernel) dest(kind OpKind, id ipvs.ServiceID, d ipvs.Destination) error {
	return f.do(kind, id, d, func() error {
		in, ok := f.table[id.Key()]
		if !ok {
			return errMissing
		}
		_, has := in.dests[d.Address]
		switch {
		case kind == CreateDestination && has:
			return errExists
		case kind != CreateDestination && !has:
			return errMissing
		case kind == DeleteDestination:
			delete(in.dests, d.Address)
		default:
			in.dests[d.Address] = d
		}
		return nil
	})
}

func (f *fakeKernel) NewDestination(_ context.Context, id ipvs.ServiceID, d ipvs.Destination) error {
	return f.dest(CreateDestination, id, d)
}
func (f *fakeKernel) UpdateDestination(_ context.Context, id ipvs.ServiceID, d ipvs.Destination) error {
	return f.dest(UpdateDestination, id, d)
}
func (f *fakeKernel) DeleteDestination(_ context.Context, id ipvs.ServiceID, d ipvs.Destination) error {
	return f.dest(DeleteDestination, id, d)
}

// genTable draws a valid IPVS table from small pools, so that desired and
// current tables overlap.
func genTable(t *rapid.T, label string) []ipvs.Entry {
	ids := []ipvs.ServiceID{
		{Protocol: bucket.TCP, Address: netip.MustParseAddrPort("10.0.0.1:80")},
		{Protocol: bucket.UDP, Address: netip.MustParseAddrPort("10.0.0.1:80")},
		{Protocol: bucket.TCP, Address: netip.MustParseAddrPort("10.0.0.2:443")},
		{Protocol: bucket.TCP, Address: netip.MustParseAddrPort("[2001:db8::1]:80")},
		{Family: ipvs.FamilyIPv4, FWMark: 5},
	}
	v4 := []string{"10.0.1.1:80", "10.0.1.2:80", "10.0.1.3:8080", "10.0.1.4:80"}
	v6 := []string{"[2001:db8::a]:80", "[2001:db8::b]:80", "[2001:db8::c]:80"}
	chosen := rapid.SliceOfNDistinct(rapid.IntRange(0, len(ids)-1), 0, len(ids), rapid.ID[int]).Draw(t, label+"-services")
	var es []ipvs.Entry
	for _, i := range chosen {
		id := ids[i]
		s := ipvs.Service{
			ServiceID: id,
			Scheduler: rapid.SampledFrom([]string{"wlc", "rr", "sh"}).Draw(t, label+"-sched"),
			Timeout:   rapid.SampledFrom([]uint32{0, 300}).Draw(t, label+"-timeout"),
		}
		s.NetmaskBits = 32
		if id.Key().Family == ipvs.FamilyIPv6 {
			s.NetmaskBits = 128
		}
		if s.Timeout != 0 {
			s.Flags |= ipvs.FlagPersistent
		}
		pool := v4
		if id.Key().Family == ipvs.FamilyIPv6 {
			pool = v6
		}
		addrs := rapid.SliceOfNDistinct(rapid.SampledFrom(pool), 0, len(pool), rapid.ID[string]).Draw(t, label+"-dests")
		e := ipvs.Entry{Service: s}
		for _, a := range addrs {
			e.Destinations = append(e.Destinations, ipvs.Destination{
				Address: netip.MustParseAddrPort(a),
				Forward: rapid.SampledFrom([]ipvs.ForwardMethod{ipvs.ForwardMasq, ipvs.ForwardRoute}).Draw(t, label+"-fwd"),
				Weight:  rapid.Int32Range(0, 3).Draw(t, label+"-weight"),
			})
		}
		es = append(es, e)
	}
	sortEntries(es)
	return es
}

// naiveChanges counts the differences between two tables the slow way.
func naiveChanges(desired, current []ipvs.Entry) int {
	n := 0
	find := func(es []ipvs.Entry, id ipvs.ServiceID) *ipvs.Entry {
		for i := range es {
			if es[i].Service.Key() == id.Key() {
				return &es[i]
			}
		}
		return nil
	}
	for _, d := range desired {
		c := find(current, d.Service.ServiceID)
		if c == nil {
			n += 1 + len(d.Destinations)
			continue
		}
		if d.Service.Scheduler != c.Service.Scheduler || d.Service.Timeout != c.Service.Timeout ||
			d.Service.Flags&^ipvs.FlagHashed != c.Service.Flags&^ipvs.FlagHashed || d.Service.NetmaskBits != c.Service.NetmaskBits {
			n++
		}
		for _, dd := range d.Destinations {
			found := false
			for _, cd := range c.Destinations {
				if cd.Address == dd.Address {
					found = true
					if cd.Weight != dd.Weight || cd.Forward != dd.Forward {
						n++
					}
				}
			}
			if !found {
				n++
			}
		}
		for _, cd := range c.Destinations {
			found := false
			for _, dd := range d.Destinations {
				found = found || cd.Address == dd.Address
			}
			if !found {
				n++
			}
		}
	}
	for _, c := range current {
		if find(desired, c.Service.ServiceID) == nil {
			n++
		}
	}
	return n
}

// ownerOf is a reconciler that created every service of current, as its
// record would say.
func ownerOf(current []ipvs.Entry, k Kernel) *Reconciler {
	r := &Reconciler{Kernel: k, loaded: true}
	for _, e := range current {
		r.owned = append(r.owned, e.Service.ServiceID)
	}
	return r
}

func TestReconcileProperties(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		desired, current := genTable(t, "desired"), genTable(t, "current")
		ops := Diff(desired, current)
		if got, want := len(ops), naiveChanges(desired, current); got != want {
			t.Fatalf("Diff gave %d operations, the naive count is %d: %v", got, want, ops)
		}
		// Order: a service's destinations never precede its creation, and
		// service deletions come last.
		created := map[ipvs.ServiceID]bool{}
		seenDelete := false
		for _, o := range ops {
			switch o.Kind {
			case CreateService:
				created[o.Service.Key()] = true
			case DeleteService:
				seenDelete = true
				continue
			case CreateDestination:
				if !created[o.Service.Key()] && indexTable(current)[o.Service.Key()] == nil {
					t.Fatalf("%s before its service exists", o)
				}
			}
			if seenDelete {
				t.Fatalf("%s after a service deletion", o)
			}
		}
		result, err := Check(current, ops)
		if err != nil {
			t.Fatalf("plan does not check: %v", err)
		}
		if again := Diff(desired, result); len(again) != 0 {
			t.Fatalf("applied plan leaves differences: %v", again)
		}
		// Through the applier, against a stateful kernel, by a reconciler
		// that created everything in it (so nothing is foreign).
		k := newFakeKernel(current)
		r := ownerOf(current, k)
		applied, err := r.Reconcile(context.Background(), desired)
		if err != nil {
			t.Fatal(err)
		}
		if len(applied.Ops) != len(ops) || len(applied.Foreign) != 0 {
			t.Fatalf("Reconcile ran %d operations, Diff planned %d; foreign %v", len(applied.Ops), len(ops), applied.Foreign)
		}
		if got, _ := k.List(context.Background()); len(Diff(desired, got)) != 0 {
			t.Fatalf("kernel differs from desired after reconciling: %v", Diff(desired, got))
		}
		again, err := r.Reconcile(context.Background(), desired)
		if err != nil || len(again.Ops) != 0 {
			t.Fatalf("second reconciliation ran %v, %v; want nothing (idempotent)", again.Ops, err)
		}
		if len(Diff(desired, desired)) != 0 {
			t.Fatal("a table differs from itself")
		}
	})
}

func TestDiffOrder(t *testing.T) {
	web := ipvs.ServiceID{Protocol: bucket.TCP, Address: netip.MustParseAddrPort("10.0.0.1:80")}
	old := ipvs.ServiceID{Protocol: bucket.TCP, Address: netip.MustParseAddrPort("10.0.0.9:80")}
	dst := func(a string, w int32) ipvs.Destination {
		return ipvs.Destination{Address: netip.MustParseAddrPort(a), Weight: w, Forward: ipvs.ForwardRoute}
	}
	current := []ipvs.Entry{
		{Service: ipvs.Service{ServiceID: web, Scheduler: "wlc", NetmaskBits: 32}, Destinations: []ipvs.Destination{dst("10.0.1.1:80", 1), dst("10.0.1.2:80", 1)}},
		{Service: ipvs.Service{ServiceID: old, Scheduler: "wlc", NetmaskBits: 32}, Destinations: []ipvs.Destination{dst("10.0.1.1:80", 1)}},
	}
	desired := []ipvs.Entry{
		{Service: ipvs.Service{ServiceID: web, Scheduler: "rr", NetmaskBits: 32}, Destinations: []ipvs.Destination{dst("10.0.1.2:80", 0), dst("10.0.1.3:80", 1)}},
	}
	var got []string
	for _, o := range Diff(desired, current) {
		got = append(got, o.String())
	}
	want := []string{
		"update service tcp 10.0.0.1:80",
		"create destination 10.0.1.3:80 of service tcp 10.0.0.1:80",
		"update destination 10.0.1.2:80 of service tcp 10.0.0.1:80",
		"delete destination 10.0.1.1:80 of service tcp 10.0.0.1:80",
		"delete service tcp 10.0.0.9:80",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("ops:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestApplyValidatesBeforeTouchingTheKernel(t *testing.T) {
	web := ipvs.Service{ServiceID: ipvs.ServiceID{Protocol: bucket.TCP, Address: netip.MustParseAddrPort("10.0.0.1:80")}, Scheduler: "wlc"}
	missing := ipvs.Service{ServiceID: ipvs.ServiceID{Protocol: bucket.TCP, Address: netip.MustParseAddrPort("10.0.0.2:80")}, Scheduler: "wlc"}
	rs := ipvs.Destination{Address: netip.MustParseAddrPort("10.0.1.1:80"), Weight: 1}
	for _, tc := range []struct {
		name string
		ops  []Op
		want string
	}{
		{"destination for a missing service", []Op{
			{Kind: CreateService, Service: web},
			{Kind: CreateDestination, Service: missing, Destination: rs},
		}, "operation 2 (create destination 10.0.1.1:80 of service tcp 10.0.0.2:80): destination for a service that does not exist"},
		{"unknown scheduler", []Op{
			{Kind: CreateService, Service: web},
			{Kind: CreateService, Service: ipvs.Service{ServiceID: missing.ServiceID, Scheduler: "nope"}},
		}, `unknown scheduler "nope"`},
		{"family mismatch", []Op{
			{Kind: CreateService, Service: web},
			{Kind: CreateDestination, Service: web, Destination: ipvs.Destination{Address: netip.MustParseAddrPort("[2001:db8::1]:80")}},
		}, "address family inet6 differs from the service's inet"},
		{"weight", []Op{
			{Kind: CreateService, Service: web},
			{Kind: CreateDestination, Service: web, Destination: ipvs.Destination{Address: rs.Address, Weight: -3}},
		}, "weight -3 out of range"},
		{"create twice", []Op{{Kind: CreateService, Service: web}, {Kind: CreateService, Service: web}}, "already exists"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k := newFakeKernel(nil)
			err := Apply(context.Background(), k, nil, tc.ops)
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "nothing applied") {
				t.Errorf("error %v, want one containing %q", err, tc.want)
			}
			if k.calls != 0 || len(k.table) != 0 {
				t.Errorf("kernel touched: %d calls, table %v", k.calls, k.table)
			}
		})
	}
}

func TestApplyNamesTheRefusedObject(t *testing.T) {
	desired, err := Desired("services", []Spec{{ID: tcp("10.0.0.1:80"), Options: Options{RealServers: []RealServerConfig{{Address: "10.0.1.1"}, {Address: "10.0.1.2"}}}}})
	if err != nil {
		t.Fatal(err)
	}
	k := newFakeKernel(nil)
	k.refuse = func(kind OpKind, id ipvs.ServiceID, d ipvs.Destination) error {
		if kind == CreateDestination && d.Address.Addr() == netip.MustParseAddr("10.0.1.2") {
			return fmt.Errorf("ipvs: add destination %s of service %s: %w", d.Address, id, errors.New("cannot allocate memory"))
		}
		return nil
	}
	r := &Reconciler{Kernel: k}
	_, err = r.Reconcile(context.Background(), desired)
	if err == nil || !strings.Contains(err.Error(), "operation 3 of 3 (create destination 10.0.1.2:80 of service tcp 10.0.0.1:80)") {
		t.Errorf("error %v does not name the refused destination", err)
	}
	// The next reconciliation finishes the job.
	k.refuse = nil
	res, err := r.Reconcile(context.Background(), desired)
	if err != nil || len(res.Ops) != 1 || res.Ops[0].Kind != CreateDestination {
		t.Errorf("follow-up reconciliation: %v, %v", res.Ops, err)
	}
}
