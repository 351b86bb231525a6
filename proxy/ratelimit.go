package proxy

import (
	"errors"
	"fmt"
	"math"
	"net/netip"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// RateLimit is a token bucket per client address (TrustedProxies decides
// the address): PerSecond requests a second on average, in bursts of up
// to Burst. A request beyond it is answered 429 with Retry-After.
type RateLimit struct {
	// PerSecond is the sustained rate; zero (the default): no limit.
	PerSecond float64
	// Burst is how many requests may come at once; default PerSecond
	// rounded up (at least 1).
	Burst int
}

// Validate reports every invalid field at once.
func (r RateLimit) Validate() error {
	var errs []error
	if r.PerSecond < 0 || math.IsNaN(r.PerSecond) || math.IsInf(r.PerSecond, 0) {
		errs = append(errs, fmt.Errorf("per second %v: must be a non-negative number", r.PerSecond))
	}
	if r.Burst < 0 {
		errs = append(errs, fmt.Errorf("burst %d: must not be negative", r.Burst))
	}
	return errors.Join(errs...)
}

// maxRateClients bounds the clients a rateLimiter remembers: about 100
// bytes each. When full, a new client replaces an arbitrary one, whose
// bucket starts full again when it comes back.
const maxRateClients = 100_000

// rateLimiter holds one token bucket per client address.
type rateLimiter struct {
	limit rate.Limit
	burst int

	mu        sync.Mutex // protects clients and lastSweep
	clients   map[netip.Addr]*rate.Limiter
	lastSweep time.Time
}

// newRateLimiter returns the limiter of rl, or nil when rl sets no limit.
func newRateLimiter(rl RateLimit) *rateLimiter {
	if rl.PerSecond <= 0 {
		return nil
	}
	burst := rl.Burst
	if burst == 0 {
		burst = max(1, int(math.Ceil(rl.PerSecond)))
	}
	return &rateLimiter{limit: rate.Limit(rl.PerSecond), burst: burst, clients: map[netip.Addr]*rate.Limiter{}}
}

// allow takes a token from client's bucket at now. When the bucket is
// empty it takes nothing and returns how long until a token is there.
func (l *rateLimiter) allow(client netip.Addr, now time.Time) (wait time.Duration, ok bool) {
	l.mu.Lock()
	lim := l.clients[client]
	if lim == nil {
		if len(l.clients) >= maxRateClients {
			l.makeRoom(now)
		}
		lim = rate.NewLimiter(l.limit, l.burst)
		l.clients[client] = lim
	}
	l.mu.Unlock()
	r := lim.ReserveN(now, 1)
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return d, false
	}
	return 0, true
}

// makeRoom forgets the clients whose buckets are full (forgetting them
// changes nothing), at most once a second, and else one arbitrary client.
// l.mu is held.
func (l *rateLimiter) makeRoom(now time.Time) {
	if now.Sub(l.lastSweep) >= time.Second {
		l.lastSweep = now
		for a, lim := range l.clients {
			if lim.TokensAt(now) >= float64(l.burst) {
				delete(l.clients, a)
			}
		}
	}
	if len(l.clients) < maxRateClients {
		return
	}
	for a := range l.clients {
		delete(l.clients, a)
		return
	}
}
