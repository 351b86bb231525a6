package cache

import (
	"net/http"
	"time"
)

// Meta is what cellar keeps about a stored response besides its body: the
// status, the stored header fields and the times needed for the age
// calculation of RFC 9111 §4.2.3. The store persists it; the policy engine
// reads it. A Meta is immutable once stored: to freshen an entry (§4.3.4),
// build a new one.
type Meta struct {
	// Status is the response's status code.
	Status int
	// Header holds the stored header fields: hop-by-hop fields, fields named
	// in Connection and fields that private="..." / no-cache="..." exclude
	// are already removed (§3.1).
	Header http.Header
	// RequestTime is when cellar sent the request that produced this
	// response (request_time in §4.2.3).
	RequestTime time.Time
	// ResponseTime is when cellar received the response headers
	// (response_time in §4.2.3).
	ResponseTime time.Time
	// Invalid marks an entry that a soft purge or an invalidation made stale:
	// it must not be served without revalidation (it may still serve as a
	// stale-if-error / stale-while-revalidate fallback where allowed).
	Invalid bool

	// memo is what the policy that built this Meta (NewMeta, Freshen)
	// derived from it once, so that a hit does not parse the same fields
	// again; it is used only while Header and the times are still the ones
	// it was derived from (see Policy.derivedOf).
	memo *derived
}
