package daemon

import (
	"errors"
	"strings"
)

// MaxIDLen is the longest node_id, a DNS label's length (the wire allows
// a little more).
const MaxIDLen = 63

// CheckID checks a node_id: 1 to 63 bytes of ASCII letters, digits, '.',
// '_' and '-'. It is saru's director id rule (saru/config.CheckID) with the
// same wording; syncd keeps its own copy because neither daemon may import
// the other, and both packages test the same table of ids.
func CheckID(id string) error {
	if id == "" || len(id) > MaxIDLen || strings.IndexFunc(id, notIDByte) >= 0 {
		return errors.New("want 1 to 63 characters from A-Z a-z 0-9 . _ -")
	}
	return nil
}

func notIDByte(r rune) bool {
	return !('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' || r == '.' || r == '_' || r == '-')
}
