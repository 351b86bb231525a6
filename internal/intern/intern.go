// Package intern keeps one copy of the short strings a server makes again
// and again from bytes it reads (request targets, cache keys), so that a
// string met before costs no allocation.
//
// Why (docs/DESIGN.md, the tail of small hits): on one CPU each garbage
// collection stops serving for milliseconds, and a memory hit that
// allocates nothing makes the collector run rarely.
package intern

import (
	"hash/maphash"
	"sync/atomic"
)

// ways is the number of slots a string may take in a Table: a few, so
// that two hot strings whose hashes meet both stay.
const ways = 4

// Table is a bounded set of strings, looked up by their bytes: a
// set-associative array of slots indexed by a hash of the bytes, each
// holding at most one string of at most maxLen bytes. A string new to its
// slots takes the place of one there. It holds at most slots × maxLen
// bytes of strings, whatever it is given. Its methods are safe for
// concurrent use, and lookups take no lock.
//
// Strings are immutable, so handing one out many times is safe: whoever
// holds it sees the same bytes for as long as it holds it.
type Table struct {
	seed   maphash.Seed
	maxLen int
	slots  []atomic.Pointer[entry]
	mask   uint64 // len(slots) - 1
}

type entry struct {
	hash uint64
	s    string
}

// New returns a Table of slots slots (rounded up to a power of two, at
// least ways) that keeps strings of up to maxLen bytes.
func New(slots, maxLen int) *Table {
	n := ways
	for n < slots {
		n *= 2
	}
	return &Table{seed: maphash.MakeSeed(), maxLen: maxLen, slots: make([]atomic.Pointer[entry], n), mask: uint64(n - 1)}
}

// Bytes returns string(b): the copy the table holds when it has one, else
// a new string, which it keeps when b is at most maxLen bytes long. It
// does not keep b. A nil Table makes a new string every time.
func (t *Table) Bytes(b []byte) string {
	if t == nil || len(b) == 0 || len(b) > t.maxLen {
		return string(b)
	}
	h := maphash.Bytes(t.seed, b)
	set := t.slots[h&t.mask&^(ways-1):][:ways]
	free := -1
	for i := range set {
		e := set[i].Load()
		if e == nil {
			if free < 0 {
				free = i
			}
		} else if e.hash == h && e.s == string(b) {
			return e.s
		}
	}
	e := &entry{hash: h, s: string(b)}
	if free < 0 {
		// The set is full: the new string takes the place its hash's
		// high bits choose.
		free = int(h>>32) & (ways - 1)
	}
	set[free].Store(e)
	return e.s
}
