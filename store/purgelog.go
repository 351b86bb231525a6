package store

import (
	"slices"
	"sync"
)

// purgeLogSize is how many recent purges a store remembers for fills in
// progress. A fill that started before the oldest one remembered is
// treated as matched (committed Invalid): safe, and rare.
const purgeLogSize = 1024

// purgeLog remembers recent purges by sequence number, so that a fill
// whose origin request started before a matching purge does not commit a
// fresh object afterwards: the purge wins the race with the fill.
//
// Commits hold mu shared from their check to their index update, and a
// purge is recorded under mu exclusive before it scans the index. So each
// commit either sees the purge's record or is in the index before the
// purge's scan begins, and the purge then removes or invalidates it.
type purgeLog struct {
	mu   sync.RWMutex // protects seq and ring
	seq  uint64       // sequence number of the newest purge; starts at 1
	ring [purgeLogSize]purgeEntry
}

type purgeEntry struct {
	seq uint64
	sel Selector
}

// current returns the sequence number of the newest purge.
func (l *purgeLog) current() uint64 {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.seq
}

// record adds a purge. Call it before the purge looks for its objects.
func (l *purgeLog) record(sel Selector) {
	l.mu.Lock()
	l.seq++
	l.ring[l.seq%purgeLogSize] = purgeEntry{seq: l.seq, sel: sel}
	l.mu.Unlock()
}

// matchedLocked reports whether a purge after sequence number since
// matches the object key with tags. Call it with mu held (shared).
func (l *purgeLog) matchedLocked(since uint64, key string, tags []string) bool {
	if l.seq <= since {
		return false
	}
	if l.seq-since > purgeLogSize {
		return true
	}
	for s := since + 1; s <= l.seq; s++ {
		sel := l.ring[s%purgeLogSize].sel
		if sel.matchKey(key) || (sel.Tag != "" && slices.Contains(tags, sel.Tag)) {
			return true
		}
	}
	return false
}
