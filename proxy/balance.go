package proxy

import (
	"math"
	"math/rand/v2"
	"slices"
	"sync/atomic"

	"github.com/cespare/xxhash/v2"

	"github.com/cellar-cache/cellar/internal/splitmix"
)

// maxWeight bounds an origin's weight, so that weight products stay small.
const maxWeight = 1000

// A selector chooses one origin among candidates, each with a weight of at
// least 1; key is the request's cache key. It is called concurrently. The
// candidates are never empty; they are the pool's usable origins, in
// configuration order, which may change from call to call as origins go
// down and come back.
type selector interface {
	pick(cands []candidate, key string) *upstream
}

// candidate is an origin that a request may go to, with its weight in the
// pool.
type candidate struct {
	u      *upstream
	weight int
}

var (
	_ selector = (*roundRobin)(nil)
	_ selector = leastConn{}
	_ selector = randomTwo{}
	_ selector = rendezvous{}
)

// selectors are the balance policies by name; each call makes a fresh
// selector, since round robin keeps a cursor per pool.
var selectors = map[string]func() selector{
	"round_robin": func() selector { return &roundRobin{} },
	"least_conn":  func() selector { return leastConn{} },
	"random_two":  func() selector { return randomTwo{} },
	"hash":        func() selector { return rendezvous{} },
}

// balanceNames lists the policies, sorted, for error messages.
func balanceNames() []string {
	var names []string
	for n := range selectors {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// newSelector returns the named policy; "" is round robin.
func newSelector(name string) selector {
	if name == "" {
		name = "round_robin"
	}
	return selectors[name]()
}

// roundRobin hands out requests in turn, weight times each per cycle:
// with weights 3 and 1, four requests go a, a, a, b.
type roundRobin struct {
	next atomic.Uint64 // the request count, the position in the cycle
}

func (rr *roundRobin) pick(cands []candidate, _ string) *upstream {
	total := totalWeight(cands)
	n := int((rr.next.Add(1) - 1) % uint64(total))
	for _, c := range cands {
		if n < c.weight {
			return c.u
		}
		n -= c.weight
	}
	return cands[len(cands)-1].u
}

// leastConn sends a request to the origin with the fewest requests in flight
// for its weight; ties are broken at random in proportion to weight, so that
// an idle pool still shares requests by weight.
type leastConn struct{}

func (leastConn) pick(cands []candidate, _ string) *upstream {
	var best []candidate
	for _, c := range cands {
		if len(best) == 0 {
			best = append(best, c)
			continue
		}
		switch cmp := loadCmp(c, best[0]); {
		case cmp < 0:
			best = append(best[:0], c)
		case cmp == 0:
			best = append(best, c)
		}
	}
	return weightedRandom(best).u
}

// randomTwo draws two origins at random in proportion to weight and sends
// the request to the less loaded (the power of two choices): nearly the
// balance of least_conn without every request looking at every origin.
type randomTwo struct{}

func (randomTwo) pick(cands []candidate, _ string) *upstream {
	if len(cands) == 1 {
		return cands[0].u
	}
	a := weightedRandom(cands)
	b := a
	for b.u == a.u {
		b = weightedRandom(cands)
	}
	if loadCmp(b, a) < 0 {
		return b.u
	}
	return a.u
}

// rendezvous sends every request for one cache key to the same origin
// (weighted rendezvous hashing): each origin scores the key, the highest
// score wins. When an origin leaves the pool only its keys move, and only
// a new origin's share of keys moves to it.
type rendezvous struct{}

func (rendezvous) pick(cands []candidate, key string) *upstream {
	h := xxhash.Sum64String(key)
	var best *upstream
	bestScore := math.Inf(-1)
	for _, c := range cands {
		// A uniform value in (0, 1) from the key's and the origin's
		// hashes; score = -w / ln(x) gives each origin its weight's share
		// of keys.
		x := (float64(splitmix.Mix64(h^c.u.seed)>>11) + 0.5) / (1 << 53)
		if score := -float64(c.weight) / math.Log(x); score > bestScore {
			best, bestScore = c.u, score
		}
	}
	return best
}

// loadCmp compares the in-flight requests per weight of a and b.
func loadCmp(a, b candidate) int {
	x, y := a.u.conns.Load()*int64(b.weight), b.u.conns.Load()*int64(a.weight)
	switch {
	case x < y:
		return -1
	case x > y:
		return 1
	}
	return 0
}

// weightedRandom draws one candidate in proportion to weight.
func weightedRandom(cands []candidate) candidate {
	n := rand.IntN(totalWeight(cands))
	for _, c := range cands {
		if n < c.weight {
			return c
		}
		n -= c.weight
	}
	return cands[len(cands)-1]
}

func totalWeight(cands []candidate) int {
	total := 0
	for _, c := range cands {
		total += c.weight
	}
	return total
}
