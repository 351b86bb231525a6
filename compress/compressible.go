package compress

import (
	"net/http"
	"strings"

	"github.com/cellar-cache/cellar/internal/httpheader"
)

// Compressible reports whether a response with header h and a body of size
// bytes (-1 when unknown) is worth compressing:
//   - its Content-Type matches o.Types (a response without one is not
//     compressed: cellar does not sniff);
//   - size is at least o.MinSize, or unknown (an unknown length is usually a
//     large or streamed body, so it counts as worth it);
//   - Cache-Control has no no-transform, which forbids changing the content
//     coding (RFC 9111 §5.2.2.6, RFC 9110 §7.7);
//   - it is not already content-coded: no Content-Encoding other than
//     identity (RFC 9110 §8.4);
//   - it is not a partial response: no Content-Range (RFC 9110 §14.4), since
//     a coding applies to the whole representation.
//
// The status code and the request method are the caller's to check. h's
// keys must be in canonical form, as net/http makes them: a proxy asks on
// every hit, so the fields are looked up directly.
func (o *Options) Compressible(h http.Header, size int64) bool {
	minSize := o.MinSize
	if minSize == 0 {
		minSize = DefaultMinSize
	}
	if size >= 0 && size < minSize {
		return false
	}
	for _, line := range h["Content-Encoding"] {
		for c := range strings.SplitSeq(line, ",") {
			if c = httpheader.TrimOWS(c); c != "" && !strings.EqualFold(c, Identity) {
				return false
			}
		}
	}
	if len(h["Content-Range"]) > 0 {
		return false
	}
	if hasNoTransform(h["Cache-Control"]) {
		return false
	}
	var ct string
	if v := h["Content-Type"]; len(v) > 0 {
		ct = v[0]
	}
	if ts := o.types; ts != nil && ts.compiledFrom(o.Types) {
		return ts.match(ct)
	}
	types := o.Types
	if len(types) == 0 {
		types = DefaultTypes()
	}
	return matchType(ct, types)
}

// typeSet is a list of media type patterns (Options.Types) compiled for
// matching in constant time, since a hit of an identity object asks on
// every request.
type typeSet struct {
	src      []string            // the patterns it was compiled from
	exact    map[string]struct{} // "application/json", lowercase
	major    map[string]struct{} // "text" for "text/*", lowercase
	suffixes []string            // "+json", lowercase
}

func newTypeSet(patterns []string) *typeSet {
	ts := &typeSet{src: patterns, exact: map[string]struct{}{}, major: map[string]struct{}{}}
	for _, p := range patterns {
		p = strings.ToLower(p)
		switch {
		case strings.HasPrefix(p, "+"):
			ts.suffixes = append(ts.suffixes, p)
		case strings.HasSuffix(p, "/*"):
			ts.major[p[:len(p)-2]] = struct{}{}
		default:
			ts.exact[p] = struct{}{}
		}
	}
	return ts
}

// compiledFrom reports whether ts was compiled from this very slice.
func (ts *typeSet) compiledFrom(patterns []string) bool {
	return len(ts.src) == len(patterns) && (len(patterns) == 0 || &ts.src[0] == &patterns[0])
}

// match is matchType(ct, ts.src).
func (ts *typeSet) match(ct string) bool {
	mt, _, _ := strings.Cut(ct, ";")
	mt = httpheader.TrimOWS(mt)
	typ, sub, ok := strings.Cut(mt, "/")
	if !ok || !httpheader.IsToken(typ) || !httpheader.IsToken(sub) {
		return false
	}
	lower := asciiLower(mt)
	if _, ok := ts.exact[lower]; ok {
		return true
	}
	if _, ok := ts.major[lower[:len(typ)]]; ok {
		return true
	}
	for _, s := range ts.suffixes {
		if len(sub) > len(s) && strings.HasSuffix(lower, s) {
			return true
		}
	}
	return false
}

// asciiLower lowercases s, without allocating when it has no upper case.
func asciiLower(s string) string {
	for i := 0; i < len(s); i++ {
		if 'A' <= s[i] && s[i] <= 'Z' {
			return strings.ToLower(s)
		}
	}
	return s
}

// hasNoTransform reports whether the Cache-Control field lines contain the
// no-transform directive (RFC 9111 §5.2), skipping quoted argument values.
func hasNoTransform(lines []string) bool {
	for _, line := range lines {
		s := memberScanner{s: line}
		for {
			member, more := s.nextRaw()
			if !more {
				break
			}
			name, _, _ := strings.Cut(member, "=")
			if strings.EqualFold(httpheader.TrimOWS(name), "no-transform") {
				return true
			}
		}
	}
	return false
}

// matchType reports whether the media type of the Content-Type value ct
// matches one of the patterns (see [Options.Types]).
func matchType(ct string, patterns []string) bool {
	mt, _, _ := strings.Cut(ct, ";")
	mt = httpheader.TrimOWS(mt)
	typ, sub, ok := strings.Cut(mt, "/")
	if !ok || !httpheader.IsToken(typ) || !httpheader.IsToken(sub) {
		return false
	}
	for _, p := range patterns {
		switch {
		case strings.HasPrefix(p, "+"):
			if len(sub) > len(p) && strings.EqualFold(sub[len(sub)-len(p):], p) {
				return true
			}
		case strings.HasSuffix(p, "/*"):
			if strings.EqualFold(typ, p[:len(p)-2]) {
				return true
			}
		default:
			if strings.EqualFold(mt, p) {
				return true
			}
		}
	}
	return false
}
