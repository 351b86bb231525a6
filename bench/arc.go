package bench

// ARC is the Adaptive Replacement Cache of N. Megiddo and D. S. Modha,
// "ARC: A Self-Tuning, Low Overhead Replacement Cache" (FAST 2003, Fig. 4),
// a reference policy. T1 holds keys seen once recently, T2 keys seen at
// least twice; the ghost lists B1 and B2 remember keys evicted from them,
// and a hit in a ghost list moves the target size p of T1 towards the list
// that would have kept the key.
//
// With object capacities it is the paper's algorithm exactly. With byte
// capacities (NewARCBytes) every list is measured in bytes, p moves by the
// requested object's size times the paper's ratio, and REPLACE runs until
// the object fits: a generalisation, not a published algorithm. An object
// larger than the capacity is not admitted.
type ARC struct {
	capacity int64 // c, in objects or bytes
	bytes    bool
	p        float64 // target size of T1

	index map[uint64]*arcNode
	lists [4]arcList // t1, t2, b1, b2
}

const (
	arcT1 = iota
	arcT2
	arcB1
	arcB2
)

type arcNode struct {
	key        uint64
	size       int64
	list       int
	prev, next *arcNode
}

type arcList struct {
	root arcNode
	used int64 // objects or bytes
}

// NewARC returns an ARC of capacity objects.
func NewARC(capacity int64) *ARC { return newARC(capacity, false) }

// NewARCBytes returns an ARC of capacity bytes.
func NewARCBytes(capacity int64) *ARC { return newARC(capacity, true) }

func newARC(capacity int64, bytes bool) *ARC {
	a := &ARC{capacity: capacity, bytes: bytes, index: make(map[uint64]*arcNode)}
	for i := range a.lists {
		l := &a.lists[i]
		l.root.next, l.root.prev = &l.root, &l.root
	}
	return a
}

// Name implements Policy.
func (a *ARC) Name() string { return "arc" }

func (a *ARC) cost(size int64) int64 {
	if a.bytes {
		return size
	}
	return 1
}

func (a *ARC) used(i int) int64 { return a.lists[i].used }

func (a *ARC) push(n *arcNode, list int) {
	l := &a.lists[list]
	n.list = list
	n.prev, n.next = &l.root, l.root.next
	l.root.next.prev = n
	l.root.next = n
	l.used += a.cost(n.size)
}

func (a *ARC) unlink(n *arcNode) {
	n.prev.next, n.next.prev = n.next, n.prev
	a.lists[n.list].used -= a.cost(n.size)
}

// lru returns the least recently used node of a list, or nil.
func (a *ARC) lru(list int) *arcNode {
	l := &a.lists[list]
	if l.root.prev == &l.root {
		return nil
	}
	return l.root.prev
}

// drop removes the least recently used node of a list from the directory.
func (a *ARC) drop(list int) {
	if n := a.lru(list); n != nil {
		a.unlink(n)
		delete(a.index, n.key)
	}
}

// replace is the paper's REPLACE(x, p): it demotes the LRU page of T1 to
// B1 if T1 exceeds its target (or equals it when x is in B2), else the LRU
// page of T2 to B2. It repeats until cost more fits in the cache.
func (a *ARC) replace(inB2 bool, cost int64) {
	for a.used(arcT1)+a.used(arcT2)+cost > a.capacity {
		t1 := float64(a.used(arcT1))
		from, to := arcT2, arcB2
		if a.used(arcT1) > 0 && ((inB2 && t1 >= a.p) || t1 > a.p) {
			from, to = arcT1, arcB1
		}
		n := a.lru(from)
		if n == nil {
			from, to = arcT1+arcT2-from, arcB1+arcB2-to
			if n = a.lru(from); n == nil {
				return
			}
		}
		a.unlink(n)
		a.push(n, to)
	}
}

// Access implements Policy.
func (a *ARC) Access(key uint64, size int64) bool {
	c := a.cost(size)
	n := a.index[key]
	if n != nil && (n.list == arcT1 || n.list == arcT2) {
		// Case I: a hit; the page moves to the MRU end of T2.
		a.unlink(n)
		n.size = size
		a.push(n, arcT2)
		if a.used(arcT1)+a.used(arcT2) > a.capacity {
			a.replace(false, 0)
		}
		return true
	}
	if c > a.capacity {
		return false
	}
	if n != nil {
		// Cases II and III: a ghost hit adapts p and fetches x into T2.
		b1, b2 := float64(a.used(arcB1)), float64(a.used(arcB2))
		inB2 := n.list == arcB2
		if inB2 {
			a.p = max(0, a.p-max(b1/b2, 1)*float64(c))
		} else {
			a.p = min(float64(a.capacity), a.p+max(b2/b1, 1)*float64(c))
		}
		a.unlink(n)
		n.size = size
		a.replace(inB2, c)
		a.push(n, arcT2)
		return false
	}
	// Case IV: a page in no list.
	l1 := a.used(arcT1) + a.used(arcB1)
	total := l1 + a.used(arcT2) + a.used(arcB2)
	if l1+c > a.capacity {
		// Case A: L1 is full.
		if a.used(arcT1)+c <= a.capacity {
			for a.used(arcT1)+a.used(arcB1)+c > a.capacity && a.lru(arcB1) != nil {
				a.drop(arcB1)
			}
			a.replace(false, c)
		} else {
			for a.used(arcT1)+c > a.capacity && a.lru(arcT1) != nil {
				a.drop(arcT1)
			}
			a.replace(false, c) // T2 may still be too full (bytes only)
		}
	} else if total+c > a.capacity {
		// Case B: L1 has room but the directory is full.
		for a.used(arcT1)+a.used(arcT2)+a.used(arcB1)+a.used(arcB2)+c > 2*a.capacity && a.lru(arcB2) != nil {
			a.drop(arcB2)
		}
		a.replace(false, c)
	}
	n = &arcNode{key: key, size: size}
	a.index[key] = n
	a.push(n, arcT1)
	return false
}

var _ Policy = (*ARC)(nil)
