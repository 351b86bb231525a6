package main

import (
	"context"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
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
// dominates the heap. limitToStore never sets less than gcFloor, which
// leaves the collector room beyond the live heap. The encoders are added
// as they come (compress.NotifyEncoderBytes): an encoding job's encoder,
// up to 36 MB, would otherwise push a small cache's heap over the limit
// and keep the collector running for the whole job. `make soak-memory`
// measures the process against issue 14's bounds.
func heapLimit(resident, budget, encoders int64) int64 {
	return min(resident+resident/4+32<<20, budget+budget/4+128<<20) + encoders
}

// limitToStore sets the Go memory limit from st's resident memory bytes
// and the compressors' encoders, or to gcFloor of the heap when that is
// more. Calls are serialized, so that a limit read before a new encoder
// was counted cannot replace one after it.
func limitToStore(st *store.Store, budget int64) {
	limitMu.Lock()
	defer limitMu.Unlock()
	debug.SetMemoryLimit(max(heapLimit(st.MemoryBytes(), budget, compress.EncoderBytes()), gcFloor(readHeap())))
}

// heapState is what the Go runtime reports of its memory: the bytes of
// live objects at the end of the last collection, and the bytes it holds
// for other than objects (stacks, metadata, unused space in spans) that
// count against the memory limit.
type heapState struct{ live, held int64 }

var heapMetrics = []string{
	"/gc/heap/live:bytes",
	"/memory/classes/total:bytes",
	"/memory/classes/heap/objects:bytes",
	"/memory/classes/heap/free:bytes",
	"/memory/classes/heap/released:bytes",
}

func readHeap() heapState {
	s := make([]metrics.Sample, len(heapMetrics))
	for i, name := range heapMetrics {
		s[i].Name = name
	}
	metrics.Read(s)
	v := func(i int) int64 {
		if s[i].Value.Kind() != metrics.KindUint64 {
			return 0
		}
		return int64(s[i].Value.Uint64())
	}
	return heapState{live: v(0), held: max(v(1)-v(2)-v(3)-v(4), 0)}
}

// gcFloor is the least memory limit that leaves the collector room to
// work: the live heap and what the runtime holds besides, plus gcRoom of
// the live heap. Under the limit alone, a heap whose objects cost more
// than the store charges for them (small objects: their header maps,
// index entries and prepared hits) would sit at the limit, and the
// collector would run back to back, up to half the CPU, instead of once
// per gcRoom allocated.
func gcFloor(h heapState) int64 {
	return h.live + h.held + gcRoom(h.live)
}

// gcRoom is 16 MiB, or 1/16 of the live heap when that is more.
func gcRoom(live int64) int64 {
	return max(16<<20, live/16)
}

var limitMu sync.Mutex

// followStore calls limitToStore after every garbage collection and every
// interval until ctx ends: after a collection the live heap is new, and
// the floor under the limit follows it (gcFloor); while the heap is quiet
// the store's resident bytes may still change. Unless the operator set
// GOMEMLIMIT, serve calls limitToStore once before it starts listening,
// runs followStore from then on, and calls limitToStore when a new
// encoder is made.
func followStore(ctx context.Context, st *store.Store, budget int64, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	collected := afterGC(ctx)
	for {
		select {
		case <-ctx.Done():
			return
		case <-collected:
		case <-t.C:
		}
		limitToStore(st, budget)
	}
}

// afterGC returns a channel that is ready after each garbage collection
// until ctx ends: a cleanup on an unreachable object runs once the
// collector has found it so, and arms the next one. The send never
// blocks the runtime's cleanup goroutine.
func afterGC(ctx context.Context) <-chan struct{} {
	c := make(chan struct{}, 1)
	var arm func()
	arm = func() {
		runtime.AddCleanup(new(gcSentinel), func(struct{}) {
			if ctx.Err() != nil {
				return
			}
			select {
			case c <- struct{}{}:
			default:
			}
			arm()
		}, struct{}{})
	}
	arm()
	return c
}

// gcSentinel is big enough not to share a tiny-allocator block, whose
// objects are freed only together.
type gcSentinel [16]byte
