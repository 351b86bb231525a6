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
// The status code and the request method are the caller's to check.
func (o *Options) Compressible(h http.Header, size int64) bool {
	minSize := o.MinSize
	if minSize == 0 {
		minSize = DefaultMinSize
	}
	if size >= 0 && size < minSize {
		return false
	}
	for _, line := range h.Values("Content-Encoding") {
		for c := range strings.SplitSeq(line, ",") {
			if c = httpheader.TrimOWS(c); c != "" && !strings.EqualFold(c, Identity) {
				return false
			}
		}
	}
	if len(h.Values("Content-Range")) > 0 {
		return false
	}
	if hasNoTransform(h.Values("Cache-Control")) {
		return false
	}
	types := o.Types
	if len(types) == 0 {
		types = DefaultTypes()
	}
	return matchType(h.Get("Content-Type"), types)
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
