package coord

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"slices"

	"github.com/saru-lb/saru/saru/partition"
)

// MetaVersion is the version of the gossip metadata encoding.
const MetaVersion = 1

// MaxMetaSize is the largest encoded Meta: memberlist carries at most 512
// bytes of node metadata.
const MaxMetaSize = 512

// Meta is what a director gossips about itself with its membership.
type Meta struct {
	// ID is the director's id; it equals its memberlist node name.
	ID string
	// Weight is the director's capacity.
	Weight int
	// State is the director's lifecycle state (Joining, Active, Draining).
	State partition.State
	// Epoch is the newest assignment epoch the director has.
	Epoch uint64
	// Applied is the newest epoch the director installed in its filter.
	Applied uint64
	// Hash fingerprints the director's assignment of epoch Epoch, so two
	// assignments with the same epoch and different content (computed by
	// two leaders that did not see each other) are told apart.
	Hash uint64
	// GRPC is the director's management address, host:port.
	GRPC string
	// Buckets and Seed must equal the cluster's: a director announcing
	// other values is refused.
	Buckets int
	Seed    uint32
	// Confirms lists the draining directors whose connections this one's
	// syncd holds (phase one of a drain).
	Confirms []string
}

type wireMeta struct {
	V int      `json:"v"`
	I string   `json:"i"`
	W int      `json:"w"`
	S uint8    `json:"s"`
	E uint64   `json:"e"`
	A uint64   `json:"a"`
	X uint64   `json:"x,omitempty"`
	G string   `json:"g"`
	B int      `json:"b"`
	H uint32   `json:"h"`
	C []string `json:"c,omitempty"`
}

// Marshal encodes m for gossip. It fails if the encoding exceeds
// MaxMetaSize.
func (m Meta) Marshal() ([]byte, error) {
	b, err := json.Marshal(wireMeta{V: MetaVersion, I: m.ID, W: m.Weight, S: uint8(m.State), E: m.Epoch, A: m.Applied, X: m.Hash, G: m.GRPC, B: m.Buckets, H: m.Seed, C: m.Confirms})
	if err != nil {
		return nil, fmt.Errorf("encode meta of %q: %w", m.ID, err)
	}
	if len(b) > MaxMetaSize {
		return nil, fmt.Errorf("encode meta of %q: %d bytes, limit %d", m.ID, len(b), MaxMetaSize)
	}
	return b, nil
}

// UnmarshalMeta decodes and checks gossiped metadata.
func UnmarshalMeta(b []byte) (Meta, error) {
	if len(b) > MaxMetaSize {
		return Meta{}, fmt.Errorf("decode meta: %d bytes, limit %d", len(b), MaxMetaSize)
	}
	var w wireMeta
	if err := json.Unmarshal(b, &w); err != nil {
		return Meta{}, fmt.Errorf("decode meta: %w", err)
	}
	if w.V != MetaVersion {
		return Meta{}, fmt.Errorf("decode meta: version %d, want %d", w.V, MetaVersion)
	}
	m := Meta{ID: w.I, Weight: w.W, State: partition.State(w.S), Epoch: w.E, Applied: w.A, Hash: w.X, GRPC: w.G, Buckets: w.B, Seed: w.H, Confirms: w.C}
	switch {
	case m.ID == "":
		return Meta{}, fmt.Errorf("decode meta: empty id")
	case m.Weight < 1:
		return Meta{}, fmt.Errorf("decode meta of %q: weight %d: must be at least 1", m.ID, m.Weight)
	case m.State < partition.Active || m.State > partition.Draining:
		return Meta{}, fmt.Errorf("decode meta of %q: unknown state %d", m.ID, w.S)
	case m.Applied > m.Epoch:
		return Meta{}, fmt.Errorf("decode meta of %q: applied epoch %d above epoch %d", m.ID, m.Applied, m.Epoch)
	case slices.Contains(m.Confirms, ""):
		return Meta{}, fmt.Errorf("decode meta of %q: empty id in confirms", m.ID)
	}
	return m, nil
}

func (m Meta) equal(o Meta) bool {
	return m.ID == o.ID && m.Weight == o.Weight && m.State == o.State && m.Epoch == o.Epoch &&
		m.Applied == o.Applied && m.Hash == o.Hash && m.GRPC == o.GRPC && m.Buckets == o.Buckets && m.Seed == o.Seed &&
		slices.Equal(m.Confirms, o.Confirms)
}

func (m Meta) clone() Meta {
	m.Confirms = slices.Clone(m.Confirms)
	return m
}

// Fingerprint hashes an assignment's epoch, members, owners and standbys
// (FNV-1a, 64 bits).
func Fingerprint(a partition.Assignment) uint64 {
	h := fnv.New64a()
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], a.Epoch)
	h.Write(b[:])
	for _, m := range a.Members {
		fmt.Fprintf(h, "%s/%d/%d;", m.ID, m.Weight, m.State)
	}
	for i := range a.Owners {
		h.Write([]byte(a.Owners[i]))
		h.Write([]byte{0})
		h.Write([]byte(a.Standbys[i]))
		h.Write([]byte{0})
	}
	return h.Sum64()
}
