package conn

import (
	"context"
	"fmt"
	"sync"
)

// MemoryBackend is an in-memory Backend: Export feeds entries as if the
// local kernel had created them; Imported returns what peers installed.
// It is safe for concurrent use.
type MemoryBackend struct {
	out chan []Entry

	mu       sync.Mutex
	imported map[Key]Entry
}

// NewMemoryBackend returns an empty MemoryBackend.
func NewMemoryBackend() *MemoryBackend {
	return &MemoryBackend{out: make(chan []Entry, 64), imported: make(map[Key]Entry)}
}

// Export queues local entries for Run to hand to syncd. It blocks while
// Run is not consuming, until ctx is done. It is where entries enter this
// backend, so it validates them (syncd does not again): an invalid entry
// refuses the whole batch.
func (m *MemoryBackend) Export(ctx context.Context, entries []Entry) error {
	for i := range entries {
		if err := entries[i].Validate(); err != nil {
			return fmt.Errorf("export entry %d: %w", i, err)
		}
	}
	cp := append([]Entry(nil), entries...)
	select {
	case m.out <- cp:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Run implements Backend.
func (m *MemoryBackend) Run(ctx context.Context, export func([]Entry)) error {
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case b := <-m.out:
			export(b)
		}
	}
}

// Import implements Backend: the newest entry per key is kept.
func (m *MemoryBackend) Import(_ context.Context, entries []Entry) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for i := range entries {
		e := entries[i]
		k := e.Key()
		if old, ok := m.imported[k]; ok && !Newer(&e, &old) {
			continue
		}
		e.PEData = append([]byte(nil), e.PEData...)
		m.imported[k] = e
	}
	return nil
}

// Imported returns a copy of the imported entries, keyed.
func (m *MemoryBackend) Imported() map[Key]Entry {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make(map[Key]Entry, len(m.imported))
	for k, v := range m.imported {
		out[k] = v
	}
	return out
}
