package bench

import (
	"github.com/cellar-cache/cellar/internal/splitmix"
	"github.com/cellar-cache/cellar/internal/wtinylfu"
)

// WTinyLFU is adaptive W-TinyLFU (package internal/wtinylfu, the policy of
// Caffeine and of cellar's disk tier), a reference policy: a 1% LRU window
// whose size hill climbing adapts, TinyLFU admission into a segmented LRU.
// With byte capacities (NewWTinyLFUBytes) an object's weight is its size.
type WTinyLFU struct {
	p     *wtinylfu.Policy[uint64]
	bytes bool
}

// NewWTinyLFU returns a W-TinyLFU of capacity objects.
func NewWTinyLFU(capacity int64) *WTinyLFU {
	return &WTinyLFU{p: wtinylfu.New(capacity, capacity, splitmix.Mix64)}
}

// NewWTinyLFUBytes returns a W-TinyLFU of capacity bytes; meanSize
// estimates the mean object size, which sizes its frequency sketch.
func NewWTinyLFUBytes(capacity, meanSize int64) *WTinyLFU {
	return &WTinyLFU{p: wtinylfu.New(capacity, capacity/max(meanSize, 1), splitmix.Mix64), bytes: true}
}

// Name implements Policy.
func (w *WTinyLFU) Name() string { return "wtinylfu" }

// Access implements Policy.
func (w *WTinyLFU) Access(key uint64, size int64) bool {
	weight := int64(1)
	if w.bytes {
		weight = size
	}
	if w.p.Access(key) {
		if w.bytes {
			w.p.Add(key, weight, discard) // a hit with a new size resizes
		}
		return true
	}
	w.p.Add(key, weight, discard)
	return false
}

func discard(uint64) {}

var _ Policy = (*WTinyLFU)(nil)
