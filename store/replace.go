package store

import (
	"cmp"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/cellar-cache/cellar/internal/splitmix"
	"github.com/cellar-cache/cellar/internal/wtinylfu"

	"github.com/cespare/xxhash/v2"
)

// replacer chooses which disk objects to keep: W-TinyLFU (internal/wtinylfu)
// over the disk index, its window adapted by shadow policies, each object
// weighted by its budget charge (a heavy candidate weighed against all the
// objects it would displace, wtinylfu's SetAdmitByBytes). A commit adds
// the object and the policy names the objects to evict (possibly the new
// one, when it is less frequent than what it would displace); the
// background loop removes them from pebble. Requests are counted into
// the policy: hits through a lossy buffer (the hit path takes no lock),
// misses directly.
//
// The policy's capacity is Options.EvictTarget of the disk budget less
// the bytes of fills in progress (diskTier.policyCapacity): it shrinks as
// fills write chunks and grows back as they commit. Past EvictStart
// (fills in progress beyond the reserve's bound) the background loop
// evicts the policy's next objects down to EvictTarget. The victims the
// policy named and the loop has not removed yet do not count towards that
// mark (see diskTier.charged).
//
// It survives restarts approximately: Open adds the stored objects in
// order of their last access (persisted at Close), so the recency order
// is kept; frequencies start from zero.
type replacer struct {
	mu      sync.Mutex // protects p, victims, drained
	p       *wtinylfu.Policy[string]
	victims []victim
	drained uint64 // last hit slot drained
	// pending is whether victims is not empty (read without mu by kick);
	// pendingBytes is the charge of the victims named and not yet removed,
	// which is still in diskTier.used (read without mu by the eviction
	// marks' checks).
	pending      atomic.Bool
	pendingBytes atomic.Int64

	// index is the disk tier's index (the same map); read only with
	// diskTier.mu held, by the callers that hold it.
	index map[string]*diskEntry

	// hits is a ring of entries hit since the last drain: a writer takes
	// a slot with head and overwrites it, so hits are dropped, never
	// waited for, when the drains fall behind.
	head atomic.Uint64
	hits [hitRing]atomic.Pointer[diskEntry]
	// dropped counts the hits overwritten before a drain reached them.
	dropped atomic.Uint64
}

// victim is an object the policy evicted, to remove if key still holds e.
type victim struct {
	key string
	e   *diskEntry
}

const (
	hitRing    = 1024
	drainEvery = 64 // a hit tries to drain the ring every drainEvery hits
)

// newReplacer returns the policy for a disk budget of capacity (weight)
// and about expectedObjects objects; seed seeds its hash (zero: a random
// seed, see Options.Seed).
func newReplacer(capacity, expectedObjects int64, seed uint64, index map[string]*diskEntry) *replacer {
	for seed == 0 {
		seed = rand.Uint64()
	}
	hash := func(k string) uint64 { return splitmix.Mix64(xxhash.Sum64String(k) ^ seed) }
	return &replacer{p: wtinylfu.NewShadowed(capacity, expectedObjects, hash), index: index}
}

// hit counts a request served by e. It takes no lock unless it is its
// turn to drain, and then only if the lock is free.
func (r *replacer) hit(e *diskEntry) {
	i := r.head.Add(1)
	r.hits[i%hitRing].Store(e)
	if i%drainEvery == 0 && r.mu.TryLock() {
		r.drainLocked()
		r.mu.Unlock()
	}
}

// drainLocked applies the buffered hits, oldest first.
func (r *replacer) drainLocked() {
	head := r.head.Load()
	from := r.drained + 1
	if head >= hitRing && from < head-hitRing+1 {
		r.dropped.Add(head - hitRing + 1 - from)
		from = head - hitRing + 1
	}
	for i := from; i <= head; i++ {
		if e := r.hits[i%hitRing].Swap(nil); e != nil {
			r.p.Access(e.key)
		}
	}
	r.drained = head
}

// missed counts a request for key that found nothing.
func (r *replacer) missed(key string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.drainLocked()
	r.p.Access(key)
}

// committed adds (or re-weighs) key, which the index now maps to an
// entry of charge weight, and reports whether the policy evicted objects.
// Call it with diskTier.mu held.
func (r *replacer) committed(key string, weight int64) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.drainLocked()
	n := len(r.victims)
	r.p.Add(key, weight, r.evicted)
	return len(r.victims) > n
}

// resize sets the policy's capacity (what committed objects may fill:
// diskTier.policyCapacity); the objects it evicts join the victims. Call
// it with diskTier.mu held.
func (r *replacer) resize(capacity int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.p.SetCapacity(capacity, r.evicted)
}

// reweighed changes the weight of key if the policy holds it. Call it with
// diskTier.mu held.
func (r *replacer) reweighed(key string, weight int64) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.p.Contains(key) {
		return false
	}
	n := len(r.victims)
	r.p.Add(key, weight, r.evicted)
	return len(r.victims) > n
}

func (r *replacer) evicted(key string) {
	if e := r.index[key]; e != nil {
		r.victims = append(r.victims, victim{key, e})
		r.pending.Store(true)
		r.pendingBytes.Add(e.charge)
	}
}

// removed forgets key (removed from the index for any reason). Call it with
// diskTier.mu held.
func (r *replacer) removed(key string) {
	r.mu.Lock()
	r.p.Remove(key)
	r.mu.Unlock()
}

// takeVictims returns and forgets the objects evicted so far; the caller
// removes them, calling removedVictim for each.
func (r *replacer) takeVictims() []victim {
	r.mu.Lock()
	defer r.mu.Unlock()
	v := r.victims
	r.victims = nil
	r.pending.Store(false)
	return v
}

// removedVictim: v, from takeVictims, is no longer in the index.
func (r *replacer) removedVictim(v victim) {
	r.pendingBytes.Add(-v.e.charge)
}

// next evicts the policy's next victim and returns its key, or false when
// the policy holds nothing.
func (r *replacer) next() (string, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	k, ok := r.p.Victim()
	if ok {
		r.p.Remove(k)
	}
	return k, ok
}

// rebuildReplacer adds the objects found by recover to the policy, least
// recently used first, and starts eviction if they exceed it.
func (d *diskTier) rebuildReplacer() {
	d.mu.Lock()
	entries := make([]*diskEntry, 0, len(d.index))
	for _, e := range d.index {
		entries = append(entries, e)
	}
	slices.SortFunc(entries, func(a, b *diskEntry) int { return cmp.Compare(a.access.Load(), b.access.Load()) })
	for _, e := range entries {
		d.repl.committed(e.key, e.charge)
	}
	d.mu.Unlock()
}
