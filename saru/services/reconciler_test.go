package services_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/saru-lb/saru/filter/bucket"

	"github.com/saru-lb/saru/saru/config"
	"github.com/saru-lb/saru/saru/ipvs"
	"github.com/saru-lb/saru/saru/services"
)

// kernel is an in-memory IPVS table with the kernel's refusals (duplicates,
// missing objects) and an injectable one.
type kernel struct {
	table   map[ipvs.ServiceID]*ipvs.Entry
	refuse  func(op string, id ipvs.ServiceID, d ipvs.Destination) error
	changes int
}

func newKernel(es ...ipvs.Entry) *kernel {
	k := &kernel{table: map[ipvs.ServiceID]*ipvs.Entry{}}
	for _, e := range es {
		e.Destinations = slices.Clone(e.Destinations)
		k.table[e.Service.Key()] = &e
	}
	return k
}

func (k *kernel) List(context.Context) ([]ipvs.Entry, error) {
	var out []ipvs.Entry
	for _, e := range k.table {
		c := *e
		c.Destinations = slices.Clone(e.Destinations)
		slices.SortFunc(c.Destinations, func(a, b ipvs.Destination) int { return a.Address.Compare(b.Address) })
		out = append(out, c)
	}
	slices.SortFunc(out, func(a, b ipvs.Entry) int { return a.Service.Compare(b.Service.ServiceID) })
	return out, nil
}

func (k *kernel) do(op string, id ipvs.ServiceID, d ipvs.Destination, f func(e *ipvs.Entry, ok bool) error) error {
	if k.refuse != nil {
		if err := k.refuse(op, id, d); err != nil {
			return err
		}
	}
	e, ok := k.table[id.Key()]
	if err := f(e, ok); err != nil {
		return err
	}
	k.changes++
	return nil
}

func (k *kernel) NewService(_ context.Context, s ipvs.Service) error {
	return k.do("new", s.ServiceID, ipvs.Destination{}, func(_ *ipvs.Entry, ok bool) error {
		if ok {
			return errors.New("file exists")
		}
		k.table[s.Key()] = &ipvs.Entry{Service: s}
		return nil
	})
}

func (k *kernel) UpdateService(_ context.Context, s ipvs.Service) error {
	return k.do("set", s.ServiceID, ipvs.Destination{}, func(e *ipvs.Entry, ok bool) error {
		if !ok {
			return errors.New("no such process")
		}
		e.Service = s
		return nil
	})
}

func (k *kernel) DeleteService(_ context.Context, id ipvs.ServiceID) error {
	return k.do("del", id, ipvs.Destination{}, func(_ *ipvs.Entry, ok bool) error {
		if !ok {
			return errors.New("no such process")
		}
		delete(k.table, id.Key())
		return nil
	})
}

func (k *kernel) destIndex(e *ipvs.Entry, a netip.AddrPort) int {
	return slices.IndexFunc(e.Destinations, func(d ipvs.Destination) bool { return d.Address == a })
}

func (k *kernel) NewDestination(_ context.Context, id ipvs.ServiceID, d ipvs.Destination) error {
	return k.do("newdest", id, d, func(e *ipvs.Entry, ok bool) error {
		if !ok {
			return errors.New("no such process")
		}
		if k.destIndex(e, d.Address) >= 0 {
			return errors.New("file exists")
		}
		e.Destinations = append(e.Destinations, d)
		return nil
	})
}

func (k *kernel) UpdateDestination(_ context.Context, id ipvs.ServiceID, d ipvs.Destination) error {
	return k.do("setdest", id, d, func(e *ipvs.Entry, ok bool) error {
		i := -1
		if ok {
			i = k.destIndex(e, d.Address)
		}
		if i < 0 {
			return errors.New("no such file or directory")
		}
		e.Destinations[i] = d
		return nil
	})
}

func (k *kernel) DeleteDestination(_ context.Context, id ipvs.ServiceID, d ipvs.Destination) error {
	return k.do("deldest", id, d, func(e *ipvs.Entry, ok bool) error {
		i := -1
		if ok {
			i = k.destIndex(e, d.Address)
		}
		if i < 0 {
			return errors.New("no such file or directory")
		}
		e.Destinations = slices.Delete(e.Destinations, i, i+1)
		return nil
	})
}

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// table builds the IPVS side of a saru configuration's services.
func table(t *testing.T, services string) []ipvs.Entry {
	t.Helper()
	r, err := config.Parse([]byte("node: {id: d1}\nhash_seed: '1'\nservices:\n" + services))
	if err != nil {
		t.Fatal(err)
	}
	c, err := config.For(r)
	if err != nil {
		t.Fatal(err)
	}
	return c.IPVS()
}

func ids(es []ipvs.Entry) []string {
	var out []string
	for _, e := range es {
		out = append(out, e.Service.ServiceID.String())
	}
	return out
}

func opStrings(ops []services.Op) string {
	var out []string
	for _, o := range ops {
		out = append(out, o.String())
	}
	return strings.Join(out, "\n")
}

const v1 = `  - name: web
    vip: 192.0.2.10
    port: 80
    forwarding: masq
    real_servers:
      - {address: 10.0.1.1:8080, weight: 3}
      - {address: 10.0.1.2:8080}
  - name: dns
    vip: 192.0.2.10
    port: 53
    protocol: both
    persistence_timeout: 300
    real_servers: [{address: 10.0.2.1}]
  - {vip: 192.0.2.30, port: 443}
`

// foreignSvc was made by someone else (ipvsadm, keepalived).
var foreignSvc = ipvs.Entry{
	Service:      ipvs.Service{ServiceID: ipvs.ServiceID{Protocol: bucket.TCP, Address: netip.MustParseAddrPort("198.51.100.1:25")}, Scheduler: "rr", NetmaskBits: 32},
	Destinations: []ipvs.Destination{{Address: netip.MustParseAddrPort("10.9.9.9:25"), Forward: ipvs.ForwardRoute, Weight: 1}},
}

func TestReconcilerOwnsOnlyItsServices(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	k := newKernel(foreignSvc)
	rec := &services.Reconciler{Kernel: k, Record: services.Record{Path: filepath.Join(dir, services.RecordFile)}, Log: quiet}

	desired := table(t, v1)
	res, err := rec.Reconcile(ctx, desired)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Ops) != 7 || len(res.Foreign) != 1 || res.Foreign[0] != foreignSvc.Service.ServiceID {
		t.Fatalf("first run: %d ops (want 3 services + 4 destinations), foreign %v:\n%s", len(res.Ops), res.Foreign, opStrings(res.Ops))
	}
	got, _ := k.List(ctx)
	if ops := services.Diff(append(slices.Clone(desired), foreignSvc), got); len(ops) != 0 {
		t.Fatalf("kernel differs from configuration plus the foreign service: %s", opStrings(ops))
	}
	b, _ := os.ReadFile(rec.Record.Path)
	for _, want := range []string{"tcp 192.0.2.10:53\n", "udp 192.0.2.10:53\n", "tcp 192.0.2.10:80\n"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("record lacks %q:\n%s", want, b)
		}
	}
	if strings.Contains(string(b), "198.51.100.1") {
		t.Errorf("record claims the foreign service:\n%s", b)
	}

	// Idempotent, also for a new process reading the record.
	before := k.changes
	rec2 := &services.Reconciler{Kernel: k, Record: rec.Record, Log: quiet}
	if res, err := rec2.Reconcile(ctx, desired); err != nil || len(res.Ops) != 0 || k.changes != before {
		t.Fatalf("second run: %v, %v", res.Ops, err)
	}

	// The next start's configuration drops dns (both protocols), changes a
	// weight and removes a real server: the record makes the new process
	// delete what the old one created, and nothing of the foreign service.
	desired2 := table(t, `  - name: web
    vip: 192.0.2.10
    port: 80
    forwarding: masq
    real_servers:
      - {address: 10.0.1.1:8080, weight: 0}
`)
	rec3 := &services.Reconciler{Kernel: k, Record: rec.Record, Log: quiet}
	res, err = rec3.Reconcile(ctx, desired2)
	if err != nil {
		t.Fatal(err)
	}
	want := strings.Join([]string{
		"update destination 10.0.1.1:8080 of service tcp 192.0.2.10:80",
		"delete destination 10.0.1.2:8080 of service tcp 192.0.2.10:80",
		"delete service tcp 192.0.2.10:53",
		"delete service udp 192.0.2.10:53",
	}, "\n")
	if got := opStrings(res.Ops); got != want {
		t.Fatalf("change ran:\n%s\nwant:\n%s", got, want)
	}
	got, _ = k.List(ctx)
	if ops := services.Diff(append(slices.Clone(desired2), foreignSvc), got); len(ops) != 0 {
		t.Fatalf("kernel after change: %s", opStrings(ops))
	}
	if owned, err := rec.Record.Load(); err != nil || len(owned) != 1 || owned[0].String() != "tcp 192.0.2.10:80" {
		t.Fatalf("record after change: %v %v", owned, err)
	}
}

func TestReconcilerAdoptsConfiguredService(t *testing.T) {
	// A service the configuration names is saru's, whoever created it.
	desired := table(t, "  - {vip: 198.51.100.1, port: 25, scheduler: wlc, real_servers: [{address: 10.9.9.8}]}\n")
	k := newKernel(foreignSvc)
	rec := &services.Reconciler{Kernel: k, Log: quiet}
	res, err := rec.Reconcile(context.Background(), desired)
	if err != nil {
		t.Fatal(err)
	}
	want := "update service tcp 198.51.100.1:25\ncreate destination 10.9.9.8:25 of service tcp 198.51.100.1:25\ndelete destination 10.9.9.9:25 of service tcp 198.51.100.1:25"
	if got := opStrings(res.Ops); got != want || len(res.Foreign) != 0 {
		t.Fatalf("adoption ran:\n%s\nwant:\n%s\nforeign %v", got, want, res.Foreign)
	}
}

func TestReconcilerRefusal(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	k := newKernel()
	k.refuse = func(op string, id ipvs.ServiceID, d ipvs.Destination) error {
		if op == "newdest" && d.Address.Port() == 8080 && d.Address.Addr() == netip.MustParseAddr("10.0.1.2") {
			return errors.New("invalid argument")
		}
		return nil
	}
	rec := &services.Reconciler{Kernel: k, Record: services.Record{Path: filepath.Join(dir, services.RecordFile)}, Log: quiet}
	_, err := rec.Reconcile(ctx, table(t, v1))
	if err == nil || !strings.Contains(err.Error(), "create destination 10.0.1.2:8080 of service tcp 192.0.2.10:80") || !strings.Contains(err.Error(), "invalid argument") {
		t.Fatalf("refusal: %v", err)
	}
	// What was created before the refusal is recorded as saru's, so a
	// configuration without it removes it.
	k.refuse = nil
	rec2 := &services.Reconciler{Kernel: k, Record: rec.Record, Log: quiet}
	if _, err := rec2.Reconcile(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if got, _ := k.List(ctx); len(got) != 0 {
		t.Fatalf("left behind: %v", ids(got))
	}
}

func TestReconcilerUnreadableRecord(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, services.RecordFile)
	os.WriteFile(path, []byte("tcp nowhere\n"), 0o600)
	k := newKernel(foreignSvc)
	rec := &services.Reconciler{Kernel: k, Record: services.Record{Path: path}, Log: quiet}
	res, err := rec.Reconcile(context.Background(), table(t, v1))
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Foreign) != 1 {
		t.Fatalf("an unreadable record must not make other services saru's: %v", res.Foreign)
	}
	if owned, err := rec.Record.Load(); err != nil || len(owned) != 3 {
		t.Fatalf("record rewritten: %v %v", owned, err)
	}
}

func TestPlanLeavesForeignAlone(t *testing.T) {
	desired := table(t, v1)
	owned := []ipvs.ServiceID{{Protocol: bucket.UDP, Address: netip.MustParseAddrPort("192.0.2.99:53")}}
	stale := ipvs.Entry{Service: ipvs.Service{ServiceID: owned[0], Scheduler: "wlc"}}
	ops, managed, foreign := services.Plan(desired, []ipvs.Entry{foreignSvc, stale}, owned)
	if len(managed) != 1 || managed[0].Service.ServiceID != stale.Service.ServiceID {
		t.Errorf("managed %v", ids(managed))
	}
	if len(foreign) != 1 || foreign[0] != foreignSvc.Service.ServiceID {
		t.Errorf("foreign %v", foreign)
	}
	for _, o := range ops {
		if o.Service.Key() == foreignSvc.Service.Key() {
			t.Errorf("plan touches the foreign service: %s", o)
		}
	}
	if last := ops[len(ops)-1]; last.Kind != services.DeleteService || last.Service.ServiceID != stale.Service.ServiceID {
		t.Errorf("owned stale service not deleted last: %s", opStrings(ops))
	}
}

func TestRecordRoundTrip(t *testing.T) {
	in := []ipvs.ServiceID{
		{Protocol: bucket.UDP, Address: netip.MustParseAddrPort("[2001:db8::10]:53")},
		{FWMark: 7, Family: ipvs.FamilyIPv6},
		{Protocol: bucket.TCP, Address: netip.MustParseAddrPort("192.0.2.10:80")},
		{FWMark: 3, Family: ipvs.FamilyIPv4},
		{Protocol: bucket.SCTP, Address: netip.MustParseAddrPort("192.0.2.10:0")},
	}
	r := services.Record{Path: filepath.Join(t.TempDir(), services.RecordFile)}
	if got, err := r.Load(); err != nil || got != nil {
		t.Fatalf("missing record: %v %v", got, err)
	}
	if err := r.Save(append(in, in[0])); err != nil {
		t.Fatal(err)
	}
	got, err := r.Load()
	if err != nil {
		t.Fatal(err)
	}
	want := slices.Clone(in)
	for i := range want {
		want[i] = want[i].Key()
	}
	slices.SortFunc(want, ipvs.ServiceID.Compare)
	if !slices.Equal(got, want) {
		t.Fatalf("round trip:\n%v\nwant\n%v", got, want)
	}
	for _, bad := range []string{"tcp", "tcp 10.0.0.1", "icmp 10.0.0.1:1", "fwmark 0 inet", "fwmark 7 ipx", "fwmark x inet", "a b c d"} {
		if _, err := services.ParseRecord([]byte("# ok\n\n" + bad + "\n")); err == nil || !strings.Contains(err.Error(), "line 3") {
			t.Errorf("%q: %v", bad, err)
		}
	}
}
