package store

import (
	"context"
	"slices"
	"sync"
)

// maxPurgeLog bounds the purges a store remembers for tickets still
// outstanding. Past it the oldest are forgotten, and a ticket older than
// what is remembered treats every key as purged (its fill commits Invalid):
// safe, and only reached when a fill outlives tens of thousands of purges.
const maxPurgeLog = 1 << 16

// Ticket marks when some work that stores or freshens a response began
// (a fill's or a revalidation's origin request), so that it can later ask
// whether a purge since then matched a key: a purge wins over work in
// flight (RFC 9111 §4.4 and the purge API's promise). Take one with
// Store.Ticket before the origin request, pass it to Create
// (CreateOptions.Ticket) and UpdateObjectMeta, and Release it when the
// work is over; the store keeps the purges it needs to answer until then.
// Its methods are safe for concurrent use.
type Ticket struct {
	log  *purgeLog
	seq  uint64    // the newest purge when the ticket was taken
	once sync.Once // Release
}

// MayBePurged reports whether a purge since t was taken matches key, or
// may match an object stored under it: its tags are not known yet (a fill
// before its response header), so a tag purge counts as a match. Commits
// and metadata updates check the exact key and tags themselves.
func (t *Ticket) MayBePurged(key string) bool {
	l := t.log
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.matchedLocked(t.seq, key, nil, true)
}

// Release tells the store that t is no longer used; the purges only it
// needed are forgotten. It is idempotent.
func (t *Ticket) Release() {
	t.once.Do(func() { t.log.release(t.seq) })
}

// purgeLog remembers the purges that outstanding tickets may ask about, so
// that a fill whose origin request started before a matching purge does
// not commit a fresh object afterwards.
//
// A commit (or metadata update) checks the log and registers itself as
// publishing in one step under mu, writes (and syncs) outside the lock,
// publishes its index entry, then unregisters. A purge is recorded under
// mu, and before it looks for its objects it waits for the commits that
// were publishing then. So each commit either sees the purge in the log or
// is in the index when the purge scans it. No lock is held across I/O.
type purgeLog struct {
	mu      sync.Mutex // protects the fields below; never held across I/O
	seq     uint64     // sequence number of the newest purge
	entries []purgeEntry
	// forgot is the newest sequence number dropped from entries while a
	// ticket older than it was outstanding (past maxPurgeLog).
	forgot     uint64
	live       map[uint64]int // outstanding tickets by seq
	publishing map[*publication]struct{}
}

type purgeEntry struct {
	seq uint64
	sel Selector
}

// publication is a commit between its purge check and its index update.
type publication struct {
	done chan struct{}
}

// ticket returns a new outstanding ticket.
func (l *purgeLog) ticket() *Ticket {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.live == nil {
		l.live = make(map[uint64]int)
	}
	l.live[l.seq]++
	return &Ticket{log: l, seq: l.seq}
}

func (l *purgeLog) release(seq uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.live[seq]--; l.live[seq] <= 0 {
		delete(l.live, seq)
	}
	l.trimLocked()
}

// trimLocked forgets the purges no outstanding ticket predates.
func (l *purgeLog) trimLocked() {
	oldest := l.seq
	for s := range l.live {
		oldest = min(oldest, s)
	}
	i := 0
	for i < len(l.entries) && l.entries[i].seq <= oldest {
		i++
	}
	if i > 0 {
		l.entries = slices.Delete(l.entries, 0, i)
	}
}

// record adds a purge and returns the commits that were publishing then,
// which the purge must wait for (wait) before it looks for its objects.
func (l *purgeLog) record(sel Selector) []*publication {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.seq++
	if len(l.live) > 0 {
		if len(l.entries) == maxPurgeLog {
			l.forgot = l.entries[0].seq
			l.entries = slices.Delete(l.entries, 0, 1)
		}
		l.entries = append(l.entries, purgeEntry{seq: l.seq, sel: sel})
	}
	var pubs []*publication
	for p := range l.publishing {
		pubs = append(pubs, p)
	}
	return pubs
}

// wait waits until every publication in pubs is over, or ctx is done.
func wait(ctx context.Context, pubs []*publication) error {
	for _, p := range pubs {
		select {
		case <-p.done:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// matchedLocked reports whether a purge after seq matches key (with tags;
// with anyTag, every tag purge matches). Call it with mu held.
func (l *purgeLog) matchedLocked(seq uint64, key string, tags []string, anyTag bool) bool {
	if l.seq <= seq {
		return false
	}
	if seq < l.forgot {
		return true
	}
	for i := len(l.entries) - 1; i >= 0 && l.entries[i].seq > seq; i-- {
		sel := l.entries[i].sel
		if sel.matchKey(key) || (sel.Tag != "" && (anyTag || slices.Contains(tags, sel.Tag))) {
			return true
		}
	}
	return false
}

// publish checks whether a purge since t matches key with tags and
// registers a publication in the same step. The caller writes, updates the
// index, then calls published.
func (l *purgeLog) publish(t *Ticket, key string, tags []string) (purged bool, p *publication) {
	l.mu.Lock()
	defer l.mu.Unlock()
	p = &publication{done: make(chan struct{})}
	if l.publishing == nil {
		l.publishing = make(map[*publication]struct{})
	}
	l.publishing[p] = struct{}{}
	return l.matchedLocked(t.seq, key, tags, false), p
}

// published ends p: purges waiting for it may look for their objects.
func (l *purgeLog) published(p *publication) {
	l.mu.Lock()
	delete(l.publishing, p)
	l.mu.Unlock()
	close(p.done)
}
