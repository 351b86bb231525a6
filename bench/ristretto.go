package bench

import (
	"fmt"

	"github.com/dgraph-io/ristretto/v2"

	"github.com/cellar-cache/cellar/internal/splitmix"
)

// Ristretto runs the ristretto cache configured the way cellar's memory tier
// configures it (DESIGN.md): NumCounters ten times the number of objects
// expected to fit, MaxCost the budget, the cost of an object its size (or 1
// for object capacities), BufferItems 64, IgnoreInternalCost.
//
// ristretto applies Sets asynchronously and may drop them under load. With
// Wait set, Access waits for every Set to be applied, which measures the
// quality of the admission and eviction policy (TinyLFU + sampled LFU); without
// it, the numbers are what production sees, depend on scheduling and vary
// from run to run. Gets are sampled into the policy in batches either way.
//
// Close the Ristretto to stop ristretto's goroutines.
type Ristretto struct {
	c     *ristretto.Cache[uint64, struct{}]
	bytes bool
	wait  bool
}

// RistrettoOptions configures NewRistretto.
type RistrettoOptions struct {
	// Capacity is the budget in objects, or in bytes if Bytes is set. Required.
	Capacity int64
	// Bytes makes Capacity a byte budget and an object's cost its size.
	Bytes bool
	// MeanSize estimates the mean object size in bytes, to size the
	// frequency sketch when Bytes is set (expected objects = Capacity /
	// MeanSize). Zero means 1.
	MeanSize int64
	// Wait makes every Set synchronous (see Ristretto).
	Wait bool
}

// NewRistretto builds the cache.
func NewRistretto(o RistrettoOptions) (*Ristretto, error) {
	if o.Capacity <= 0 {
		return nil, fmt.Errorf("bench: ristretto Capacity %d must be positive", o.Capacity)
	}
	items := o.Capacity
	if o.Bytes {
		items = o.Capacity / max(o.MeanSize, 1)
	}
	c, err := ristretto.NewCache(&ristretto.Config[uint64, struct{}]{
		NumCounters:        max(10*items, 1000), // as store.newMemTier
		MaxCost:            o.Capacity,
		BufferItems:        64,
		IgnoreInternalCost: true,
		// Cellar hashes URL strings; trace keys are often small
		// consecutive integers, so spread them the way a string hash
		// would instead of using the identity that ristretto applies to
		// integer keys.
		KeyToHash: func(k uint64) (uint64, uint64) { return splitmix.Mix64(k), splitmix.Mix64(k ^ 0x9e3779b97f4a7c15) },
	})
	if err != nil {
		return nil, fmt.Errorf("bench: ristretto: %w", err)
	}
	return &Ristretto{c: c, bytes: o.Bytes, wait: o.Wait}, nil
}

// Name implements Policy.
func (r *Ristretto) Name() string {
	if r.wait {
		return "ristretto-wait"
	}
	return "ristretto"
}

// Access implements Policy: a Get, and on a miss a Set.
func (r *Ristretto) Access(key uint64, size int64) bool {
	if _, ok := r.c.Get(key); ok {
		return true
	}
	cost := int64(1)
	if r.bytes {
		cost = size
	}
	r.c.Set(key, struct{}{}, cost)
	if r.wait {
		r.c.Wait()
	}
	return false
}

// Close stops ristretto's goroutines.
func (r *Ristretto) Close() error {
	r.c.Close()
	return nil
}
