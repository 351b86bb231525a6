package store

import (
	"math"
	"sync"
)

// HoldStored makes Get miss every object stored so far (every fill that
// had begun when it is called) until release is called; objects stored
// afterwards are found as usual. A cluster node holds what it stored
// before a restart until it has applied the purges made while it was
// away (cluster/purgestream): misses go to the origin meanwhile, and what
// they store is served. A held object is not removed: a fill replaces
// it, or it is found again after release. With the disk tier offline
// every object is held. release may be called more than once.
func (s *Store) HoldStored() (release func()) {
	below := uint64(math.MaxUint64)
	if d := s.acquire(); d != nil {
		below = d.nextFill.Load() + 1
		d.release()
	}
	s.held.Store(below)
	return sync.OnceFunc(func() { s.held.Store(0) })
}

// isHeld reports whether HoldStored holds o.
func (s *Store) isHeld(o *Object) bool {
	h := s.held.Load()
	return h != 0 && o.loc.fill < h
}
