package sharedmac

import (
	"fmt"
	"net/netip"
	"strconv"
)

// Severity says whether a Problem stops the director from working.
type Severity int

const (
	// Warning: works in the common topology, breaks in some.
	Warning Severity = iota + 1
	// Fatal: the director will not receive or answer VIP traffic.
	Fatal
)

func (s Severity) String() string {
	switch s {
	case Warning:
		return "warning"
	case Fatal:
		return "fatal"
	}
	return fmt.Sprintf("severity(%d)", int(s))
}

// Problem is one setting that breaks or endangers a shared-MAC director.
type Problem struct {
	Severity Severity
	Setting  string // e.g. "net.ipv4.conf.eth0.rp_filter"
	Value    string
	Want     string
	Message  string
}

func (p Problem) String() string {
	return fmt.Sprintf("%s: %s = %s (want %s): %s", p.Severity, p.Setting, p.Value, p.Want, p.Message)
}

// Settings are the kernel settings Check reads for one interface. Numeric
// sysctls take the effective value where the kernel combines "all" and the
// interface (the maximum for rp_filter, arp_ignore and arp_announce).
type Settings struct {
	Interface   string
	RPFilter    int // max(all, iface)
	ArpIgnore   int // max(all, iface)
	ArpAnnounce int // max(all, iface)
	AcceptDAD   int // iface (-1 if IPv6 is disabled on it)
	// VIPFlags holds, per VIP configured on the interface, its IFA_F_*
	// flags; a VIP missing from the map is not configured there.
	VIPFlags map[netip.Addr]uint32
}

// Address flags (linux/if_addr.h).
const (
	ifaFNoDAD     = 0x02
	ifaFDADFailed = 0x08
	ifaFTentative = 0x40
)

// Evaluate returns the problems in s for a director serving vips on
// s.Interface. It does no I/O.
func Evaluate(s Settings, vips []netip.Addr) []Problem {
	var out []Problem
	add := func(sev Severity, setting string, value int, want, msg string) {
		out = append(out, Problem{Severity: sev, Setting: setting, Value: strconv.Itoa(value), Want: want, Message: msg})
	}
	v4 := "net.ipv4.conf." + s.Interface + "."
	if s.RPFilter == 1 {
		add(Warning, v4+"rp_filter", s.RPFilter, "0 or 2",
			"strict reverse-path filtering (max of all and the interface) drops packets whose route back leaves by another interface; directors sharing a MAC and VIP often receive on one interface and route replies or real-server traffic by another")
	}
	switch {
	case s.ArpIgnore >= 8:
		add(Fatal, v4+"arp_ignore", s.ArpIgnore, "0 or 1",
			"the interface answers no ARP request, so neighbours never learn the shared MAC for the VIP")
	case s.ArpIgnore >= 2:
		add(Warning, v4+"arp_ignore", s.ArpIgnore, "0 or 1",
			"ARP requests for the VIP from senders outside the VIP's subnet go unanswered")
	}
	if s.ArpAnnounce == 0 {
		add(Warning, v4+"arp_announce", s.ArpAnnounce, "2",
			"ARP requests may carry a sender address from another interface together with the shared MAC, teaching neighbours to send that address's traffic to every director")
	}
	for _, v := range vips {
		if !v.Is6() {
			continue
		}
		flags, ok := s.VIPFlags[v]
		v6 := "net.ipv6.conf." + s.Interface + ".accept_dad"
		switch {
		case ok && flags&ifaFDADFailed != 0:
			out = append(out, Problem{Severity: Fatal, Setting: "address " + v.String(), Value: "dadfailed", Want: "nodad",
				Message: "duplicate address detection saw another director's copy of the VIP and disabled it; re-add it with nodad (AddVIPs does)"})
		case ok && flags&ifaFTentative != 0:
			out = append(out, Problem{Severity: Fatal, Setting: "address " + v.String(), Value: "tentative", Want: "nodad",
				Message: "the VIP is tentative (duplicate address detection running) and will fail against the other directors; add it with nodad"})
		case ok && flags&ifaFNoDAD == 0 && s.AcceptDAD > 0:
			add(Warning, v6, s.AcceptDAD, "0, or the VIP added with nodad",
				"the VIP was added with duplicate address detection; after the next link flap it will fail against the other directors")
		case !ok && s.AcceptDAD > 0:
			add(Warning, v6, s.AcceptDAD, "0, or the VIP added with nodad",
				"adding the VIP without nodad would start duplicate address detection, which fails because every director holds it")
		}
	}
	return out
}
