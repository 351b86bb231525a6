package bench

import (
	"fmt"
	"math"
)

// OPT is Belady's optimal offline policy (Belady, 1966, "MIN"), which needs
// the whole future of the trace: it is built from the requests it will be
// fed, and Access must be called with exactly those requests, in order.
//
// With object capacity (NewOPT) it is exact for a demand-fetch cache, one
// that stores every missed object (Belady's MIN): on a miss with a full
// cache it evicts the cached object whose next use is farthest away. This is
// the form the reference figures in testdata/traces/README.md use. A cache
// that may decline to store an object can do slightly better (by 0.03
// percentage points at most on the shipped traces).
//
// With byte capacity (NewOPTBytes) finding the optimum is NP-hard; OPT then
// uses the usual approximation: a missed object is admitted only if enough
// room can be made by evicting objects whose next use is later than its own,
// farthest first; otherwise nothing is evicted and it is not admitted.
// Objects never used again are not admitted. It is an estimate of the
// optimum, not a proven bound, and always at most the largest possible hit
// ratio (every request but the first to each object).
type OPT struct {
	capacity int64
	bytes    bool
	bypass   bool // bytes mode: the newcomer competes for room (see OPT)
	used     int64

	reqs []Request
	next []int32 // next[i]: index of the next request to reqs[i].Key, or never
	pos  int     // index of the next request Access expects

	cached map[uint64]optEntry // key -> its current next use and size
	heap   optHeap             // max-heap by next use; stale entries skipped
	spare  []optItem           // scratch for entries popped and put back
}

// never is the next use of an object that is not requested again.
const never = math.MaxInt32

type optEntry struct {
	next int32
	size int64
}

type optItem struct {
	next int32
	key  uint64
}

// NewOPT returns the exact optimum for a cache of capacity objects over reqs.
func NewOPT(reqs []Request, capacity int64) *OPT { return newOPT(reqs, capacity, false) }

// NewOPTBytes returns the size-aware approximation of the optimum for a
// cache of capacity bytes over reqs.
func NewOPTBytes(reqs []Request, capacity int64) *OPT { return newOPT(reqs, capacity, true) }

func newOPT(reqs []Request, capacity int64, bytes bool) *OPT {
	if len(reqs) >= never {
		panic(fmt.Sprintf("bench: OPT supports up to %d requests, got %d", never-1, len(reqs)))
	}
	return &OPT{
		capacity: capacity,
		bytes:    bytes,
		bypass:   bytes,
		reqs:     reqs,
		next:     NextUses(reqs),
		cached:   make(map[uint64]optEntry),
	}
}

// NextUses returns, for each request, the index of the next request for the
// same key, or math.MaxInt32 if there is none.
func NextUses(reqs []Request) []int32 {
	next := make([]int32, len(reqs))
	last := make(map[uint64]int32)
	for i := len(reqs) - 1; i >= 0; i-- {
		k := reqs[i].Key
		if j, ok := last[k]; ok {
			next[i] = j
		} else {
			next[i] = never
		}
		last[k] = int32(i)
	}
	return next
}

// Name implements Policy.
func (o *OPT) Name() string { return "opt" }

// Access implements Policy. It panics if key is not the next key of the
// trace OPT was built from, since its decisions would be meaningless.
func (o *OPT) Access(key uint64, size int64) bool {
	if o.pos >= len(o.reqs) || o.reqs[o.pos].Key != key {
		panic(fmt.Sprintf("bench: OPT fed request %d out of trace order", o.pos))
	}
	nu := o.next[o.pos]
	o.pos++
	cost := o.cost(size)
	if e, ok := o.cached[key]; ok {
		o.used += cost - o.cost(e.size)
		o.cached[key] = optEntry{next: nu, size: size}
		o.heap.push(optItem{next: nu, key: key})
		// A hit that grew the object may overflow: evict farthest first,
		// possibly the object itself.
		for o.used > o.capacity {
			o.evict(o.popValid())
		}
		return true
	}
	if cost > o.capacity || (o.bypass && nu == never) {
		return false
	}
	// Pop candidates whose next use is later than the newcomer's, farthest
	// first, until it fits; put them back if it cannot.
	o.spare = o.spare[:0]
	free := o.capacity - o.used
	for free < cost {
		it, ok := o.peekValid()
		if !ok || (o.bypass && it.next <= nu) {
			break
		}
		o.heap.pop()
		o.spare = append(o.spare, it)
		free += o.cost(o.cached[it.key].size)
	}
	if free < cost {
		for _, it := range o.spare {
			o.heap.push(it)
		}
		return false
	}
	for _, it := range o.spare {
		o.evict(it)
	}
	o.used += cost
	o.cached[key] = optEntry{next: nu, size: size}
	o.heap.push(optItem{next: nu, key: key})
	return false
}

func (o *OPT) cost(size int64) int64 {
	if o.bytes {
		return size
	}
	return 1
}

func (o *OPT) evict(it optItem) {
	o.used -= o.cost(o.cached[it.key].size)
	delete(o.cached, it.key)
}

// peekValid drops stale heap entries (objects evicted or re-requested since)
// and returns the cached object with the farthest next use.
func (o *OPT) peekValid() (optItem, bool) {
	for len(o.heap) > 0 {
		it := o.heap[0]
		if e, ok := o.cached[it.key]; ok && e.next == it.next {
			return it, true
		}
		o.heap.pop()
	}
	return optItem{}, false
}

func (o *OPT) popValid() optItem {
	it, _ := o.peekValid()
	o.heap.pop()
	return it
}

// optHeap is a binary max-heap ordered by next use.
type optHeap []optItem

func (h *optHeap) push(it optItem) {
	*h = append(*h, it)
	s := *h
	i := len(s) - 1
	for i > 0 {
		p := (i - 1) / 2
		if s[p].next >= s[i].next {
			break
		}
		s[p], s[i] = s[i], s[p]
		i = p
	}
}

func (h *optHeap) pop() {
	s := *h
	n := len(s) - 1
	s[0] = s[n]
	s = s[:n]
	*h = s
	i := 0
	for {
		l, r, m := 2*i+1, 2*i+2, i
		if l < n && s[l].next > s[m].next {
			m = l
		}
		if r < n && s[r].next > s[m].next {
			m = r
		}
		if m == i {
			return
		}
		s[m], s[i] = s[i], s[m]
		i = m
	}
}
