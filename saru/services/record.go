package services

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/saru-lb/saru/saru/ipvs"
)

// RecordFile is the record's usual name in a director's state directory.
const RecordFile = "ipvs-services"

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
