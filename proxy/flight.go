package proxy

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/cellar-cache/cellar/store"
)

// flightGroup collapses concurrent fills of one key into one origin request
// ([gc] singleflight), and remembers keys whose responses turned out not to
// be shareable (hit-for-miss) so that later requests for them go straight to
// the origin in parallel instead of queueing behind each other.
type flightGroup struct {
	mu      sync.Mutex           // protects m, hfm, sweepAt and every flight's waiting
	m       map[string]*flight   // fills in progress by key
	hfm     map[string]time.Time // hit-for-miss keys and when that ends
	sweepAt int                  // len(hfm) at which expired marks are swept
	// marks is len(hfm), stored under mu and read without it: a request
	// while no key is marked (nearly always) takes no lock to learn so.
	marks atomic.Int64
}

// maxHitForMiss bounds the hit-for-miss marks kept at once, so that a
// stream of distinct uncacheable URLs cannot grow the map without end.
// Past it, arbitrary marks are dropped: the cost is one collapsed request.
const maxHitForMiss = 1 << 16

// flight is the joinable side of one fill: its leader publishes the result
// once, closing ready; waiters read res only after ready is closed.
type flight struct {
	ready   chan struct{}
	res     fillResult
	waiting int           // requests waiting for ready; guarded by flightGroup.mu
	ended   bool          // forgotten; guarded by flightGroup.mu
	ticket  *store.Ticket // taken when the flight began; released when it ends
	// sealed is set once the whole body has arrived and the commit
	// began; done is closed when the flight ends. A request that finds a
	// sealed flight waits for done and looks in the store again, so that
	// a client's next request after a miss is a hit.
	sealed atomic.Bool
	done   chan struct{}
}

// join returns the flight for key, creating it (leader true) when none is in
// progress. A request that would wait beyond maxWaiters others on the
// flight gets ok false and must not wait; a waiter that gets ok true calls
// leave once it stops waiting.
//
// A flight that a purge of key overtook is not joined: its response may be
// one the purge removed (RFC 9111 §4.4 and the purge API's promise that a
// purge wins over a fill in progress), so a new flight replaces it for
// later requests while it finishes for its own clients; the store commits
// it Invalid. Purges of other keys do not matter. A new flight takes its
// ticket from newTicket.
func (g *flightGroup) join(key string, maxWaiters int, newTicket func() *store.Ticket) (fl *flight, leader, ok bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if fl, found := g.m[key]; found && !fl.ticket.MayBePurged(key) {
		if fl.waiting >= maxWaiters {
			return fl, false, false
		}
		fl.waiting++
		return fl, false, true
	}
	if g.m == nil {
		g.m = make(map[string]*flight)
	}
	fl = &flight{ready: make(chan struct{}), done: make(chan struct{}), ticket: newTicket()}
	g.m[key] = fl
	return fl, true, true
}

// leave takes a waiter off fl's waiting list.
func (g *flightGroup) leave(fl *flight) {
	g.mu.Lock()
	fl.waiting--
	g.mu.Unlock()
}

// forget ends fl's life as the flight for key, if a newer flight has not
// replaced it already: later requests look in the store again. It reports
// whether this call ended fl (true once per flight).
func (g *flightGroup) forget(key string, fl *flight) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.m[key] == fl {
		delete(g.m, key)
	}
	if fl.ended {
		return false
	}
	fl.ended = true
	close(fl.done)
	return true
}

// markHitForMiss makes requests for key skip the cache for d from now.
// Expired marks of other keys are swept once the map has doubled since the
// last sweep, and it never holds more than maxHitForMiss marks.
func (g *flightGroup) markHitForMiss(key string, now time.Time, d time.Duration) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.hfm == nil {
		g.hfm = make(map[string]time.Time)
	}
	_, marked := g.hfm[key]
	if !marked && len(g.hfm) >= max(g.sweepAt, 1024) {
		for k, until := range g.hfm {
			if !now.Before(until) {
				delete(g.hfm, k)
			}
		}
		g.sweepAt = 2 * len(g.hfm)
	}
	if !marked && len(g.hfm) >= maxHitForMiss {
		for k := range g.hfm { // drop an arbitrary mark
			delete(g.hfm, k)
			break
		}
	}
	g.hfm[key] = now.Add(d)
	g.marks.Store(int64(len(g.hfm)))
}

// hitForMiss reports whether key is marked hit-for-miss at now.
func (g *flightGroup) hitForMiss(key string, now time.Time) bool {
	if g.marks.Load() == 0 {
		return false
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	until, ok := g.hfm[key]
	if ok && !now.Before(until) {
		delete(g.hfm, key)
		g.marks.Store(int64(len(g.hfm)))
		ok = false
	}
	return ok
}

// clearHitForMiss forgets a hit-for-miss mark, once a response for key was
// stored again.
func (g *flightGroup) clearHitForMiss(key string) {
	g.mu.Lock()
	delete(g.hfm, key)
	g.marks.Store(int64(len(g.hfm)))
	g.mu.Unlock()
}
