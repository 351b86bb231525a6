package cache

import (
	"net/http"
	"strconv"
	"time"
)

// PeerMeta is the Meta of a response that the cluster member owning its
// key sent, for a copy that another member keeps (a hot copy): stored as
// NewMeta stores a response, without the caches' Cache-Status members, and
// fresh for exactly what remained of the owner's freshness, ttl, when it
// arrived at at. Its lifetime is the owner's Age plus ttl, so that its age
// goes on from the owner's (RFC 9111 §4.2.3) and the copy is stale when
// the owner's is; no rule of this node (grace, keep, forced TTL) applies.
func (p *Policy) PeerMeta(r *http.Request, status int, h http.Header, ttl time.Duration, at time.Time) Meta {
	m := p.NewMeta(r, status, h, at, at)
	delete(m.Header, "Cache-Status")
	delete(m.Header, overrideField)
	age, _ := ParseAge(h)
	m.Header[forcedTTLField] = []string{strconv.FormatInt(age+int64(ttl/time.Second), 10)}
	return p.withMemo(m)
}
