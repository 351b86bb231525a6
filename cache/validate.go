package cache

import (
	"net/http"
	"net/textproto"
	"strings"
	"time"

	"github.com/cellar-cache/cellar/internal/httpheader"
)

// Conditional prepares a validation request (RFC 9111 §4.3.1) on the
// outgoing header h: If-None-Match with the ETags of all entries (the
// stored variants of one URL), comma-joined and deduplicated, and
// If-Modified-Since with the first entry's Last-Modified, else its Date.
// Fields that no entry can supply are left untouched.
func Conditional(h http.Header, entries ...*Meta) {
	var tags []string
	for _, m := range entries {
		if m == nil {
			continue
		}
		for _, t := range m.Header["Etag"] {
			t = textproto.TrimString(t)
			if t == "" {
				continue
			}
			dup := false
			for _, s := range tags {
				dup = dup || s == t
			}
			if !dup {
				tags = append(tags, t)
			}
		}
	}
	if len(tags) > 0 {
		h.Set("If-None-Match", strings.Join(tags, ", "))
	}
	for _, m := range entries {
		if m == nil {
			continue
		}
		if lm := m.Header.Get("Last-Modified"); lm != "" {
			h.Set("If-Modified-Since", lm)
		} else if d := m.Header.Get("Date"); d != "" {
			h.Set("If-Modified-Since", d)
		}
		break
	}
}

// freshenSkip lists fields a 304 never updates in the stored header (RFC
// 9111 §3.2): Content-Length describes the stored body, not the 304.
var freshenSkip = map[string]bool{
	"Content-Length": true,
}

// Freshen applies a 304 (or a HEAD 200, §4.3.5) with header h to the stored
// entry m (§3.2, §4.3.4): its fields replace the stored ones, except
// hop-by-hop fields, those named in Connection, Content-Length, and those
// excluded by private="..." / no-cache="..."; Date and Age are taken from
// the new response (Date set to responseTime and Age removed when it has
// none, since the old values describe the old response). The times become
// requestTime and responseTime and Invalid is cleared. m is not modified.
func (p *Policy) Freshen(m *Meta, h http.Header, requestTime, responseTime time.Time) Meta {
	stored := make(http.Header, len(m.Header)+len(h))
	for k, v := range m.Header {
		stored[k] = v
	}
	drop := connectionFields(h)
	cc, _ := p.control(h)
	excluded := func(k string) bool {
		for _, f := range cc.privateFields {
			if f == k {
				return true
			}
		}
		for _, f := range cc.noCacheFields {
			if f == k {
				return true
			}
		}
		return false
	}
	for k, v := range h {
		if httpheader.IsHopByHop(k) || drop[k] || freshenSkip[k] || internalField(k) || proxyField(k) || excluded(k) {
			continue
		}
		stored[k] = append([]string(nil), v...)
	}
	if _, ok := h["Date"]; !ok {
		stored["Date"] = []string{responseTime.UTC().Format(http.TimeFormat)}
	}
	if _, ok := h["Age"]; !ok {
		delete(stored, "Age")
	}
	for _, f := range cc.privateFields {
		delete(stored, f)
	}
	return p.withMemo(Meta{Status: m.Status, Header: stored, RequestTime: requestTime, ResponseTime: responseTime})
}

// HeadMatches reports whether a 200 response to HEAD with header h may
// freshen the stored GET response m (RFC 9111 §4.3.5): its ETag,
// Last-Modified and Content-Length, where both carry them, must be equal.
// When it reports false the stored response should be marked Invalid
// instead.
func HeadMatches(m *Meta, h http.Header) bool {
	for _, k := range [...]string{"Etag", "Last-Modified", "Content-Length"} {
		a, b := textproto.TrimString(h.Get(k)), textproto.TrimString(m.Header.Get(k))
		if a != "" && b != "" && a != b {
			return false
		}
	}
	return true
}

// Matches304 reports whether a 304 with header h, the answer to a
// validation request that cellar made from m's validators, selects m (RFC
// 9111 §4.3.4): by its ETag (strong comparison when the 304's ETag is
// strong, weak otherwise); else by an equal Last-Modified; else, when the
// 304 has no validator at all, it selects m. §4.3.4 selects only an entry
// without validators then, but the origin answered the validators taken
// from m, so its 304 can only mean m; origins that leave ETag out of a 304
// (against RFC 9110 §15.4.5) are common, and refusing their 304 would
// cost a second full request on every revalidation.
func Matches304(m *Meta, h http.Header) bool {
	if et := textproto.TrimString(h.Get("Etag")); et != "" {
		stored := textproto.TrimString(m.Header.Get("Etag"))
		if stored == "" {
			return false
		}
		if strings.HasPrefix(et, "W/") {
			return weakMatch(et, stored)
		}
		return strongMatch(et, stored)
	}
	if lm := textproto.TrimString(h.Get("Last-Modified")); lm != "" {
		stored := textproto.TrimString(m.Header.Get("Last-Modified"))
		if stored == "" {
			return false
		}
		if stored == lm {
			return true
		}
		a, ok1 := parseHTTPDate(lm)
		b, ok2 := parseHTTPDate(stored)
		return ok1 && ok2 && a.Equal(b)
	}
	return true
}

// NotModified reports whether a client's conditional GET or HEAD is
// satisfied by the stored entry, i.e. cellar answers 304 (RFC 9110
// §13.1.2, §13.1.3, precedence §13.2.2; RFC 9111 §4.3.2): If-None-Match by
// weak comparison ("*" matches any entry); only without it,
// If-Modified-Since against Last-Modified, else Date, else the response
// time. Only 2xx entries are considered.
func NotModified(r *http.Request, m *Meta) bool {
	if r.Method != http.MethodGet && r.Method != http.MethodHead && r.Method != "" {
		return false
	}
	if m.Status < 200 || m.Status > 299 {
		return false
	}
	if inm, ok := r.Header["If-None-Match"]; ok {
		stored := textproto.TrimString(m.Header.Get("Etag"))
		for _, line := range inm {
			for _, t := range splitETags(line) {
				if t == "*" || (stored != "" && weakMatch(t, stored)) {
					return true
				}
			}
		}
		return false
	}
	var ims string
	if v := r.Header["If-Modified-Since"]; len(v) > 0 {
		ims = v[0]
	}
	if ims == "" {
		return false
	}
	since, ok := parseHTTPDate(ims)
	if !ok {
		return false
	}
	return !lastModified(m).After(since)
}

// lastModified is the stored Last-Modified, else Date, else the response
// time (RFC 9111 §4.3.2).
func lastModified(m *Meta) time.Time {
	if lm := m.Header.Get("Last-Modified"); lm != "" {
		if t, ok := parseHTTPDate(lm); ok {
			return t
		}
	}
	return dateValue(m)
}

// PreconditionFailed reports whether If-Match or, without it,
// If-Unmodified-Since fails against the stored entry, i.e. cellar answers
// 412 (RFC 9110 §13.1.1, §13.1.4, §13.2.2). If-Match uses strong
// comparison; "*" matches any entry. If-Unmodified-Since is ignored when the
// entry has no Last-Modified or the date is invalid. Only 2xx entries are
// considered.
func PreconditionFailed(r *http.Request, m *Meta) bool {
	if m.Status < 200 || m.Status > 299 {
		return false
	}
	if im, ok := r.Header["If-Match"]; ok {
		stored := textproto.TrimString(m.Header.Get("Etag"))
		for _, line := range im {
			for _, t := range splitETags(line) {
				if t == "*" || (stored != "" && strongMatch(t, stored)) {
					return false
				}
			}
		}
		return true
	}
	var ius string
	if v := r.Header["If-Unmodified-Since"]; len(v) > 0 {
		ius = v[0] // a request's header keys are canonical (net/http)
	}
	if ius == "" {
		return false
	}
	lm := m.Header.Get("Last-Modified")
	if lm == "" {
		return false
	}
	since, ok1 := parseHTTPDate(ius)
	mod, ok2 := parseHTTPDate(lm)
	if !ok1 || !ok2 {
		return false
	}
	return mod.After(since)
}

// splitETags splits an entity-tag list (RFC 9110 §8.8.3), respecting
// quotes, since an opaque-tag may contain commas.
func splitETags(s string) []string {
	var out []string
	for {
		s = strings.TrimLeft(s, " \t,")
		if s == "" {
			return out
		}
		i := 0
		if strings.HasPrefix(s, "W/") {
			i = 2
		}
		if i < len(s) && s[i] == '"' {
			j := strings.IndexByte(s[i+1:], '"')
			if j < 0 {
				return append(out, s)
			}
			out = append(out, s[:i+j+2])
			s = s[i+j+2:]
			continue
		}
		j := strings.IndexByte(s, ',')
		if j < 0 {
			j = len(s)
		}
		if e := textproto.TrimString(s[:j]); e != "" {
			out = append(out, e)
		}
		s = s[j:]
	}
}

// strongMatch is strong comparison (RFC 9110 §8.8.3.2): both strong and
// identical.
func strongMatch(a, b string) bool {
	return !strings.HasPrefix(a, "W/") && !strings.HasPrefix(b, "W/") && a == b
}

// weakMatch is weak comparison: identical opaque-tags, weakness ignored.
func weakMatch(a, b string) bool {
	return strings.TrimPrefix(a, "W/") == strings.TrimPrefix(b, "W/")
}
