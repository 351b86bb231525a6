package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strconv"
	"time"

	"github.com/cellar-cache/cellar/cache"
	"github.com/cellar-cache/cellar/store"
)

// Cellar replays requests through cellar's real two-tier store (ristretto
// memory tier over the pebble disk tier): a hit is a successful store.Get,
// a miss is followed by a fill of the object's size in zero bytes.
//
// The store runs in its simulation mode (store.Options.Simulate): what
// decides what is resident is the production code (each object's charge
// to the budget, record overhead included, the budget's eviction marks, the
// disk tier's replacement policy, the memory tier's admission), but pebble
// is in memory without a write-ahead log, compression or fsync, bodies are
// not written (they read back as zeros and are charged as if written),
// and each commit evicts before it returns, so that a replay does not
// depend on timing. Close releases it.
type Cellar struct {
	ctx  context.Context
	s    *store.Store
	dir  string
	err  error // first store error; Access then only counts misses
	meta cache.Meta
	key  []byte
}

// CellarOptions configures NewCellar.
type CellarOptions struct {
	// MemoryBytes and DiskBytes are the tiers' budgets (store.Options).
	// DiskBytes must be at least 1 MiB.
	MemoryBytes, DiskBytes int64
	// MeanObjectSize sizes the memory tier's counters (store.Options).
	MeanObjectSize int64
	// MemTableBytes is pebble's memtable size (store.Options); zero means
	// the store's default. The ballast file is off (in-memory file system).
	MemTableBytes int64
	// ObjectBudget, if positive, is the disk tier's budget for objects
	// (store.Stats.DiskObjectBudget) to get: DiskBytes is then corrected
	// for the store's fixed overheads.
	ObjectBudget int64
	// Seed seeds the store's hashes (store.Options.Seed); zero means 1, so
	// that a replay is repeatable.
	Seed uint64
	// TempDir is where the data directory (its lock file only; pebble's
	// files are in memory) is made; empty means os.TempDir().
	TempDir string
}

// NewCellar opens a store in a new temporary directory.
func NewCellar(ctx context.Context, o CellarOptions) (*Cellar, error) {
	dir, err := os.MkdirTemp(o.TempDir, "cellar-bench-*")
	if err != nil {
		return nil, fmt.Errorf("bench: cellar policy: %w", err)
	}
	so := store.Options{
		Dir:            dir,
		MemoryBytes:    o.MemoryBytes,
		DiskBytes:      o.DiskBytes,
		MeanObjectSize: o.MeanObjectSize,
		Logger:         slog.New(slog.NewTextHandler(io.Discard, nil)),
		MemTableBytes:  o.MemTableBytes,
		ReserveBytes:   -1,
		Simulate:       true,
		Seed:           max(o.Seed, 1),
	}
	s, err := store.Open(so)
	// The store derives its budget for objects from DiskBytes (less
	// overheads that partly scale with it): correct DiskBytes by the
	// difference until the budget is the one asked for.
	for range 4 {
		if err != nil || o.ObjectBudget <= 0 {
			break
		}
		got := s.Stats().DiskObjectBudget
		if got == o.ObjectBudget {
			break
		}
		s.Close()
		so.DiskBytes += o.ObjectBudget - got
		s, err = store.Open(so)
	}
	if err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("bench: cellar policy: %w", err)
	}
	now := time.Now()
	return &Cellar{
		ctx: ctx,
		s:   s,
		dir: dir,
		meta: cache.Meta{
			Status:       http.StatusOK,
			Header:       http.Header{"Content-Type": {"application/octet-stream"}},
			RequestTime:  now,
			ResponseTime: now,
		},
	}, nil
}

// newCellarPolicy maps a simulation capacity onto the store's budgets: the
// disk tier's budget for objects (Stats.DiskObjectBudget) is the capacity,
// and the memory tier, which holds copies of disk objects (it is
// inclusive), gets memShare of it in front. pebble's memtables and
// write-ahead logs come on top, as the fixed overheads of -disk; there is
// no ballast file on the in-memory file system.
func newCellarPolicy(ctx context.Context, capacity int64, bytes bool, memShare float64, meanSize int64, seed uint64) (*Cellar, error) {
	if !bytes {
		return nil, fmt.Errorf("%w: the cellar policy needs byte capacities (-bytes, or -object-size with -capacity), since the store budgets bytes", ErrUsage)
	}
	if capacity < 1<<20 {
		return nil, fmt.Errorf("%w: cellar policy: capacity %d bytes must be at least 1 MiB", ErrUsage, capacity)
	}
	mem := int64(float64(capacity) * memShare)
	if mem == 0 {
		mem = -1 // store: negative disables the memory tier
	}
	// Memtables of a 32nd of the capacity: the fixed overheads (a few
	// memtables and a twelfth of DiskBytes) then leave the objects more
	// than half of DiskBytes, as the store requires.
	mt := max(64<<10, min(capacity/32, 64<<20))
	return NewCellar(ctx, CellarOptions{
		MemoryBytes: mem, DiskBytes: 2*capacity + 8*mt, ObjectBudget: capacity,
		MemTableBytes: mt, MeanObjectSize: meanSize, Seed: seed,
	})
}

// Name implements Policy.
func (c *Cellar) Name() string { return "cellar" }

var zeros [64 << 10]byte

// Access implements Policy.
func (c *Cellar) Access(key uint64, size int64) bool {
	if c.err != nil {
		return false
	}
	c.key = strconv.AppendUint(append(c.key[:0], "https://bench.invalid/o/"...), key, 10)
	k := string(c.key)
	_, err := c.s.Get(c.ctx, k)
	if err == nil {
		return true
	}
	if !errors.Is(err, store.ErrNotFound) {
		c.err = fmt.Errorf("bench: cellar policy: get: %w", err)
		return false
	}
	w, err := c.s.Create(c.ctx, k, c.meta, store.CreateOptions{SizeHint: size})
	if errors.Is(err, store.ErrUnavailable) || errors.Is(err, store.ErrTooLarge) {
		return false // not stored, as in production
	}
	if err != nil {
		c.err = fmt.Errorf("bench: cellar policy: create: %w", err)
		return false
	}
	for left := size; left > 0; {
		n := min(left, int64(len(zeros)))
		if _, err := w.Write(zeros[:n]); err != nil {
			w.Abort()
			return false
		}
		left -= n
	}
	if _, err := w.Commit(c.ctx); err != nil && !errors.Is(err, store.ErrUnavailable) && !errors.Is(err, store.ErrTooLarge) {
		c.err = fmt.Errorf("bench: cellar policy: commit: %w", err)
	}
	return false
}

func (c *Cellar) resident() *Resident {
	st := c.s.Stats()
	return &Resident{
		MemoryObjects: st.MemoryObjects, MemoryBytes: st.MemoryBytes, MemoryBudget: st.MemoryBudget,
		DiskObjects: st.DiskObjects, DiskBytes: st.DiskBytes, DiskBudget: st.DiskObjectBudget,
	}
}

// Stats returns the store's gauges and counters.
func (c *Cellar) Stats() store.Stats { return c.s.Stats() }

// Close closes the store, removes its directory, and returns the first
// store error met during the replay, if any.
func (c *Cellar) Close() error {
	err := errors.Join(c.err, c.s.Close())
	return errors.Join(err, os.RemoveAll(c.dir))
}

var _ Policy = (*Cellar)(nil)
