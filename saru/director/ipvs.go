package director

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/saru-lb/saru/saru/ipvs"
	"github.com/saru-lb/saru/saru/services"
)

// Plan decides what one reconciliation does. The services saru manages are
// those the configuration describes (desired) and those saru created before
// (owned, from its record); every other service in the kernel's table
// (current) is foreign: another tool's, left exactly as it is, and returned
// so that it can be reported. A foreign service that the configuration now
// describes is managed from then on (the configuration wins, as in
// ldirectord). managed is the part of current the operations start from.
func Plan(desired, current []ipvs.Entry, owned []ipvs.ServiceID) (ops []services.Op, managed []ipvs.Entry, foreign []ipvs.ServiceID) {
	mine := map[ipvs.ServiceID]bool{}
	for _, e := range desired {
		mine[e.Service.Key()] = true
	}
	for _, id := range owned {
		mine[id.Key()] = true
	}
	for _, e := range current {
		if mine[e.Service.Key()] {
			managed = append(managed, e)
		} else {
			foreign = append(foreign, e.Service.ServiceID)
		}
	}
	return services.Diff(desired, managed), managed, foreign
}

// Record is the list of IPVS services a director created, kept in its
// state directory so that a service removed from the configuration while
// the director was down is still removed at the next start. The zero value
// (no path) keeps the list in memory only.
type Record struct {
	// Path is the file; empty keeps nothing on disk.
	Path string
}

const recordHeader = "# IPVS services saru manages on this director (one per line, as in its logs).\n" +
	"# saru rewrites this file; a service listed here and no longer configured is deleted.\n"

// Load reads the record. A missing file is an empty record.
func (r Record) Load() ([]ipvs.ServiceID, error) {
	if r.Path == "" {
		return nil, nil
	}
	b, err := os.ReadFile(r.Path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read IPVS record: %w", err)
	}
	return ParseRecord(b)
}

// Save replaces the record atomically (write and rename).
func (r Record) Save(ids []ipvs.ServiceID) error {
	if r.Path == "" {
		return nil
	}
	ids = slices.Clone(ids)
	slices.SortFunc(ids, ipvs.ServiceID.Compare)
	ids = slices.Compact(ids)
	var b bytes.Buffer
	b.WriteString(recordHeader)
	for _, id := range ids {
		b.WriteString(id.String() + "\n")
	}
	tmp, err := os.CreateTemp(filepath.Dir(r.Path), ".ipvs-services-*")
	if err != nil {
		return fmt.Errorf("save IPVS record: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(b.Bytes()); err != nil {
		tmp.Close()
		return fmt.Errorf("save IPVS record: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("save IPVS record: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("save IPVS record: %w", err)
	}
	if err := os.Rename(tmp.Name(), r.Path); err != nil {
		return fmt.Errorf("save IPVS record: %w", err)
	}
	return nil
}

// ParseRecord decodes a record: one service per line as
// [ipvs.ServiceID.String] prints it ("tcp 192.0.2.10:80",
// "udp [2001:db8::10]:53", "fwmark 7 inet"); blank lines and lines starting
// with # are ignored.
func ParseRecord(b []byte) ([]ipvs.ServiceID, error) {
	var ids []ipvs.ServiceID
	sc := bufio.NewScanner(bytes.NewReader(b))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		id, err := parseServiceID(line)
		if err != nil {
			return nil, fmt.Errorf("IPVS record line %d: %w", n, err)
		}
		ids = append(ids, id)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("IPVS record: %w", err)
	}
	return ids, nil
}

func parseServiceID(s string) (ipvs.ServiceID, error) {
	f := strings.Fields(s)
	switch {
	case len(f) == 3 && f[0] == "fwmark":
		m, err := strconv.ParseUint(f[1], 10, 32)
		if err != nil || m == 0 {
			return ipvs.ServiceID{}, fmt.Errorf("%q: bad firewall mark", s)
		}
		var fam ipvs.Family
		switch f[2] {
		case ipvs.FamilyIPv4.String():
			fam = ipvs.FamilyIPv4
		case ipvs.FamilyIPv6.String():
			fam = ipvs.FamilyIPv6
		default:
			return ipvs.ServiceID{}, fmt.Errorf("%q: bad family", s)
		}
		return ipvs.ServiceID{FWMark: uint32(m), Family: fam}, nil
	case len(f) == 2:
		p, err := ipvs.ParseProtocol(f[0])
		if err != nil {
			return ipvs.ServiceID{}, fmt.Errorf("%q: %w", s, err)
		}
		ap, err := netip.ParseAddrPort(f[1])
		if err != nil {
			return ipvs.ServiceID{}, fmt.Errorf("%q: %w", s, err)
		}
		return ipvs.ServiceID{Protocol: p, Address: ap}.Key(), nil
	}
	return ipvs.ServiceID{}, fmt.Errorf("%q: want \"PROTO ADDR:PORT\" or \"fwmark MARK FAMILY\"", s)
}

// Reconciler keeps the kernel's IPVS table equal to the configured services
// on the services saru manages (see [Plan]).
type Reconciler struct {
	Kernel services.Kernel
	Record Record
	Log    *slog.Logger

	owned  []ipvs.ServiceID
	loaded bool
}

// Result is what one reconciliation did.
type Result struct {
	// Ops ran, in order (none when the reconciliation failed: see the
	// error for how far it got).
	Ops []services.Op
	// Foreign services were found and left alone.
	Foreign []ipvs.ServiceID
}

// Reconcile creates, updates and deletes until the managed part of the
// kernel's table equals desired. The plan is checked as a whole before the
// first change (services.Apply); a kernel refusal stops it and names the
// service or destination. Run again, it does nothing.
func (r *Reconciler) Reconcile(ctx context.Context, desired []ipvs.Entry) (Result, error) {
	if !r.loaded {
		owned, err := r.Record.Load()
		if err != nil {
			r.Log.Warn("IPVS record unreadable: services removed from the configuration while saru was down stay in IPVS", "record", r.Record.Path, "err", err)
		}
		r.owned, r.loaded = owned, true
	}
	current, err := r.Kernel.List(ctx)
	if err != nil {
		return Result{}, fmt.Errorf("IPVS: list: %w", err)
	}
	ops, managed, foreign := Plan(desired, current, r.owned)
	want := make([]ipvs.ServiceID, 0, len(desired))
	for _, e := range desired {
		want = append(want, e.Service.Key())
	}
	if len(ops) > 0 {
		// Record first what may exist after this run, so that a crash in
		// the middle forgets nothing saru created.
		if err := r.Record.Save(append(slices.Clone(r.owned), want...)); err != nil {
			r.Log.Warn("IPVS record not saved: services removed from the configuration may stay in IPVS after a restart", "err", err)
		}
	}
	if err := services.Apply(ctx, r.Kernel, managed, ops); err != nil {
		r.owned = append(r.owned, want...)
		return Result{Foreign: foreign}, fmt.Errorf("IPVS: %w", err)
	}
	r.owned = want
	if err := r.Record.Save(want); err != nil {
		r.Log.Warn("IPVS record not saved: services removed from the configuration may stay in IPVS after a restart", "err", err)
	}
	return Result{Ops: ops, Foreign: foreign}, nil
}
