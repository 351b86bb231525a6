// Package cluster gives each cached object an owner among a static set of
// cellar nodes, by rendezvous (highest random weight) hashing of its cache
// key, and remembers which members failed recently so that keys they own go
// to the next member meanwhile.
package cluster

import (
	"github.com/cespare/xxhash/v2"

	"github.com/cellar-cache/cellar/internal/splitmix"
)

// Ring is a set of members and the rendezvous hash over them: a key's owner
// is the member with the highest score(member, key). Adding or removing a
// member moves only the keys that member wins or held (about 1/N of them).
// A Ring is immutable and safe for concurrent use.
type Ring struct {
	members []string
	seeds   []uint64 // xxhash of each member's name, the member's salt
}

// NewRing returns the ring over members (in any order; duplicates are kept
// once).
func NewRing(members []string) *Ring {
	r := &Ring{}
	seen := make(map[string]bool, len(members))
	for _, m := range members {
		if seen[m] {
			continue
		}
		seen[m] = true
		r.members = append(r.members, m)
		r.seeds = append(r.seeds, xxhash.Sum64String(m))
	}
	return r
}

// Members returns the ring's members in the order given to NewRing.
func (r *Ring) Members() []string { return append([]string(nil), r.members...) }

// Owner returns the index in Members of key's owner among the members for
// which skip returns false (skip may be nil), or -1 when every member is
// skipped.
func (r *Ring) Owner(key string, skip func(i int) bool) int {
	h := xxhash.Sum64String(key)
	best, bestScore := -1, uint64(0)
	for i, seed := range r.seeds {
		if skip != nil && skip(i) {
			continue
		}
		if s := splitmix.Mix64(h ^ seed); best < 0 || s > bestScore {
			best, bestScore = i, s
		}
	}
	return best
}
