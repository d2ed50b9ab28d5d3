package wire

import (
	"bufio"
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"strconv"
	"strings"
	"time"
)

// Framing constants.
const (
	Magic0, Magic1 = 'S', 'Y'
	FormatVersion  = 1
	HeaderLen      = 4
	TagLen         = 16
	Overhead       = HeaderLen + TagLen
	MinKeyLen      = 16
)

// Reason says why a datagram was rejected. Metrics label by String.
type Reason uint8

// Rejection reasons for framing and authentication.
const (
	OK         Reason = iota
	Truncated         // shorter than header and tag
	BadMagic          // not a syncd datagram
	BadVersion        // unknown format version
	UnknownKey        // signed with a key id this node does not hold (wrong key)
	ExpiredKey        // signed with a key whose rollover grace has passed
	BadMAC            // tag mismatch: forged, corrupted or wrong key
	Malformed         // authentic but undecodable
)

var reasonNames = [...]string{"ok", "truncated", "bad_magic", "bad_version", "unknown_key", "expired_key", "bad_mac", "malformed"}

func (r Reason) String() string {
	if int(r) < len(reasonNames) {
		return reasonNames[r]
	}
	return "reason(" + strconv.Itoa(int(r)) + ")"
}

// Key is one cluster key.
type Key struct {
	ID     uint8
	Secret []byte
}

// ParseKeyFile parses a key file: lines "<id> <hex secret>", '#' comments
// and blank lines ignored. The first key signs.
func ParseKeyFile(data []byte) ([]Key, error) {
	var keys []Key
	seen := map[uint8]bool{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for line := 1; sc.Scan(); line++ {
		s := strings.TrimSpace(sc.Text())
		if s == "" || strings.HasPrefix(s, "#") {
			continue
		}
		f := strings.Fields(s)
		if len(f) != 2 {
			return nil, fmt.Errorf("key file line %d: want \"<id> <hex secret>\"", line)
		}
		id, err := strconv.ParseUint(f[0], 10, 8)
		if err != nil {
			return nil, fmt.Errorf("key file line %d: id %q: want 0-255", line, f[0])
		}
		sec, err := hex.DecodeString(f[1])
		if err != nil {
			return nil, fmt.Errorf("key file line %d: secret: %w", line, err)
		}
		if len(sec) < MinKeyLen {
			return nil, fmt.Errorf("key file line %d: secret is %d bytes, want at least %d", line, len(sec), MinKeyLen)
		}
		if seen[uint8(id)] {
			return nil, fmt.Errorf("key file line %d: id %d repeated", line, id)
		}
		seen[uint8(id)] = true
		keys = append(keys, Key{ID: uint8(id), Secret: sec})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("key file: %w", err)
	}
	if len(keys) == 0 {
		return nil, errors.New("key file: no keys")
	}
	return keys, nil
}

type keyState struct {
	secret []byte
	until  time.Time // zero: no end
}

// Keyring is an immutable set of accepted keys and the signing key.
type Keyring struct {
	send uint8
	keys map[uint8]keyState
}

// NewKeyring returns a keyring signing with keys[0] and accepting all.
func NewKeyring(keys []Key) (*Keyring, error) {
	if len(keys) == 0 {
		return nil, errors.New("keyring: no keys")
	}
	kr := &Keyring{send: keys[0].ID, keys: make(map[uint8]keyState, len(keys))}
	for _, k := range keys {
		if len(k.Secret) < MinKeyLen {
			return nil, fmt.Errorf("keyring: key %d is %d bytes, want at least %d", k.ID, len(k.Secret), MinKeyLen)
		}
		kr.keys[k.ID] = keyState{secret: append([]byte(nil), k.Secret...)}
	}
	return kr, nil
}

// Rollover returns a keyring for keys that also accepts, until now+grace,
// keys this keyring held and keys does not.
func (kr *Keyring) Rollover(keys []Key, now time.Time, grace time.Duration) (*Keyring, error) {
	next, err := NewKeyring(keys)
	if err != nil {
		return nil, err
	}
	for id, ks := range kr.keys {
		if _, ok := next.keys[id]; ok {
			continue
		}
		until := now.Add(grace)
		if !ks.until.IsZero() && ks.until.Before(until) {
			until = ks.until
		}
		if until.After(now) {
			next.keys[id] = keyState{secret: ks.secret, until: until}
		}
	}
	return next, nil
}

// SendID is the signing key's id.
func (kr *Keyring) SendID() uint8 { return kr.send }

// Sealer signs and verifies datagrams with a keyring. It caches HMAC
// state and is not safe for concurrent use; use one per goroutine.
type Sealer struct {
	kr   *Keyring
	macs map[uint8]hash.Hash
	sum  [sha256.Size]byte
}

// NewSealer returns a Sealer for kr.
func NewSealer(kr *Keyring) *Sealer { return &Sealer{kr: kr, macs: map[uint8]hash.Hash{}} }

// SetKeyring switches to another keyring (after a key file reload).
func (s *Sealer) SetKeyring(kr *Keyring) {
	if kr != s.kr {
		s.kr = kr
		clear(s.macs)
	}
}

func (s *Sealer) mac(id uint8, secret []byte) hash.Hash {
	m, ok := s.macs[id]
	if !ok {
		m = hmac.New(sha256.New, secret)
		s.macs[id] = m
	}
	m.Reset()
	return m
}

// AppendHeader appends the datagram header to dst; append the body and
// then call Seal on the whole.
func (s *Sealer) AppendHeader(dst []byte) []byte {
	return append(dst, Magic0, Magic1, FormatVersion, s.kr.send)
}

// Seal appends the tag over pkt (header and body) and returns the datagram.
func (s *Sealer) Seal(pkt []byte) []byte {
	id := pkt[3]
	m := s.mac(id, s.kr.keys[id].secret)
	m.Write(pkt)
	return append(pkt, m.Sum(s.sum[:0])[:TagLen]...)
}

// Open verifies a datagram at now and returns its body (aliasing pkt).
func (s *Sealer) Open(pkt []byte, now time.Time) ([]byte, Reason) {
	if len(pkt) < Overhead {
		return nil, Truncated
	}
	if pkt[0] != Magic0 || pkt[1] != Magic1 {
		return nil, BadMagic
	}
	if pkt[2] != FormatVersion {
		return nil, BadVersion
	}
	ks, ok := s.kr.keys[pkt[3]]
	if !ok {
		return nil, UnknownKey
	}
	if !ks.until.IsZero() && !now.Before(ks.until) {
		return nil, ExpiredKey
	}
	n := len(pkt) - TagLen
	m := s.mac(pkt[3], ks.secret)
	m.Write(pkt[:n])
	if !hmac.Equal(m.Sum(s.sum[:0])[:TagLen], pkt[n:]) {
		return nil, BadMAC
	}
	return pkt[HeaderLen:n], OK
}
