package main

import (
	"context"
	"runtime/debug"
	"time"

	"github.com/cellar-cache/cellar/store"
)

// heapLimit is the Go memory limit for a memory tier holding resident bytes
// out of budget: 1.25 × resident + 40 MiB (the objects, their share of
// overhead, and room for requests in flight), never more than 1.25 ×
// budget + 128 MiB. The collector then keeps the heap near what the cache
// holds instead of letting it grow to twice that (GOGC's 100%) once the
// cache dominates the heap; while the cache is small GOGC governs.
func heapLimit(resident, budget int64) int64 {
	return min(resident+resident/4+40<<20, budget+budget/4+128<<20)
}

// limitToStore sets the Go memory limit from st's resident memory bytes.
func limitToStore(st *store.Store, budget int64) {
	debug.SetMemoryLimit(heapLimit(st.Stats().MemoryBytes, budget))
}

// followStore calls limitToStore every interval until ctx ends. Unless the
// operator set GOMEMLIMIT, serve calls limitToStore once before it starts
// listening and runs followStore from then on.
func followStore(ctx context.Context, st *store.Store, budget int64, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			limitToStore(st, budget)
		}
	}
}
