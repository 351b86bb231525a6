package store

import (
	"bytes"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/cellar-cache/cellar/cache"

	"github.com/cespare/xxhash/v2"
	"github.com/dgraph-io/ristretto/v2"
	"github.com/dgraph-io/ristretto/v2/z"
)

// entryOverhead is the fixed memory cost charged per memory-tier entry on
// top of its key, header and body bytes: the Object, ristretto's item, store
// and policy slots, and the header map. BenchmarkHeapPerObject measures
// about 2000 heap bytes per cached 1 KiB object with two header fields,
// memory tier and disk index together.
const entryOverhead = 512

// memoOverhead and memoFieldOverhead are charged per memory-tier entry for
// what readers keep in its memo: the proxy's prepared hit, a fixed part and
// a list entry (name and value slice) per header field.
const (
	memoOverhead      = 192
	memoFieldOverhead = 40
)

// memo is where readers keep what they derive from a memory-resident
// object once, so that every later reader of the same object reuses it
// (the proxy keeps the header of a hit there, ready to send). It belongs to
// one Object: a copy of the Object (with other metadata, say) shares the
// pointer but is not its owner, and sees no memo. Safe for concurrent use.
type memo struct {
	of *Object
	v  atomic.Value
}

// keepBody makes o resident with its whole body. A body that grew by
// appending (a fill without Content-Length) may have up to a quarter more
// capacity than bytes, which cost() does not charge: such a body is copied
// to one of its size, once, so that what is resident is what is charged.
func (o *Object) keepBody(body []byte) {
	if cap(body)-len(body) > len(body)/32 {
		body = bytes.Clone(body)
	}
	o.body, o.resident = body, true
	o.memo = &memo{of: o}
}

// Memo returns the value SetMemo last kept with o, or nil.
func (o *Object) Memo() any {
	if o.memo == nil || o.memo.of != o {
		return nil
	}
	return o.memo.v.Load()
}

// SetMemo keeps v with o for its later readers while o is resident in
// memory, replacing what was kept; an object read from disk, or a copy of
// an Object, keeps nothing. The Object's fields never change, so what is
// derived from them alone stays true; a caller whose value depends on more
// (its configuration) records that in v and checks it. Every v must have
// the same concrete type.
func (o *Object) SetMemo(v any) {
	if o.memo == nil || o.memo.of != o {
		return
	}
	o.memo.v.Store(v)
}

// memTier is the memory tier: complete objects (with their bodies) in a
// ristretto cache whose cost is bytes. Ristretto may drop or reject a Set;
// that is a later miss, never an error. Safe for concurrent use.
type memTier struct {
	c        *ristretto.Cache[string, *Object]
	maxBytes int64
	maxObj   int64
	now      func() time.Time
	hot      hotIndex // the hot copies among the objects (hot.go)
}

func newMemTier(opts Options) (*memTier, error) {
	counters := max(10*opts.MemoryBytes/opts.MeanObjectSize, 1000)
	m := &memTier{maxBytes: opts.MemoryBytes, maxObj: opts.MaxMemoryObject, now: opts.now}
	c, err := ristretto.NewCache(&ristretto.Config[string, *Object]{
		OnExit:      m.exit, // hot.go
		NumCounters: counters,
		MaxCost:     opts.MemoryBytes,
		BufferItems: 64,
		// The cost we pass in is already the object's whole footprint.
		IgnoreInternalCost: true,
		KeyToHash:          keyToHash,
	})
	if err != nil {
		return nil, fmt.Errorf("store: memory tier: %w", err)
	}
	m.c = c
	return m, nil
}

// keyToHash is ristretto's own hash of a string key (z.KeyToHash), without
// its switch on the key's type through an interface on every Get.
func keyToHash(key string) (uint64, uint64) {
	return z.MemHashString(key), xxhash.Sum64String(key)
}

// cost is the memory charged for o: header and body bytes plus overhead.
func cost(o *Object) int64 {
	n := int64(entryOverhead + memoOverhead + len(o.Key) + len(o.body))
	for k, vs := range o.Meta.Header {
		n += int64(len(k)) + 16 + memoFieldOverhead
		for _, v := range vs {
			n += int64(len(v)) + 16
		}
	}
	for _, t := range o.Tags {
		n += int64(len(t)) + 16
	}
	return n
}

// get returns the object under key, if resident and not past KeepUntil at
// now (zero: the tier's clock, read only for an object with a KeepUntil);
// an expired object is dropped.
func (m *memTier) get(key string, now time.Time) (*Object, bool) {
	o, ok := m.c.Get(key)
	if !ok || o.Key != key {
		return nil, false
	}
	if o.KeepUntil.IsZero() {
		return o, true
	}
	if now.IsZero() {
		now = m.now()
	}
	if o.expired(now) {
		m.c.Del(key)
		return nil, false
	}
	return o, true
}

// The memory tier is the disk tier's indexPeer: Store composes the two,
// and the disk tier tells it of every index change in order.
var _ indexPeer = (*memTier)(nil)

// stored offers o to the cache when it is resident, and otherwise drops
// whatever older object key held.
func (m *memTier) stored(o *Object) {
	// Del first, always: ristretto applies Sets in the background and
	// drops a new Set of a key whose earlier Set is still buffered, which
	// would leave the object o replaces in memory; the Del is queued
	// between the two.
	m.del(o.Key)
	if o.resident {
		m.set(o, false)
	}
}

// updated replaces the metadata and keep time of the resident object
// under key with a new Object sharing its body (generation gen).
func (m *memTier) updated(key string, meta cache.Meta, keepUntil time.Time, gen uint64) {
	o, ok := m.get(key, time.Time{})
	if !ok {
		// A Set still in ristretto's buffer would land after us with the
		// old meta; a Del is queued behind it.
		m.del(key)
		return
	}
	c := *o
	c.Meta, c.KeepUntil = meta, keepUntil
	c.loc.gen = gen
	c.memo = &memo{of: &c} // derived from the old metadata: not c's
	m.set(&c, false)
}

// removed drops the object under key.
func (m *memTier) removed(key string) {
	m.del(key)
}

// set offers o (which must be resident) to the cache. With wait it returns
// once ristretto has applied the Set, so that a following get sees it unless
// admission rejected it.
func (m *memTier) set(o *Object, wait bool) {
	if !o.resident || o.Size > m.maxObj {
		return
	}
	if m.c.Set(o.Key, o, cost(o)) && wait {
		m.c.Wait()
	}
}

func (m *memTier) del(key string) {
	m.c.Del(key)
}

// MemoryBytes returns the bytes the memory tier charges now: Stats's
// MemoryBytes, without counting the objects (which visits every one).
func (s *Store) MemoryBytes() int64 {
	if s.mem == nil {
		return 0
	}
	return s.mem.c.MaxCost() - s.mem.c.RemainingCost()
}

// usage returns the bytes charged and the number of resident objects.
func (m *memTier) usage() (bytes, objects int64) {
	m.c.IterValues(func(*Object) bool {
		objects++
		return false
	})
	return m.c.MaxCost() - m.c.RemainingCost(), objects
}

// clear drops every object.
func (m *memTier) clear() {
	m.c.Clear()
}

func (m *memTier) close() {
	m.c.Close()
}
