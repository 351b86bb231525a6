package wtinylfu

// The policy's nodes live in one slice, Policy.arena, and link to each
// other by index. A cache holds as many nodes as objects, and a node per
// heap object, linked by pointers, was an object per key for the garbage
// collector to mark at every cycle, and for a shadow policy (whose keys
// are hashes) three pointers to follow; in the arena a shadow has nothing
// for it to scan, and a policy of string keys only its keys. Freed nodes
// are kept on a free list for the next key.

// ref is a node's index in Policy.arena.
type ref int32

// none is no node.
const none ref = -1

type node[K comparable] struct {
	key        K
	hash       uint64
	weight     int64
	seg        segment
	prev, next ref
}

// list is a doubly linked list of arena nodes around a sentinel node of
// its own (root), with the sum of its weights.
type list struct {
	root   ref
	weight int64
	n      int
}

// initLists makes the three lists' sentinels, the arena's first nodes.
func (p *Policy[K]) initLists() {
	p.free = none
	for _, l := range []*list{&p.window, &p.probation, &p.protected} {
		r := ref(len(p.arena))
		p.arena = append(p.arena, node[K]{prev: r, next: r})
		*l = list{root: r}
	}
}

// newNode puts n in the arena, in a free node when there is one.
func (p *Policy[K]) newNode(n node[K]) ref {
	n.prev, n.next = none, none
	if r := p.free; r != none {
		p.free = p.arena[r].next
		p.arena[r] = n
		return r
	}
	p.arena = append(p.arena, n)
	return ref(len(p.arena) - 1)
}

// freeNode gives node r, unlinked, back to the free list; its key goes
// with it.
func (p *Policy[K]) freeNode(r ref) {
	p.arena[r] = node[K]{prev: none, next: p.free}
	p.free = r
}

func (p *Policy[K]) pushFront(l *list, r ref) {
	n, root := &p.arena[r], &p.arena[l.root]
	n.prev, n.next = l.root, root.next
	p.arena[root.next].prev = r
	root.next = r
	l.weight += n.weight
	l.n++
}

func (p *Policy[K]) remove(l *list, r ref) {
	n := &p.arena[r]
	p.arena[n.prev].next, p.arena[n.next].prev = n.next, n.prev
	n.prev, n.next = none, none
	l.weight -= n.weight
	l.n--
}

// back returns l's least recently used node, or none.
func (p *Policy[K]) back(l *list) ref {
	if r := p.arena[l.root].prev; r != l.root {
		return r
	}
	return none
}
