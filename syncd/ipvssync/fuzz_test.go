package ipvssync

import (
	"errors"
	"reflect"
	"testing"
)

// FuzzDecode checks that Decode never panics, that its errors are
// *DecodeError values pointing inside the datagram, and that whatever it
// accepts and Validate passes encodes and decodes back to the same records.
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
		if len(m.Conns) > MaxConnsPerMessage {
			t.Fatalf("%d records", len(m.Conns))
		}
		for i := range m.Conns {
			if m.Conns[i].Validate() != nil {
				return
			}
		}
		re, err := AppendMessage(nil, m.SyncID, m.Conns, 0xffff)
		if err != nil {
			t.Fatalf("re-encode of accepted records: %v", err)
		}
		m2, err := Decode(re)
		if err != nil {
			t.Fatalf("decode of re-encoded message: %v", err)
		}
		if !reflect.DeepEqual(m2.Conns, m.Conns) {
			t.Fatalf("round trip differs:\n%+v\n%+v", m2.Conns, m.Conns)
		}
		if m.Version == ProtoVersion && len(re) > len(b) {
			t.Fatalf("re-encoding grew the message from %d to %d bytes", len(b), len(re))
		}
	})
}
