package proxy

import (
	"strconv"
	"sync/atomic"
	"time"

	"github.com/cellar-cache/cellar/cache"
)

// fieldValues caches the one-value field slices that a hit sets and that
// depend on one number only (Age, Content-Length, the Cache-Status of a
// plain hit), so that a hit allocates none of them: a direct-mapped table
// of immutable entries, filled on first use. Two numbers that share a slot
// take turns (each miss allocates, as without the cache). The slices have
// no spare capacity, so a caller that appends gets its own copy. Safe for
// concurrent use.
type fieldValues struct {
	slots  [1024]atomic.Pointer[fieldValue]
	render func(n int64) string
}

type fieldValue struct {
	n int64
	v []string
}

// get returns the field value for n.
func (c *fieldValues) get(n int64) []string {
	slot := &c.slots[uint64(n)%uint64(len(c.slots))]
	if e := slot.Load(); e != nil && e.n == n {
		return e.v
	}
	e := &fieldValue{n: n, v: []string{c.render(n)}}
	slot.Store(e)
	return e.v
}

var (
	// ageValues renders whole seconds of Age (§5.1).
	ageValues = &fieldValues{render: func(n int64) string { return cache.AgeValue(time.Duration(n) * time.Second) }}
	// lengthValues renders Content-Length.
	lengthValues = &fieldValues{render: func(n int64) string { return strconv.FormatInt(n, 10) }}
	// hitStatusValues renders the Cache-Status of a fresh hit by its TTL
	// in whole seconds.
	hitStatusValues = &fieldValues{render: func(n int64) string {
		return cache.Status{Hit: true, HasTTL: true, TTL: time.Duration(n) * time.Second}.String()
	}}
)

// ageValue is the Age field value of a response of age d.
func ageValue(d time.Duration) []string {
	if d <= 0 {
		return ageValues.get(0)
	}
	return ageValues.get(int64(d / time.Second))
}

// statusValues is the Cache-Status field value of st for key (see
// statusValue), from hitStatusValues for a plain fresh hit.
func (s *Server) statusValues(st cache.Status, key string) []string {
	if !s.opts.Debug && st == (cache.Status{Hit: true, HasTTL: true, TTL: st.TTL}) && st.TTL >= 0 {
		return hitStatusValues.get(int64(st.TTL / time.Second))
	}
	return []string{s.statusValue(st, key)}
}
