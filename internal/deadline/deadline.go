// Package deadline keeps a connection's idle deadline without moving it on
// every read or write: setting a deadline costs a timer update in the Go
// runtime, a few per cent of a small request's CPU.
package deadline

import (
	"sync/atomic"
	"time"
)

// epoch is the start of the monotonic clock Lazy reads.
var epoch = time.Now()

// Lazy is a deadline a timeout after the last activity, moved at most
// every quarter of the timeout: an operation then has between three
// quarters of the timeout and all of it. The zero Lazy is moved at the
// first Due.
type Lazy struct {
	timeout atomic.Int64 // the timeout of the last move; 0: moved otherwise since
	next    atomic.Int64 // when it is next moved, in ns of the monotonic clock since epoch
}

// Due returns the deadline timeout from now and true when it must be set,
// or false when one was set for the same timeout less than a quarter of it
// ago.
func (l *Lazy) Due(timeout time.Duration) (time.Time, bool) {
	now := time.Since(epoch)
	if time.Duration(l.timeout.Load()) == timeout && int64(now) < l.next.Load() {
		return time.Time{}, false
	}
	l.timeout.Store(int64(timeout))
	l.next.Store(int64(now + timeout/4))
	return epoch.Add(now + timeout), true
}

// Reset tells l the deadline was set otherwise: the next Due moves it.
func (l *Lazy) Reset() { l.timeout.Store(0) }

// At returns the deadline the last Due set, or the zero time after a
// Reset (or before any Due).
func (l *Lazy) At() time.Time {
	timeout := time.Duration(l.timeout.Load())
	if timeout == 0 {
		return time.Time{}
	}
	return epoch.Add(time.Duration(l.next.Load()) - timeout/4 + timeout)
}
