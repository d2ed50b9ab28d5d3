package services

import (
	"fmt"
	"net/netip"
	"slices"

	"github.com/saru-lb/saru/saru/ipvs"
)

// OpKind is what an operation does.
type OpKind int

// Operation kinds.
const (
	CreateService OpKind = iota + 1
	UpdateService
	DeleteService
	CreateDestination
	UpdateDestination
	DeleteDestination
)

func (k OpKind) String() string {
	switch k {
	case CreateService:
		return "create service"
	case UpdateService:
		return "update service"
	case DeleteService:
		return "delete service"
	case CreateDestination:
		return "create destination"
	case UpdateDestination:
		return "update destination"
	case DeleteDestination:
		return "delete destination"
	}
	return fmt.Sprintf("op(%d)", int(k))
}

// Op is one change to the IPVS table. Destination operations act on
// Destination within Service.ServiceID.
type Op struct {
	Kind        OpKind
	Service     ipvs.Service
	Destination ipvs.Destination
}

func (o Op) String() string {
	switch o.Kind {
	case CreateDestination, UpdateDestination, DeleteDestination:
		return fmt.Sprintf("%s %s of service %s", o.Kind, o.Destination.Address, o.Service.ServiceID)
	}
	return fmt.Sprintf("%s %s", o.Kind, o.Service.ServiceID)
}

// serviceEqual compares what SET_SERVICE can change; the kernel's own
// "hashed" flag is ignored.
func serviceEqual(a, b ipvs.Service) bool {
	return a.Scheduler == b.Scheduler &&
		a.Flags&^ipvs.FlagHashed == b.Flags&^ipvs.FlagHashed &&
		a.Timeout == b.Timeout &&
		netmaskBits(a) == netmaskBits(b) &&
		a.PEName == b.PEName
}

func netmaskBits(s ipvs.Service) int {
	if s.NetmaskBits != 0 {
		return s.NetmaskBits
	}
	if s.Key().Family == ipvs.FamilyIPv6 {
		return 128
	}
	return 32
}

// destEqual compares what SET_DEST can change.
func destEqual(a, b ipvs.Destination) bool {
	if a.Forward != b.Forward || a.Weight != b.Weight || a.UpperThreshold != b.UpperThreshold || a.LowerThreshold != b.LowerThreshold {
		return false
	}
	if a.Forward == ipvs.ForwardTunnel {
		return a.TunnelType == b.TunnelType && a.TunnelPort == b.TunnelPort && a.TunnelFlags == b.TunnelFlags
	}
	return true
}

// index maps a table by service key and destination address.
type index map[ipvs.ServiceID]*indexed

type indexed struct {
	svc   ipvs.Service
	dests map[netip.AddrPort]ipvs.Destination
}

func indexTable(es []ipvs.Entry) index {
	ix := index{}
	for _, e := range es {
		in := &indexed{svc: e.Service, dests: map[netip.AddrPort]ipvs.Destination{}}
		for _, d := range e.Destinations {
			in.dests[d.Address] = d
		}
		ix[e.Service.Key()] = in
	}
	return ix
}

func (ix index) keys() []ipvs.ServiceID {
	ks := make([]ipvs.ServiceID, 0, len(ix))
	for k := range ix {
		ks = append(ks, k)
	}
	slices.SortFunc(ks, ipvs.ServiceID.Compare)
	return ks
}

func sortedAddrs(m map[netip.AddrPort]ipvs.Destination) []netip.AddrPort {
	as := make([]netip.AddrPort, 0, len(m))
	for a := range m {
		as = append(as, a)
	}
	slices.SortFunc(as, netip.AddrPort.Compare)
	return as
}

// Diff returns the operations that turn current into desired, in the order
// they must run: for each service (sorted), a new service is created before
// its destinations, a changed one updated; within a service, destinations are
// created before changed ones are updated and stale ones deleted, so the
// service is never left without its new servers; services that are no longer
// desired are deleted last. Equal tables give no operations.
func Diff(desired, current []ipvs.Entry) []Op {
	want, have := indexTable(desired), indexTable(current)
	var ops, deletes []Op
	for _, k := range want.keys() {
		w := want[k]
		h, exists := have[k]
		switch {
		case !exists:
			ops = append(ops, Op{Kind: CreateService, Service: w.svc})
			for _, a := range sortedAddrs(w.dests) {
				ops = append(ops, Op{Kind: CreateDestination, Service: w.svc, Destination: w.dests[a]})
			}
			continue
		case !serviceEqual(w.svc, h.svc):
			ops = append(ops, Op{Kind: UpdateService, Service: w.svc})
		}
		var upd, del []Op
		for _, a := range sortedAddrs(w.dests) {
			hd, ok := h.dests[a]
			switch {
			case !ok:
				ops = append(ops, Op{Kind: CreateDestination, Service: w.svc, Destination: w.dests[a]})
			case !destEqual(w.dests[a], hd):
				upd = append(upd, Op{Kind: UpdateDestination, Service: w.svc, Destination: w.dests[a]})
			}
		}
		for _, a := range sortedAddrs(h.dests) {
			if _, ok := w.dests[a]; !ok {
				del = append(del, Op{Kind: DeleteDestination, Service: w.svc, Destination: h.dests[a]})
			}
		}
		ops = append(append(ops, upd...), del...)
	}
	for _, k := range have.keys() {
		if _, ok := want[k]; !ok {
			deletes = append(deletes, Op{Kind: DeleteService, Service: have[k].svc})
		}
	}
	return append(ops, deletes...)
}

// Check verifies that ops apply cleanly to current, in order: every service
// and destination they send is valid, nothing is created twice, nothing
// missing is updated or deleted, and no destination is added to a service
// that does not exist. It returns the table the operations produce.
func Check(current []ipvs.Entry, ops []Op) ([]ipvs.Entry, error) {
	ix := indexTable(current)
	for i, o := range ops {
		k := o.Service.Key()
		in, exists := ix[k]
		fail := func(format string, args ...any) error {
			return fmt.Errorf("operation %d (%s): %s", i+1, o, fmt.Sprintf(format, args...))
		}
		switch o.Kind {
		case CreateService, UpdateService:
			if err := o.Service.Validate(); err != nil {
				return nil, fail("%v", err)
			}
			if o.Kind == CreateService && exists {
				return nil, fail("service already exists")
			}
			if o.Kind == UpdateService && !exists {
				return nil, fail("no such service")
			}
			if exists {
				in.svc = o.Service
			} else {
				ix[k] = &indexed{svc: o.Service, dests: map[netip.AddrPort]ipvs.Destination{}}
			}
		case DeleteService:
			if !exists {
				return nil, fail("no such service")
			}
			delete(ix, k)
		case CreateDestination, UpdateDestination, DeleteDestination:
			if !exists {
				return nil, fail("destination for a service that does not exist")
			}
			_, has := in.dests[o.Destination.Address]
			switch o.Kind {
			case CreateDestination, UpdateDestination:
				if err := o.Destination.Validate(k); err != nil {
					return nil, fail("%v", err)
				}
				if o.Kind == CreateDestination && has {
					return nil, fail("destination already exists")
				}
				if o.Kind == UpdateDestination && !has {
					return nil, fail("no such destination")
				}
				in.dests[o.Destination.Address] = o.Destination
			default:
				if !has {
					return nil, fail("no such destination")
				}
				delete(in.dests, o.Destination.Address)
			}
		default:
			return nil, fail("unknown operation")
		}
	}
	out := make([]ipvs.Entry, 0, len(ix))
	for _, k := range ix.keys() {
		in := ix[k]
		e := ipvs.Entry{Service: in.svc}
		for _, a := range sortedAddrs(in.dests) {
			e.Destinations = append(e.Destinations, in.dests[a])
		}
		out = append(out, e)
	}
	return out, nil
}

// Plan decides what one reconciliation does. The services saru manages are
// those the configuration describes (desired) and those saru created before
// (owned, from its record); every other service in the kernel's table
// (current) is foreign: another tool's, left exactly as it is, and returned
// so that it can be reported. A foreign service that the configuration now
// describes is managed from then on (the configuration wins, as in
// ldirectord). managed is the part of current the operations start from.
func Plan(desired, current []ipvs.Entry, owned []ipvs.ServiceID) (ops []Op, managed []ipvs.Entry, foreign []ipvs.ServiceID) {
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
	return Diff(desired, managed), managed, foreign
}
