package services

import (
	"fmt"
	"net/netip"
	"slices"
	"testing"

	"github.com/saru-lb/saru/filter/bucket"

	"pgregory.net/rapid"

	"github.com/saru-lb/saru/saru/ipvs"
)

// genOverlappingTable draws an IPVS table from a small universe of services and real
// servers, so that desired, current and owned tables overlap often.
func genOverlappingTable(t *rapid.T, label string) []ipvs.Entry {
	n := rapid.IntRange(0, 5).Draw(t, label+"-n")
	seen := map[ipvs.ServiceID]bool{}
	var out []ipvs.Entry
	for i := range n {
		var id ipvs.ServiceID
		if rapid.Bool().Draw(t, fmt.Sprintf("%s-%d-fwmark", label, i)) {
			id = ipvs.ServiceID{FWMark: uint32(rapid.IntRange(1, 3).Draw(t, fmt.Sprintf("%s-%d-mark", label, i))), Family: ipvs.FamilyIPv4}
		} else {
			port := uint16(rapid.IntRange(80, 82).Draw(t, fmt.Sprintf("%s-%d-port", label, i)))
			proto := rapid.SampledFrom([]ipvs.Protocol{bucket.TCP, bucket.UDP}).Draw(t, fmt.Sprintf("%s-%d-proto", label, i))
			id = ipvs.ServiceID{Protocol: proto, Address: netip.AddrPortFrom(netip.MustParseAddr("192.0.2.10"), port)}
		}
		if seen[id.Key()] {
			continue
		}
		seen[id.Key()] = true
		e := ipvs.Entry{Service: ipvs.Service{ServiceID: id, Scheduler: rapid.SampledFrom([]string{"wlc", "rr"}).Draw(t, fmt.Sprintf("%s-%d-sched", label, i)), NetmaskBits: 32}}
		dests := map[netip.AddrPort]bool{}
		for j := range rapid.IntRange(0, 3).Draw(t, fmt.Sprintf("%s-%d-dests", label, i)) {
			a := netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, 1, byte(rapid.IntRange(1, 4).Draw(t, fmt.Sprintf("%s-%d-%d-a", label, i, j)))}), 8080)
			if dests[a] {
				continue
			}
			dests[a] = true
			e.Destinations = append(e.Destinations, ipvs.Destination{Address: a, Forward: ipvs.ForwardMasq,
				Weight: int32(rapid.IntRange(0, 3).Draw(t, fmt.Sprintf("%s-%d-%d-w", label, i, j)))})
		}
		slices.SortFunc(e.Destinations, func(a, b ipvs.Destination) int { return a.Address.Compare(b.Address) })
		out = append(out, e)
	}
	slices.SortFunc(out, func(a, b ipvs.Entry) int { return a.Service.Compare(b.Service.ServiceID) })
	return out
}

// TestPlanProperties: whatever the tables, the plan never touches a
// service that is neither desired nor owned, applies cleanly, and leaves
// exactly the desired services plus the foreign ones.
func TestPlanProperties(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		desired, current := genOverlappingTable(t, "desired"), genOverlappingTable(t, "current")
		var owned []ipvs.ServiceID
		for _, e := range genOverlappingTable(t, "owned") {
			owned = append(owned, e.Service.ServiceID)
		}
		ops, managed, foreign := Plan(desired, current, owned)
		if len(managed)+len(foreign) != len(current) {
			t.Fatalf("managed %d + foreign %d != current %d", len(managed), len(foreign), len(current))
		}
		mine := map[ipvs.ServiceID]bool{}
		for _, e := range desired {
			mine[e.Service.Key()] = true
		}
		for _, id := range owned {
			mine[id.Key()] = true
		}
		for _, id := range foreign {
			if mine[id.Key()] {
				t.Fatalf("%s is desired or owned but called foreign", id)
			}
		}
		for _, o := range ops {
			if !mine[o.Service.Key()] {
				t.Fatalf("operation %s touches a foreign service", o)
			}
		}
		after, err := Check(current, ops)
		if err != nil {
			t.Fatalf("plan does not apply to the whole table: %v", err)
		}
		var want []ipvs.Entry
		want = append(want, desired...)
		for _, e := range current {
			if slices.Contains(foreign, e.Service.ServiceID) {
				want = append(want, e)
			}
		}
		if rest := Diff(want, after); len(rest) != 0 {
			t.Fatalf("after the plan, the table differs from desired + foreign: %v", rest)
		}
		if again, _, _ := Plan(desired, after, owned); len(again) != 0 {
			t.Fatalf("not idempotent: %v", again)
		}
	})
}

// FuzzParseRecord: a record that parses prints back to the same services.
func FuzzParseRecord(f *testing.F) {
	f.Add([]byte(recordHeader + "tcp 192.0.2.10:80\nudp [2001:db8::1]:53\nfwmark 7 inet6\n"))
	f.Add([]byte("fwmark 4294967295 inet\n\n# c\nsctp 10.0.0.1:0\n"))
	f.Add([]byte("tcp 10.0.0.1\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		ids, err := ParseRecord(b)
		if err != nil {
			return
		}
		var s []byte
		for _, id := range ids {
			s = append(s, id.String()+"\n"...)
		}
		again, err := ParseRecord(s)
		if err != nil || !slices.Equal(again, ids) {
			t.Fatalf("%q parsed as %v, printed %q, re-parsed as %v, %v", b, ids, s, again, err)
		}
	})
}
