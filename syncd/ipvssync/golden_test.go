package ipvssync

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/saru-lb/saru/syncd/conn"
)

// describe renders a record as the lab test logs the master's messages.
func describe(c *conn.Entry) string {
	return fmt.Sprintf("%s:%d-%s:%d-%s:%d/p%d/f%#x/s%d/t%d", c.ClientAddr, c.ClientPort, c.VirtualAddr, c.VirtualPort, c.DestAddr, c.DestPort, c.Protocol, c.Flags, c.State, c.Timeout)
}

// TestGoldenKernelMessages decodes datagrams captured from the kernel's
// master sync thread in the kernel lab, checks every record, and checks
// that encoding the records again gives the kernel's bytes exactly.
func TestGoldenKernelMessages(t *testing.T) {
	files, err := filepath.Glob("testdata/golden/*.txt")
	if err != nil || len(files) == 0 {
		t.Fatalf("no golden files: %v", err)
	}
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			var lines []string
			for _, l := range strings.Split(string(data), "\n") {
				if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
					lines = append(lines, l)
				}
			}
			raw, err := hex.DecodeString(lines[0])
			if err != nil {
				t.Fatal(err)
			}
			m, err := Decode(raw)
			if err != nil {
				t.Fatal(err)
			}
			wantVersion := uint8(ProtoVersion)
			if strings.HasPrefix(filepath.Base(file), "v0_") {
				wantVersion = 0
			}
			if m.Version != wantVersion || len(m.Entries) != len(lines)-1 || len(m.Refused) != 0 {
				t.Fatalf("version %d, %d records, want version %d, %d records", m.Version, len(m.Entries), wantVersion, len(lines)-1)
			}
			for i := range m.Entries {
				if got := describe(&m.Entries[i]); got != lines[i+1] {
					t.Errorf("record %d: %s, want %s", i, got, lines[i+1])
				}
				if err := accept(&m.Entries[i]); err != nil {
					t.Errorf("record %d: %v", i, err)
				}
			}
			if m.Version == 0 {
				return // the codec writes version 1 only
			}
			re, err := AppendMessage(nil, m.SyncID, m.Entries, DefaultMaxLen)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(re, raw) {
				t.Fatalf("re-encoded\n%x\nkernel sent\n%x", re, raw)
			}
		})
	}
}
