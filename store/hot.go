package store

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/cellar-cache/cellar/cache"
)

// Hot copies (a cluster's local_hot): objects a node got from the member
// that owns them, kept in the memory tier only, never on disk, so that the
// hottest keys are answered by every node without all landing on their
// owner. Their tags are unknown (the owner does not send them), so every
// tag purge drops every hot copy; a URL, prefix, all or ban purge drops
// those it matches. They expire at KeepUntil (their owner's freshness).

// hotIndex lists the hot copies resident in the memory tier, so that a
// purge can find them (ristretto cannot be searched). An entry leaves with
// its object: the memory tier's exit callback (eviction, rejection,
// deletion, replacement) forgets it.
type hotIndex struct {
	mu sync.Mutex         // protects m
	m  map[string]*Object // by key; the object in the memory tier
}

// add lists o, replacing any older copy of its key.
func (h *hotIndex) add(o *Object) {
	h.mu.Lock()
	if h.m == nil {
		h.m = make(map[string]*Object)
	}
	h.m[o.Key] = o
	h.mu.Unlock()
}

// forget unlists o, unless a newer copy of its key replaced it.
func (h *hotIndex) forget(o *Object) {
	h.mu.Lock()
	if h.m[o.Key] == o {
		delete(h.m, o.Key)
	}
	h.mu.Unlock()
}

// matching returns the hot copies that any of sels matches.
func (h *hotIndex) matching(sels []Selector) []*Object {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []*Object
	for k, o := range h.m {
		if slices.ContainsFunc(sels, func(sel Selector) bool { return sel.Tag != "" || sel.matchKey(k) }) {
			out = append(out, o)
		}
	}
	return out
}

// Len returns the number of hot copies resident.
func (h *hotIndex) len() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.m)
}

// exit is the memory tier's exit callback: a hot copy that leaves it is
// unlisted.
func (m *memTier) exit(o *Object) {
	if o != nil && o.hot {
		m.hot.forget(o)
	}
}

// PutHot keeps a copy of an object that another cluster member owns in the
// memory tier only (never on disk), under key until keepUntil, and
// reports whether it did. t is the ticket taken before the request to the
// owner: a purge since then that may match key (any tag purge among them)
// means the copy may be older than the purge, and it is not kept. A body
// larger than Options.MaxMemoryObject, or a store without a memory tier,
// keeps nothing; ristretto's admission may still turn the copy away
// later. Object.Hot reports a hot copy.
func (s *Store) PutHot(t *Ticket, key string, meta cache.Meta, body []byte, keepUntil time.Time) bool {
	m := s.mem
	if m == nil || int64(len(body)) > m.maxObj || !keepUntil.After(m.now()) {
		return false
	}
	// A purge recorded from here on waits for published before it looks
	// for hot copies; one recorded before is in the log.
	purged, pub := s.purges.publish(t, key, nil)
	defer s.purges.published(pub)
	if purged || t.MayBePurged(key) {
		return false
	}
	o := &Object{Key: key, Meta: meta, Size: int64(len(body)), KeepUntil: keepUntil, hot: true}
	o.keepBody(body)
	m.hot.add(o)
	if !m.c.Set(key, o, cost(o)) {
		m.hot.forget(o)
		return false
	}
	return true
}

// purgeHot removes the hot copies that any of sels matches (every one for
// a tag selector) and returns how many. Call it once the purge's
// publications are over (wait), so that no copy being put escapes it.
func (s *Store) purgeHot(sels []Selector) int {
	if s.mem == nil {
		return 0
	}
	n := 0
	for _, o := range s.mem.hot.matching(sels) {
		s.mem.hot.forget(o)
		s.mem.del(o.Key) // a newer disk object of the key, if any, is read from disk again
		n++
	}
	return n
}

// banHot removes the hot copies that the ban patterns of sels match, once
// the puts in progress at the ban are over (or ctx ends: a copy put
// meanwhile is still hidden by the pending ban, which Get applies to
// every object without a fill id, until its sweep ends).
func (s *Store) banHot(ctx context.Context, sels []Selector, pubs []*publication) {
	wait(ctx, pubs)
	s.purgeHot(sels)
}

// HotLimit returns the largest body PutHot keeps (0: none, without a
// memory tier).
func (s *Store) HotLimit() int64 {
	if s.mem == nil {
		return 0
	}
	return s.mem.maxObj
}

// HotCopies returns the number of hot copies resident in the memory tier.
func (s *Store) HotCopies() int {
	if s.mem == nil {
		return 0
	}
	return s.mem.hot.len()
}

// Hot reports whether o is a hot copy (PutHot): fresh for its owner's
// freshness, in memory only; a node never revalidates or re-stores one.
func (o *Object) Hot() bool { return o.hot }
