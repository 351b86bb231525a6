package cache

import (
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/cellar-cache/cellar/internal/httpheader"
)

// Storable decides whether a response to r with status and header h may be
// stored (RFC 9111 §3): method GET (a HEAD response has no body to store;
// it may freshen a stored GET, §4.3.5), no Bypass rule, no request or
// response no-store (unless must-understand with an understood status,
// §5.2.2.3), a final status that is not 206 (never stored as complete) or
// 304, no private, Authorization only with public, s-maxage or
// must-revalidate (§3.5), no Vary: *, and some freshness: public, explicit
// (s-maxage, max-age, Expires), a heuristically cacheable status, a rule TTL
// or Options.DefaultTTL. reason says why not: "method", "bypass",
// "no-store", "request-no-store", "status", "partial", "must-understand",
// "private", "authorization", "vary", "no-freshness", "status-ttl" (a zero
// Options.StatusTTL for the status), and under PersonalSafe (the default)
// "cookie", "authorization" or "set-cookie" (see PersonalSafe). A rule may ignore private
// (Rule.IgnorePrivate).
func (p *Policy) Storable(r *http.Request, status int, h http.Header) (ok bool, reason string) {
	if r.Method != http.MethodGet && r.Method != "" {
		return false, "method"
	}
	ri, rl := p.ruleIndex(r)
	if rl != nil && rl.Bypass {
		return false, "bypass"
	}
	switch {
	case status < 200 || status > 999:
		return false, "status"
	case status == http.StatusPartialContent:
		return false, "partial"
	case status == http.StatusNotModified:
		return false, "status"
	}
	if _, ok := r.Header[cacheControl]; ok && parseRequestCC(r.Header).noStore {
		return false, "request-no-store" // §5.2.1.5
	}
	cc, viaCC := p.control(h)
	if cc.mustUnderstand {
		if !understoodStatus(status) {
			return false, "must-understand"
		}
	} else if cc.noStore {
		return false, "no-store"
	}
	if cc.private && (rl == nil || !rl.IgnorePrivate) {
		return false, "private"
	}
	if _, auth := r.Header["Authorization"]; auth && !cc.public && cc.sMaxAge < 0 && !cc.mustRevalidate {
		return false, "authorization"
	}
	if _, star := VaryFields(h); star {
		return false, "vary"
	}
	if p.opts.Personal == PersonalSafe {
		key := &p.opts.Key
		if rl != nil && rl.Key != nil {
			key = rl.Key
		}
		if why := personal(r, h, &cc, viaCC, rl, len(key.Cookies) > 0); why != "" {
			return false, why
		}
	}
	if (rl != nil && rl.TTL > 0) || explicitFreshness(&cc, viaCC, h) {
		return true, ""
	}
	if d, ok := p.statusTTL(ri, status); ok {
		// Options.StatusTTL: zero keeps it out.
		if d > 0 {
			return true, ""
		}
		return false, "status-ttl"
	}
	if cc.public || heuristicStatus(status) || p.opts.DefaultTTL > 0 {
		return true, ""
	}
	return false, "no-freshness"
}

// personal applies PersonalSafe: it names what makes an exchange
// personal ("cookie", "authorization", "set-cookie") when the origin (or
// the operator's rule) did not say explicitly that shared caches may store
// it, else "". cookieKeyed (the key holds cookie values, KeyOptions.Cookies)
// is the operator saying that requests with Cookie are shared by key.
func personal(r *http.Request, h http.Header, cc *respCC, viaCC bool, rl *Rule, cookieKeyed bool) string {
	if cc.public || cc.sMaxAge >= 0 || !viaCC || (rl != nil && rl.TTL > 0) {
		return "" // explicit: public, s-maxage, a targeted field, a rule
	}
	if _, ok := r.Header["Authorization"]; ok {
		return "authorization"
	}
	if _, ok := r.Header["Cookie"]; ok && !cookieKeyed {
		return "cookie"
	}
	if _, ok := h["Set-Cookie"]; ok && !slices.Contains(cc.privateFields, "Set-Cookie") &&
		!slices.Contains(cc.noCacheFields, "Set-Cookie") && (rl == nil || !rl.StripSetCookie) {
		return "set-cookie"
	}
	return ""
}

// understoodStatus lists the status codes whose caching semantics cellar
// implements, for must-understand (§5.2.2.3).
func understoodStatus(code int) bool {
	switch code {
	case 200, 203, 204, 300, 301, 302, 303, 307, 308, 404, 405, 410, 414, 501:
		return true
	}
	return false
}

// NewMeta builds the Meta to store for a response to r (RFC 9111 §3.1): a
// copy of h minus hop-by-hop fields, fields named in Connection, and fields
// named by private="..." or no-cache="..." (chosen reading of §5.2.2.4 and
// §5.2.2.7: drop them from the stored copy). Set-Cookie is kept and
// filtered at serve time (see ServeHeader), unless r's rule strips it. A
// rule TTL for r's path, and the rule's overrides and the StatusTTL that
// apply (overrideField), are recorded in the stored header for Lifetime
// and Evaluate.
func (p *Policy) NewMeta(r *http.Request, status int, h http.Header, requestTime, responseTime time.Time) Meta {
	stored := make(http.Header, len(h))
	drop := connectionFields(h)
	cc, viaCC := p.control(h)
	ri, rl := p.ruleIndex(r)
	n, size := 0, 0
	for _, v := range h {
		n += len(v)
		for _, s := range v {
			size += len(s)
		}
	}
	// One array holds every field's values, and one string their bytes,
	// so that a stored header is a few objects for the collector to mark
	// rather than two per field. Each field's slice has no spare capacity,
	// so an append to one copies it.
	values := make([]string, 0, n)
	var text strings.Builder
	text.Grow(size)
	for k, v := range h {
		if httpheader.IsHopByHop(k) || drop[k] || internalField(k) || proxyField(k) {
			continue
		}
		for _, s := range v {
			text.WriteString(s)
		}
		values = append(values, v...)
		stored[k] = values[len(values)-len(v) : len(values) : len(values)]
	}
	all := text.String()
	for i, s := range values {
		values[i], all = all[:len(s)], all[len(s):]
	}
	for _, f := range cc.privateFields {
		delete(stored, f)
	}
	for _, f := range cc.noCacheFields {
		delete(stored, f)
	}
	if rl != nil && rl.TTL > 0 {
		stored[forcedTTLField] = []string{strconv.FormatInt(int64(rl.TTL/time.Second), 10)}
	}
	if rl != nil && rl.StripSetCookie {
		delete(stored, "Set-Cookie")
	}
	if ov := p.overrideFor(ri, rl, status, &cc, viaCC, h); ov != "" {
		stored[overrideField] = []string{ov}
	}
	return p.withMemo(Meta{Status: status, Header: stored, RequestTime: requestTime, ResponseTime: responseTime})
}

// proxyField reports the fields specific to the proxy a response came
// through, which RFC 9111 §3.1 forbids storing: Proxy-Authenticate,
// Proxy-Authentication-Info and Proxy-Authorization (the hop-by-hop list
// has the first and last).
func proxyField(k string) bool {
	return k == "Proxy-Authenticate" || k == "Proxy-Authentication-Info" || k == "Proxy-Authorization"
}

// connectionFields returns the set of canonical names listed in
// Connection, or nil.
func connectionFields(h http.Header) map[string]bool {
	names := httpheader.ConnectionFields(h)
	if names == nil {
		return nil
	}
	m := make(map[string]bool, len(names))
	for _, n := range names {
		m[n] = true
	}
	return m
}

// ServeHeader copies m.Header into dst for a response served from cache: it
// drops the fields aimed only at cellar (the configured Targets and
// Surrogate-Control) and Set-Cookie unless Options.Cookies allows it. It
// does not set Age. The value slices are shared with m with their capacity
// capped, so an append by the caller copies instead of writing into m.
func (p *Policy) ServeHeader(dst http.Header, m *Meta) {
	_, cookie := m.Header["Set-Cookie"]
	shareCookie := cookie && p.shareCookie(m)
	for k, v := range m.Header {
		if p.private[k] || (k == "Set-Cookie" && !shareCookie) {
			continue
		}
		dst[k] = v[:len(v):len(v)]
	}
}

// shareCookie reports whether m's stored Set-Cookie may be served from
// cache (Options.Cookies).
func (p *Policy) shareCookie(m *Meta) bool {
	switch p.opts.Cookies {
	case CookiesAlways:
		return true
	case CookiesNever:
		return false
	}
	if _, forced := m.Header[forcedTTLField]; forced {
		return false // a rule, not the origin, made it fresh
	}
	cc, viaCC, _ := p.metaControl(m.Header)
	if cc.sMaxAge >= 0 || cc.maxAge >= 0 {
		return true
	}
	_, expires := m.Header["Expires"]
	return viaCC && expires
}

// StripForClient removes the fields aimed only at cellar (the configured
// Targets, Surrogate-Control) from a response forwarded from the origin.
func (p *Policy) StripForClient(h http.Header) {
	for k := range p.private {
		delete(h, k)
	}
}
