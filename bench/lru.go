package bench

// LRU is an exact least-recently-used cache of keys and sizes, the
// reference policy. Capacity counts objects, or bytes when the LRU was made
// with NewLRUBytes. An object larger than the whole capacity is never
// admitted. It has no locks: the simulator drives it from one goroutine.
type LRU struct {
	capacity int64 // objects or bytes
	bytes    bool  // capacity is in bytes
	used     int64 // objects or bytes held

	index map[uint64]int32 // key -> slot in nodes
	nodes []lruNode        // slot 0 is the list head sentinel
	free  []int32          // released slots
}

type lruNode struct {
	key        uint64
	size       int64
	prev, next int32
}

// NewLRU returns an LRU holding at most capacity objects.
func NewLRU(capacity int64) *LRU { return newLRU(capacity, false) }

// NewLRUBytes returns an LRU holding at most capacity bytes of objects.
func NewLRUBytes(capacity int64) *LRU { return newLRU(capacity, true) }

func newLRU(capacity int64, bytes bool) *LRU {
	l := &LRU{capacity: capacity, bytes: bytes, index: make(map[uint64]int32)}
	l.nodes = append(l.nodes, lruNode{}) // head sentinel: prev is the LRU end
	return l
}

// Name implements Policy.
func (l *LRU) Name() string { return "lru" }

// Access looks key up and reports a hit; on a miss it inserts the object,
// evicting from the least recently used end until it fits. On a hit with a
// different size the object is resized (and the cache trimmed).
func (l *LRU) Access(key uint64, size int64) bool {
	if i, ok := l.index[key]; ok {
		l.unlink(i)
		l.pushFront(i)
		if l.bytes && l.nodes[i].size != size {
			l.used += size - l.nodes[i].size
			l.nodes[i].size = size
			l.trim(i)
		}
		return true
	}
	cost := l.cost(size)
	if cost > l.capacity {
		return false
	}
	l.used += cost
	var i int32
	if n := len(l.free); n > 0 {
		i = l.free[n-1]
		l.free = l.free[:n-1]
	} else {
		i = int32(len(l.nodes))
		l.nodes = append(l.nodes, lruNode{})
	}
	l.nodes[i] = lruNode{key: key, size: size}
	l.index[key] = i
	l.pushFront(i)
	l.trim(i)
	return false
}

// Len returns the number of objects held.
func (l *LRU) Len() int { return len(l.index) }

func (l *LRU) cost(size int64) int64 {
	if l.bytes {
		return size
	}
	return 1
}

// trim evicts from the LRU end until the cache fits; keep is the slot just
// touched, which is evicted last (only if it alone overflows).
func (l *LRU) trim(keep int32) {
	for l.used > l.capacity {
		victim := l.nodes[0].prev
		if victim == 0 {
			return
		}
		l.unlink(victim)
		l.used -= l.cost(l.nodes[victim].size)
		delete(l.index, l.nodes[victim].key)
		l.free = append(l.free, victim)
		if victim == keep {
			return
		}
	}
}

func (l *LRU) unlink(i int32) {
	n := &l.nodes[i]
	l.nodes[n.prev].next = n.next
	l.nodes[n.next].prev = n.prev
}

func (l *LRU) pushFront(i int32) {
	head := &l.nodes[0]
	l.nodes[i].prev = 0
	l.nodes[i].next = head.next
	l.nodes[head.next].prev = i
	head.next = i
}
