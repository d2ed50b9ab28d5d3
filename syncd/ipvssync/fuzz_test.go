package ipvssync

import (
	"errors"
	"reflect"
	"testing"
)

// FuzzDecode checks that Decode never panics, that its errors and
// refusals are *DecodeError values pointing inside the datagram, that
// every entry it returns passes the checks it promises, and that those
// entries encode and decode back to the same entries.
func FuzzDecode(f *testing.F) {
	f.Add([]byte{0, 0, 0, 8, 0, 1, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := Decode(b)
		if err != nil {
			var de *DecodeError
			if !errors.As(err, &de) {
				t.Fatalf("error %v is not a *DecodeError", err)
			}
			if de.Offset < 0 || (len(b) > 0 && de.Offset > len(b)) {
				t.Fatalf("offset %d outside the %d-byte datagram", de.Offset, len(b))
			}
			return
		}
		if len(m.Entries) > MaxConnsPerMessage {
			t.Fatalf("%d records", len(m.Entries))
		}
		for _, r := range m.Refused {
			if r.Conn < 0 || r.Offset < 0 || r.Offset >= len(b) {
				t.Fatalf("refusal %v outside the %d-byte datagram", &r, len(b))
			}
		}
		for i := range m.Entries {
			if err := accept(&m.Entries[i]); err != nil {
				t.Fatalf("entry %d returned unchecked: %v", i, err)
			}
		}
		re, err := AppendMessage(nil, m.SyncID, m.Entries, 0xffff)
		if err != nil {
			t.Fatalf("re-encode of accepted records: %v", err)
		}
		m2, err := Decode(re)
		if err != nil {
			t.Fatalf("decode of re-encoded message: %v", err)
		}
		if len(m2.Refused) != 0 || (len(m.Entries) > 0 && !reflect.DeepEqual(m2.Entries, m.Entries)) || len(m2.Entries) != len(m.Entries) {
			t.Fatalf("round trip differs:\n%+v\n%+v", m2.Entries, m.Entries)
		}
		if m.Version == ProtoVersion && len(re) > len(b) {
			t.Fatalf("re-encoding grew the message from %d to %d bytes", len(b), len(re))
		}
	})
}
