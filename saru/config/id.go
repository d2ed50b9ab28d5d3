package config

import (
	"errors"
	"strings"
)

// MaxIDLen is the longest director id, a DNS label's length.
const MaxIDLen = 63

// idRule is the one wording of the id rule, shared with syncd's node_id.
const idRule = "want 1 to 63 characters from A-Z a-z 0-9 . _ -"

// CheckID checks a director id: 1 to 63 bytes of ASCII letters, digits,
// '.', '_' and '-' (a DNS label plus dot and underscore), so an id is safe
// in logs, metrics labels, file names and memberlist. syncd's node_id
// follows the same rule; syncd keeps its own copy, as neither daemon may
// import the other, and each package tests the same table of ids.
func CheckID(id string) error {
	if id == "" || len(id) > MaxIDLen || strings.IndexFunc(id, notIDByte) >= 0 {
		return errors.New(idRule)
	}
	return nil
}

func notIDByte(r rune) bool {
	return !('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' || r == '.' || r == '_' || r == '-')
}
