package cache

import (
	"net/http"
	"net/textproto"
	"strings"

	"github.com/pquerna/cachecontrol/cacheobject"

	"github.com/cellar-cache/cellar/internal/httpheader"
)

// maxDelta is the largest delta-seconds value cellar keeps: RFC 9111 §1.2.2
// says to send 2147483648 (2^31) for any larger value, and to treat it so.
const maxDelta = 1 << 31

const (
	cacheControl     = "Cache-Control"
	surrogateControl = "Surrogate-Control"
	cdnCacheControl  = "Cdn-Cache-Control" // canonical form of CDN-Cache-Control (RFC 9213 §3)
	// forcedTTLField records a rule TTL in a stored header, so Lifetime can
	// apply it without the request. It is never sent to a client.
	forcedTTLField = "Cellar-Forced-Ttl"
)

// respCC holds the response directives cellar acts on (RFC 9111 §5.2.2,
// RFC 5861, RFC 8246). Delta-seconds are -1 when absent.
type respCC struct {
	maxAge, sMaxAge, swr, sie int64
	noStore, noCache, private bool
	public, mustRevalidate    bool
	proxyRevalidate           bool
	immutable, mustUnderstand bool
	// noCacheFields and privateFields are the canonical field names of
	// no-cache="..." and private="..."; a bare no-cache / private sets the
	// flag instead.
	noCacheFields, privateFields []string
}

// reqCC holds the request directives of RFC 9111 §5.2.1 and RFC 5861 §4.
// Delta-seconds are -1 when absent.
type reqCC struct {
	maxAge, maxStale, minFresh, sie int64
	maxStaleAny                     bool // max-stale without a value
	noCache, noStore, onlyIfCached  bool
}

// fieldValue joins the field lines of name with ", " (RFC 9110 §5.3),
// allocating only when there are several. ok is false when the field is
// absent.
func fieldValue(h http.Header, name string) (v string, ok bool) {
	lines, ok := h[name]
	switch len(lines) {
	case 0:
		return "", ok
	case 1:
		return lines[0], true
	}
	return strings.Join(lines, ", "), true
}

// parseResponseCC parses a response Cache-Control value (or a targeted
// field, or Surrogate-Control when surrogate is set). It uses
// cacheobject.ParseResponseCacheControl for the flags and corrects around it
// (each correction has a test in directives_test.go):
//
//   - delta-seconds come from our own scan: duplicates resolve to the
//     smallest value (conservative, §4.2.1), values clamp at 2^31 (§1.2.2,
//     cacheobject clamps at 2^31-1), quoted values are accepted, and an
//     invalid max-age / s-maxage counts as 0 (stale) instead of failing the
//     whole field;
//   - the restrictive flags (no-store, no-cache, private, must-revalidate,
//     proxy-revalidate) are set when either parser sees them, even with an
//     argument they do not take, and even when cacheobject rejects the
//     whole field (for example "max-age=x, no-store" or "no-store=1"), so a
//     parse error never makes a response storable; the permissive flags
//     (public, immutable) come from cacheobject, or, when it rejects the
//     field, from our scan only when written without an argument;
//   - field-name lists of no-cache / private come from our scan, which also
//     splits unquoted lists at commas (cacheobject swallows
//     `no-cache=a,max-age=5` into the list);
//   - must-understand (§5.2.2.3), which cacheobject treats as an extension.
//
// valid is false when the value has no directive at all or cacheobject
// rejects it; RFC 9213 §2.2 only obeys targeted fields with a valid value.
func parseResponseCC(value string, surrogate bool) (cc respCC, valid bool) {
	cc = respCC{maxAge: -1, sMaxAge: -1, swr: -1, sie: -1}
	d, err := cacheobject.ParseResponseCacheControl(value)
	if err == nil {
		cc.noStore = d.NoStore
		cc.noCache = d.NoCachePresent && len(d.NoCache) == 0
		cc.private = d.PrivatePresent && len(d.Private) == 0
		cc.public = d.Public
		cc.mustRevalidate = d.MustRevalidate
		cc.proxyRevalidate = d.ProxyRevalidate
		cc.immutable = d.Immutable
	}
	n := 0
	for s := (scanner{s: value}); ; {
		name, val, hasVal, ok := s.next()
		if !ok {
			break
		}
		n++
		if surrogate {
			if i := strings.IndexByte(name, ';'); i >= 0 {
				name = name[:i] // Edge Architecture targeting: "no-store;cellar"
			}
		}
		switch {
		case strings.EqualFold(name, "max-age"):
			cc.maxAge = minDelta(cc.maxAge, val, hasVal, surrogate, 0)
		case strings.EqualFold(name, "s-maxage"):
			cc.sMaxAge = minDelta(cc.sMaxAge, val, hasVal, surrogate, 0)
		case strings.EqualFold(name, "stale-while-revalidate"):
			cc.swr = minDelta(cc.swr, val, hasVal, surrogate, -1)
		case strings.EqualFold(name, "stale-if-error"):
			cc.sie = minDelta(cc.sie, val, hasVal, surrogate, -1)
		case strings.EqualFold(name, "must-understand"):
			cc.mustUnderstand = true
		case strings.EqualFold(name, "no-cache"):
			if hasVal && !surrogate {
				cc.noCacheFields = appendFields(cc.noCacheFields, val)
			} else {
				cc.noCache = true
			}
		case strings.EqualFold(name, "private"):
			if hasVal && !surrogate {
				cc.privateFields = appendFields(cc.privateFields, val)
			} else {
				cc.private = true
			}
		case strings.EqualFold(name, "no-store"):
			cc.noStore = true
		case strings.EqualFold(name, "must-revalidate"):
			cc.mustRevalidate = true
		case strings.EqualFold(name, "proxy-revalidate"):
			cc.proxyRevalidate = true
		case err == nil:
		case strings.EqualFold(name, "public"):
			cc.public = cc.public || !hasVal
		case strings.EqualFold(name, "immutable"):
			cc.immutable = cc.immutable || !hasVal
		}
	}
	if surrogate {
		// Edge Architecture 1.0 defines only max-age, no-store and the
		// stale-* extensions for Surrogate-Control.
		// Its ";target" suffixes make cacheobject reject it, so validity
		// is only "has a directive".
		return respCC{maxAge: cc.maxAge, swr: cc.swr, sie: cc.sie, sMaxAge: -1, noStore: cc.noStore}, n > 0
	}
	return cc, n > 0 && err == nil
}

// parseRequestCC parses the request's Cache-Control (RFC 9111 §5.2.1), or
// Pragma: no-cache when Cache-Control is absent (§5.4). Flags come from
// cacheobject.ParseRequestCacheControl; delta-seconds come from our scan
// (smallest of duplicates, clamped at 2^31, quoted accepted; max-stale with
// a value, which cacheobject does not flag). An invalid max-age counts as 0
// and an invalid max-stale or min-fresh is ignored, the conservative
// readings. When cacheobject rejects the value, the flags come from our scan.
func parseRequestCC(h http.Header) reqCC {
	cc := reqCC{maxAge: -1, maxStale: -1, minFresh: -1, sie: -1}
	value, ok := fieldValue(h, cacheControl)
	if !ok {
		if hasToken(h["Pragma"], "no-cache") {
			cc.noCache = true
		}
		return cc
	}
	d, err := cacheobject.ParseRequestCacheControl(value)
	if err == nil {
		cc.noCache = d.NoCache
		cc.noStore = d.NoStore
		cc.onlyIfCached = d.OnlyIfCached
		cc.maxStaleAny = d.MaxStaleSet
	}
	for s := (scanner{s: value}); ; {
		name, val, hasVal, ok := s.next()
		if !ok {
			break
		}
		switch {
		case strings.EqualFold(name, "max-age"):
			cc.maxAge = minDelta(cc.maxAge, val, hasVal, false, 0)
		case strings.EqualFold(name, "max-stale"):
			if hasVal {
				cc.maxStale = minDelta(cc.maxStale, val, true, false, -1)
			} else {
				cc.maxStaleAny = true
			}
		case strings.EqualFold(name, "min-fresh"):
			cc.minFresh = maxDelta64(cc.minFresh, val, hasVal)
		case strings.EqualFold(name, "stale-if-error"):
			cc.sie = minDelta(cc.sie, val, hasVal, false, -1)
		case strings.EqualFold(name, "no-cache"):
			cc.noCache = true
		case strings.EqualFold(name, "no-store"):
			cc.noStore = true
		case err == nil:
		case strings.EqualFold(name, "only-if-cached"):
			cc.onlyIfCached = true
		}
	}
	if cc.maxStale >= 0 && cc.maxStaleAny {
		cc.maxStaleAny = false // a bounded max-stale is the stricter reading
	}
	return cc
}

// minDelta folds one occurrence of a delta-seconds directive into cur (-1 =
// absent so far), keeping the smallest. An invalid value becomes invalid
// (0 for freshness directives, -1 to ignore it).
func minDelta(cur int64, val string, hasVal, surrogate bool, invalid int64) int64 {
	if surrogate {
		// Edge Architecture targeting: "max-age=60;cellar".
		if i := strings.IndexByte(val, ';'); i >= 0 {
			val = val[:i]
		}
	}
	v, ok := parseDelta(val)
	if !hasVal || !ok {
		v = invalid
		if v < 0 {
			return cur
		}
	}
	if cur < 0 || v < cur {
		return v
	}
	return cur
}

// maxDelta64 keeps the largest of duplicate min-fresh values (the stricter
// request); invalid values are ignored.
func maxDelta64(cur int64, val string, hasVal bool) int64 {
	v, ok := parseDelta(val)
	if !hasVal || !ok {
		return cur
	}
	if v > cur {
		return v
	}
	return cur
}

// parseDelta parses delta-seconds (RFC 9111 §1.2.2): 1*DIGIT, clamped at
// 2^31.
func parseDelta(s string) (int64, bool) {
	if s == "" {
		return 0, false
	}
	var n int64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		if n < maxDelta {
			n = n*10 + int64(c-'0')
		}
	}
	if n > maxDelta {
		n = maxDelta
	}
	return n, true
}

// appendFields appends the canonical field names of a no-cache / private
// argument ("a, b").
func appendFields(dst []string, list string) []string {
	for _, f := range strings.Split(list, ",") {
		f = textproto.TrimString(f)
		if httpheader.IsToken(f) {
			dst = append(dst, textproto.CanonicalMIMEHeaderKey(f))
		}
	}
	return dst
}

// hasToken reports whether any comma-separated element of lines equals tok,
// case-insensitively.
func hasToken(lines []string, tok string) bool {
	for _, l := range lines {
		for l != "" {
			var e string
			e, l, _ = strings.Cut(l, ",")
			if strings.EqualFold(textproto.TrimString(e), tok) {
				return true
			}
		}
	}
	return false
}

// scanner walks the elements of a Cache-Control-like list: name[=value]
// separated by commas, values tokens or quoted strings (RFC 9110 §5.6). It
// does not allocate unless a quoted value holds a quoted-pair.
type scanner struct {
	s string
	i int
}

// next returns the next element; ok is false at the end. Malformed
// elements are returned with their raw text so that callers can be
// conservative about them.
func (sc *scanner) next() (name, val string, hasVal, ok bool) {
	s := sc.s
	i := sc.i
	for i < len(s) && (s[i] == ',' || s[i] == ' ' || s[i] == '\t') {
		i++
	}
	if i >= len(s) {
		sc.i = i
		return "", "", false, false
	}
	j := i
	for j < len(s) && s[j] != ',' && s[j] != '=' && s[j] != ' ' && s[j] != '\t' {
		j++
	}
	name = s[i:j]
	k := j
	for k < len(s) && (s[k] == ' ' || s[k] == '\t') {
		k++
	}
	if k < len(s) && s[k] == '=' {
		hasVal = true
		k++
		for k < len(s) && (s[k] == ' ' || s[k] == '\t') {
			k++
		}
		if k < len(s) && s[k] == '"' {
			val, k = unquote(s, k)
		} else {
			e := k
			for e < len(s) && s[e] != ',' {
				e++
			}
			val = textproto.TrimString(s[k:e])
			k = e
		}
	}
	// Skip anything up to the next comma (garbage after a value).
	for k < len(s) && s[k] != ',' {
		k++
	}
	sc.i = k
	return name, val, hasVal, true
}

// unquote reads the quoted-string starting at s[i] == '"' and returns its
// content and the index after it. An unterminated string runs to the end.
func unquote(s string, i int) (string, int) {
	start := i + 1
	j := start
	escaped := false
	for j < len(s) {
		switch s[j] {
		case '\\':
			escaped = true
			j += 2
			continue
		case '"':
			v := s[start:j]
			if escaped {
				v = unescape(v)
			}
			return v, j + 1
		}
		j++
	}
	if j > len(s) {
		j = len(s)
	}
	v := s[start:j]
	if escaped {
		v = unescape(v)
	}
	return v, len(s)
}

func unescape(v string) string {
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		if v[i] == '\\' && i+1 < len(v) {
			i++
		}
		b.WriteByte(v[i])
	}
	return b.String()
}

// control returns the directives that govern cellar's handling of a
// response with header h: the first configured target field with a valid
// value (RFC 9213 §2.2: a Structured Field Dictionary, validTargetedValue),
// else a valid Surrogate-Control, else Cache-Control.
// explicitCC is true when Cache-Control governs (so Expires applies too).
func (p *Policy) control(h http.Header) (cc respCC, viaCacheControl bool) {
	for _, t := range p.targets {
		if v, ok := fieldValue(h, t); ok && validTargetedValue(v) {
			if cc, valid := parseResponseCC(v, false); valid {
				return cc, false
			}
		}
	}
	if v, ok := fieldValue(h, surrogateControl); ok {
		if cc, valid := parseResponseCC(v, true); valid {
			return cc, false
		}
	}
	v, _ := fieldValue(h, cacheControl)
	cc, _ = parseResponseCC(v, false)
	return cc, true
}
