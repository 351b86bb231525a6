// Package cache decides what a shared cache may store and reuse, per RFC 9111
// §3-4 (storing, freshness, validation, invalidation), with RFC 9110 §13
// conditional requests, RFC 5861 (stale-while-revalidate, stale-if-error),
// RFC 8246 (immutable), RFC 9213 (targeted cache control), RFC 9211
// (Cache-Status) and Edge Architecture 1.0 Surrogate-Control.
//
// The package is pure: it does no I/O and never reads the clock; callers
// pass request and response times and "now". A Policy is safe for
// concurrent use; a Meta is immutable once stored.
//
// Choices between readings of the RFCs, made here once:
//
//   - private="f" and no-cache="f" (§5.2.2.4, §5.2.2.7): the named fields are
//     dropped from the stored copy, and the rest of the response is reused
//     without revalidation. The client whose request fetched the response
//     gets it whole (named fields and Set-Cookie included): the directive
//     limits what is stored, not what reaches that client.
//   - immutable (RFC 8246): a fresh immutable entry is served even when the
//     request says no-cache, Pragma: no-cache or max-age, the reload that the
//     directive is meant to avoid.
//   - Targeted fields (RFC 9213 §2.2) and Surrogate-Control replace
//     Cache-Control and Expires entirely when they carry a valid value.
//     CDN-Cache-Control is aimed at every CDN on the path (RFC 9213 §3), so
//     it is passed on to the client (for any CDN in front of cellar) unless
//     Options.StripCDNCacheControl; other configured targets (cellar's own)
//     and Surrogate-Control are removed before the client.
//   - HEAD (§4.3.5): cellar fills and revalidates a cacheable HEAD with a
//     GET, so a HEAD response never reaches the store; a 304 to that
//     conditional GET freshens the stored GET as in §4.3.4.
//   - A revalidation that the origin cannot answer (connection error or
//     timeout) gives 504 (§4.2.4's SHOULD) unless stale-if-error or the
//     client's max-stale allows the stale entry; must-revalidate,
//     proxy-revalidate, s-maxage and no-cache never allow it.
//   - A 304 whose validators select no stored response (§4.3.4) updates
//     nothing and is never sent to a client that did not ask for it: the
//     client's own request is forwarded instead. A 304 with no validator
//     at all selects the entry whose validators cellar sent (§4.3.4 would
//     select only an entry without validators; see Matches304).
//   - Cache-Status fwd=request (RFC 9211 §2.2) only when the entry was fresh
//     and the request's no-cache, max-age or min-fresh refused it; a stale
//     entry is fwd=stale whatever the request said.
//   - Duplicate freshness directives resolve to the smallest value; an
//     invalid max-age or s-maxage counts as 0 (stale, §4.2.1 encourages it);
//     an invalid stale-while-revalidate or stale-if-error is ignored.
//   - Personalised exchanges (Options.Personal): by default (PersonalSafe)
//     a response to a request with Cookie or Authorization, or one with
//     Set-Cookie, is stored only when the origin said shared caches may
//     (public, s-maxage, a targeted field) or a rule sets a TTL; never on
//     heuristic freshness or max-age alone. PersonalRFC stores them as RFC
//     9111 allows (the conformance suite runs with it).
//   - Set-Cookie is stored with the response but by default never served
//     from cache, so one user's cookie never reaches another. RFC 9111
//     reuses every end-to-end field (the conformance suite requires it):
//     Options.Cookies = CookiesExplicit serves it with responses whose
//     origin gave an explicit shared lifetime (s-maxage, max-age, Expires),
//     and never with one cached on heuristic freshness, a default TTL or a
//     rule; CookiesAlways serves it always.
//   - A rule TTL forces the lifetime of every storable response under its
//     prefix, overriding the origin's freshness (no-cache and no-store still
//     apply); Options.DefaultTTL replaces heuristic freshness when the origin
//     gives no explicit lifetime.
package cache
