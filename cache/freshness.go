package cache

import (
	"net/http"
	"net/textproto"
	"reflect"
	"strings"
	"time"
)

// Cacheable reports whether r may be answered from or stored in the cache at
// all: GET or HEAD, and no Bypass rule for its path. Responses to unsafe
// methods are forwarded and then Invalidations applies.
func (p *Policy) Cacheable(r *http.Request) bool {
	if r.Method != http.MethodGet && r.Method != http.MethodHead && r.Method != "" {
		return false
	}
	if rl := p.rule(r); rl != nil && rl.Bypass {
		return false
	}
	return true
}

// OnlyIfCached reports whether r carries only-if-cached (RFC 9111 §5.2.1.7):
// on a miss, answer 504.
func OnlyIfCached(r *http.Request) bool {
	if _, ok := r.Header[cacheControl]; !ok {
		return false
	}
	return parseRequestCC(r.Header).onlyIfCached
}

// Action is what to do with a stored response for a request.
type Action int

const (
	// Serve: the entry is fresh enough for this request.
	Serve Action = iota
	// ServeStale: the entry is stale, but stale-while-revalidate (RFC 5861
	// §3) or the request's max-stale allows serving it now; start one
	// background revalidation when Lookup.Background is true.
	ServeStale
	// Revalidate: the entry must be validated with the origin before use
	// (stale, no-cache, request no-cache, Invalid, ...).
	Revalidate
)

func (a Action) String() string {
	switch a {
	case Serve:
		return "serve"
	case ServeStale:
		return "serve-stale"
	case Revalidate:
		return "revalidate"
	}
	return "action(" + itoa(int64(a)) + ")"
}

// Lookup is the verdict of Evaluate.
type Lookup struct {
	Action Action
	// Age is current_age (RFC 9111 §4.2.3), for the Age field.
	Age time.Duration
	// TTL is freshness_lifetime - current_age; negative when stale.
	TTL time.Duration
	// Background is set with ServeStale when stale-while-revalidate allowed
	// it: start one background revalidation. It is false when the request's
	// max-stale alone allowed serving.
	Background bool
	// StaleIfError is set when, should revalidation fail (500, 502, 503,
	// 504, connection error, timeout), serving this stale entry is allowed
	// (RFC 5861 §4, request max-stale too). It is false under
	// must-revalidate, proxy-revalidate, s-maxage and no-cache: those
	// answer 504 instead (RFC 9111 §4.2.4, §5.2.2.2).
	StaleIfError bool
	// Reload is set with Revalidate when the request's own no-cache or
	// max-age asked for it and Options.ClientNoCache is NoCacheHonor: the
	// origin request goes without the stored validators.
	Reload bool
	// Detail is a short reason, for the Cache-Status detail parameter.
	Detail string
}

// Evaluate decides how a stored entry m may answer r at time now (RFC 9111
// §4, §4.2.4, §5.2.1, §5.2.2; RFC 5861; RFC 8246).
func (p *Policy) Evaluate(r *http.Request, m *Meta, now time.Time) Lookup {
	d := p.derivedOf(m)
	cc := d.cc
	age := d.initial + max(now.Sub(m.ResponseTime), 0) // §4.2.3 current_age
	ttl := d.lifetime - age
	l := Lookup{Age: age, TTL: ttl}
	fresh := ttl > 0 && !m.Invalid
	staleness := max(-ttl, 0)

	var rq reqCC
	if _, ok := r.Header[cacheControl]; ok {
		rq = parseRequestCC(r.Header)
	} else if _, ok := r.Header["Pragma"]; ok {
		rq = parseRequestCC(r.Header)
	} else {
		rq = reqCC{maxAge: -1, maxStale: -1, minFresh: -1, sie: -1}
	}
	noCacheMode := p.opts.ClientNoCache
	if len(p.opts.Rules) > 0 {
		noCacheMode = p.clientNoCache(p.rule(r))
	}
	ignoreNoCache := noCacheMode == NoCacheIgnore
	// §4.2.4 (must-revalidate), §5.2.2.8 (proxy-revalidate), §5.2.2.10
	// (s-maxage implies proxy-revalidate in a shared cache).
	mustRevalidate := cc.mustRevalidate || cc.proxyRevalidate || cc.sMaxAge >= 0

	// May a failed revalidation fall back to this entry? RFC 5861 §4 for the
	// response's (or the operator's default) and the request's
	// stale-if-error, RFC 9111 §4.2.4 for max-stale.
	if !mustRevalidate && !cc.noCache && !rq.noCache {
		sie := secs(cc.sie)
		if cc.sie < 0 && p.opts.StaleIfError > 0 {
			sie = p.opts.StaleIfError
		}
		if (sie >= 0 && staleness <= sie) || (rq.sie >= 0 && staleness <= secs(rq.sie)) ||
			rq.maxStaleAny || (rq.maxStale >= 0 && staleness <= secs(rq.maxStale)) {
			l.StaleIfError = true
		}
	}

	revalidate := func(detail string) Lookup {
		l.Action = Revalidate
		l.Detail = detail
		return l
	}
	switch {
	case cc.noCache:
		return revalidate("no-cache") // §5.2.2.4
	case m.Invalid:
		if swr := p.swrWindow(&cc); swr > 0 && !mustRevalidate && !rq.noCache {
			l.Action, l.Background, l.Detail = ServeStale, true, "invalid-swr"
			return l
		}
		return revalidate("invalid")
	}
	// RFC 8246: a fresh immutable response answers a reload (no-cache,
	// max-age=0) without revalidation.
	immutable := cc.immutable && fresh
	if rq.noCache && !ignoreNoCache && !immutable {
		l.Reload = noCacheMode == NoCacheHonor
		return revalidate("request-no-cache") // §5.2.1.4
	}
	if rq.maxAge >= 0 && age > secs(rq.maxAge) && !immutable && !ignoreNoCache {
		l.Reload = noCacheMode == NoCacheHonor
		return revalidate("request-max-age") // §5.2.1.1
	}
	if fresh {
		if rq.minFresh >= 0 && ttl < secs(rq.minFresh) {
			return revalidate("request-min-fresh") // §5.2.1.3
		}
		l.Action, l.Detail = Serve, "fresh"
		return l
	}
	if mustRevalidate {
		return revalidate("must-revalidate")
	}
	// §5.2.1.2: max-stale, bounded or not.
	if rq.maxStaleAny || (rq.maxStale >= 0 && staleness <= secs(rq.maxStale)) {
		l.Action, l.Detail = ServeStale, "max-stale"
		return l
	}
	// RFC 5861 §3: stale-while-revalidate.
	if swr := p.swrWindow(&cc); swr > 0 && staleness <= swr && !rq.noCache {
		l.Action, l.Background, l.Detail = ServeStale, true, "stale-while-revalidate"
		return l
	}
	return revalidate("stale")
}

// swrWindow is the stale-while-revalidate window: the response's, else the
// operator default.
func (p *Policy) swrWindow(cc *respCC) time.Duration {
	if cc.swr >= 0 {
		return secs(cc.swr)
	}
	return p.opts.StaleWhileRevalidate
}

// Lifetime returns the freshness lifetime of m (RFC 9111 §4.2.1): a rule's
// forced TTL; else, from the governing field (targets, then
// Surrogate-Control, then Cache-Control), s-maxage, max-age, or (for
// Cache-Control only) Expires minus Date; else the StatusTTL recorded when
// it was stored; else Options.DefaultTTL; else the
// heuristic of §4.2.2 where allowed; else 0.
func (p *Policy) Lifetime(m *Meta) time.Duration {
	cc, viaCC, ov := p.metaControl(m.Header)
	return p.lifetime(m, &cc, viaCC, &ov)
}

func (p *Policy) lifetime(m *Meta, cc *respCC, viaCC bool, ov *override) time.Duration {
	h := m.Header
	if v := h[forcedTTLField]; len(v) > 0 {
		if n, ok := parseDelta(v[0]); ok {
			return secs(n)
		}
	}
	if cc.sMaxAge >= 0 {
		return secs(cc.sMaxAge)
	}
	if cc.maxAge >= 0 {
		return secs(cc.maxAge)
	}
	if viaCC {
		if ex, ok := h["Expires"]; ok {
			if len(ex) == 0 {
				return 0
			}
			for _, v := range ex[1:] {
				if v != ex[0] {
					return 0 // a singleton field with several values is invalid (RFC 9110 §5.5)
				}
			}
			exp, ok := parseHTTPDate(ex[0])
			if !ok {
				return 0 // §5.3: an invalid Expires means already expired.
			}
			return max(exp.Sub(dateValue(m)), 0)
		}
	}
	if ov.fallback >= 0 {
		return secs(ov.fallback) // Options.StatusTTL
	}
	if p.opts.DefaultTTL > 0 {
		return p.opts.DefaultTTL
	}
	return p.heuristic(m, cc)
}

// heuristic is §4.2.2: a fraction of the time since Last-Modified, for
// heuristically cacheable statuses or public responses only.
func (p *Policy) heuristic(m *Meta, cc *respCC) time.Duration {
	if !heuristicStatus(m.Status) && !cc.public {
		return 0
	}
	lm, ok := m.Header["Last-Modified"]
	if !ok || len(lm) == 0 {
		return 0
	}
	t, ok := parseHTTPDate(lm[0])
	if !ok {
		return 0
	}
	since := dateValue(m).Sub(t)
	if since <= 0 {
		return 0 // Last-Modified in the future
	}
	d := time.Duration(float64(since) * p.opts.HeuristicFraction)
	if d > p.opts.HeuristicMax {
		d = p.opts.HeuristicMax
	}
	return d.Truncate(time.Second)
}

// heuristicStatus reports the heuristically cacheable status codes (RFC 9110
// §15.1).
func heuristicStatus(code int) bool {
	switch code {
	case 200, 203, 204, 206, 300, 301, 308, 404, 405, 410, 414, 501:
		return true
	}
	return false
}

// dateValue is the stored Date, or the response time when Date is absent
// or invalid (RFC 9110 §6.6.1: the recipient's receipt time).
func dateValue(m *Meta) time.Time {
	if d := m.Header["Date"]; len(d) > 0 {
		if t, ok := parseHTTPDate(d[0]); ok {
			return t
		}
	}
	return m.ResponseTime
}

// currentAge is §4.2.3; initial is corrected_initial_age.
func currentAge(m *Meta, now time.Time) (age, initial time.Duration) {
	respTime := m.ResponseTime
	reqTime := m.RequestTime
	if reqTime.IsZero() || reqTime.After(respTime) {
		reqTime = respTime
	}
	apparent := max(respTime.Sub(dateValue(m)), 0)
	var ageValue time.Duration
	if a, ok := ParseAge(m.Header); ok {
		ageValue = secs(a)
	}
	corrected := ageValue + respTime.Sub(reqTime)
	initial = max(apparent, corrected)
	resident := now.Sub(respTime)
	if resident < 0 {
		resident = 0
	}
	return initial + resident, initial
}

// ParseAge returns the Age of h in seconds (RFC 9111 §5.1): the largest valid
// delta-seconds among all Age lines and list elements (conservative),
// clamped at 2^31; invalid values are ignored. ok is false when there is no
// valid value.
func ParseAge(h http.Header) (seconds int64, ok bool) {
	for _, line := range h["Age"] {
		for line != "" {
			var e string
			e, line, _ = strings.Cut(line, ",")
			if n, valid := parseDelta(textproto.TrimString(e)); valid {
				if !ok || n > seconds {
					seconds = n
				}
				ok = true
			}
		}
	}
	return seconds, ok
}

// KeepUntil returns when the store may drop m: its expiry (response time
// minus corrected initial age plus lifetime) plus the largest of keep and
// the entry's stale-while-revalidate / stale-if-error windows, operator
// defaults included.
func (p *Policy) KeepUntil(m *Meta, keep time.Duration) time.Time {
	cc, viaCC, ov := p.metaControl(m.Header)
	_, initial := currentAge(m, m.ResponseTime)
	expiry := m.ResponseTime.Add(p.lifetime(m, &cc, viaCC, &ov) - initial)
	extra := max(keep, p.swrWindow(&cc))
	sie := p.opts.StaleIfError
	if cc.sie >= 0 {
		sie = secs(cc.sie)
	}
	return expiry.Add(max(extra, sie))
}

// secs converts delta-seconds to a Duration.
func secs(n int64) time.Duration { return time.Duration(n) * time.Second }

func itoa(n int64) string {
	if n == 0 {
		return "0"
	}
	var b [20]byte
	i := len(b)
	neg := n < 0
	if neg {
		n = -n
	}
	for n > 0 {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
	}
	if neg {
		i--
		b[i] = '-'
	}
	return string(b[i:])
}

// derived is what Evaluate needs from a Meta that depends neither on the
// request nor on the clock: the governing directives, the freshness
// lifetime (§4.2.1) and corrected_initial_age (§4.2.3).
type derived struct {
	p                 *Policy
	header            uintptr // identity of the Header map it was derived from
	reqTime, respTime time.Time
	cc                respCC
	lifetime          time.Duration
	initial           time.Duration
}

// derive computes m's derived values.
func (p *Policy) derive(m *Meta) derived {
	cc, viaCC, ov := p.metaControl(m.Header)
	_, initial := currentAge(m, m.ResponseTime)
	return derived{
		p: p, header: headerID(m.Header), reqTime: m.RequestTime, respTime: m.ResponseTime,
		cc: cc, lifetime: p.lifetime(m, &cc, viaCC, &ov), initial: initial,
	}
}

// derivedOf returns m's memo when this policy made it from m's current
// Header map and times, and derives the values afresh otherwise (a Meta
// read back from disk, or one built or changed by hand). A Meta's Header
// is never changed in place once built (see Meta), so the map's identity
// stands for its content.
func (p *Policy) derivedOf(m *Meta) derived {
	if p.memoOf(m) {
		return *m.memo
	}
	return p.derive(m)
}

// memoOf reports whether m's memo is this policy's, made from m's current
// Header map and times.
func (p *Policy) memoOf(m *Meta) bool {
	d := m.memo
	return d != nil && d.p == p && d.header == headerID(m.Header) &&
		d.reqTime.Equal(m.RequestTime) && d.respTime.Equal(m.ResponseTime)
}

// Memoized returns m with what this policy derives from it for every
// evaluation (its directives, freshness lifetime, initial age) worked out
// once, as NewMeta and Freshen do for theirs: for a Meta read back from
// disk, made by another policy (before a reload) or built by hand, so that
// evaluating it again does not parse its header again. A Meta that has
// this policy's memo already is returned as it is.
func (p *Policy) Memoized(m Meta) Meta {
	if p.memoOf(&m) {
		return m
	}
	return p.withMemo(m)
}

// withMemo attaches m's derived values to m.
func (p *Policy) withMemo(m Meta) Meta {
	d := p.derive(&m)
	m.memo = &d
	return m
}

// headerID is the identity of a header map.
func headerID(h http.Header) uintptr {
	return reflect.ValueOf(h).Pointer()
}
