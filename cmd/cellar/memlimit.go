package main

import (
	"context"
	"runtime/debug"
	"sync"
	"time"

	"github.com/cellar-cache/cellar/compress"
	"github.com/cellar-cache/cellar/store"
)

// heapLimit is the Go memory limit for a memory tier holding resident bytes
// out of budget while the compressors hold encoders bytes: 1.25 × resident
// + 32 MiB (the objects with what the heap spends on them beyond their
// charge, up to 16% for 1 KiB objects, and room for requests in flight
// and for garbage), never more than 1.25 × budget + 128 MiB, plus the
// encoders. The collector then keeps the heap near what the cache holds
// instead of letting it grow to twice that (GOGC's 100%) once the cache
// dominates the heap; while the cache is small GOGC governs. The encoders
// are added as they come (compress.NotifyEncoderBytes): an encoding job's
// encoder, up to 36 MB, would otherwise push a small cache's heap over
// the limit and keep the collector running for the whole job. `make
// soak-memory` measures the process against issue 14's bounds.
func heapLimit(resident, budget, encoders int64) int64 {
	return min(resident+resident/4+32<<20, budget+budget/4+128<<20) + encoders
}

// limitToStore sets the Go memory limit from st's resident memory bytes
// and the compressors' encoders. Calls are serialized, so that a limit
// read before a new encoder was counted cannot replace one after it.
func limitToStore(st *store.Store, budget int64) {
	limitMu.Lock()
	defer limitMu.Unlock()
	debug.SetMemoryLimit(heapLimit(st.MemoryBytes(), budget, compress.EncoderBytes()))
}

var limitMu sync.Mutex

// followStore calls limitToStore every interval until ctx ends. Unless the
// operator set GOMEMLIMIT, serve calls limitToStore once before it starts
// listening, runs followStore from then on, and calls limitToStore when a
// new encoder is made.
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
