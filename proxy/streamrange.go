package proxy

import (
	"net/http"
	"net/textproto"
	"strconv"
	"strings"

	"github.com/cellar-cache/cellar/cache"
)

// rangeAnswer is how a response streaming from a fill answers a request's
// Range field (RFC 9110 §14.2).
type rangeAnswer int

const (
	rangeIgnore        rangeAnswer = iota // send the whole 200 (always allowed, §14.2)
	rangePartial                          // 206 with one byte range
	rangeUnsatisfiable                    // 416
)

// streamRange decides how to answer r's Range field from a 200 response of
// size bytes (meta m) that is still arriving from the origin. One byte
// range gets a 206 as soon as its bytes arrive, so that a client asking
// for a piece of a large object on a miss does not wait for (or receive)
// the whole of it. Several ranges, an unknown size, a Range unit other
// than bytes, a malformed field or an If-Range that does not match (RFC
// 9110 §13.1.5) get the whole 200, which §14.2 always allows.
func streamRange(r *http.Request, m *cache.Meta, size int64) (ans rangeAnswer, start, length int64) {
	rh := r.Header["Range"]
	if len(rh) != 1 || size < 0 || m.Status != http.StatusOK || r.Method != http.MethodGet {
		return rangeIgnore, 0, 0
	}
	if ir := r.Header["If-Range"]; ir != nil && !ifRangeMatches(ir, m) {
		return rangeIgnore, 0, 0
	}
	unit, spec, ok := strings.Cut(rh[0], "=")
	if !ok || !strings.EqualFold(textproto.TrimString(unit), "bytes") || strings.Contains(spec, ",") {
		return rangeIgnore, 0, 0
	}
	first, last, ok := strings.Cut(textproto.TrimString(spec), "-")
	if !ok {
		return rangeIgnore, 0, 0
	}
	if first == "" {
		// A suffix range: the last n bytes (§14.1.2).
		n, ok := rangeInt(last)
		if !ok {
			return rangeIgnore, 0, 0
		}
		if n == 0 || size == 0 {
			return rangeUnsatisfiable, 0, 0
		}
		n = min(n, size)
		return rangePartial, size - n, n
	}
	a, ok := rangeInt(first)
	if !ok {
		return rangeIgnore, 0, 0
	}
	end := size - 1
	if last != "" {
		b, ok := rangeInt(last)
		if !ok || b < a {
			return rangeIgnore, 0, 0 // invalid: ignored (§14.2)
		}
		end = min(b, size-1)
	}
	if a >= size {
		return rangeUnsatisfiable, 0, 0
	}
	return rangePartial, a, end - a + 1
}

// rangeInt parses a non-negative decimal of a byte range; values past
// int64 are not a range cellar can serve, so they fail.
func rangeInt(s string) (int64, bool) {
	if s == "" || len(s) > 18 {
		return 0, false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	return n, err == nil
}

// ifRangeMatches implements the If-Range comparison of RFC 9110 §13.1.5:
// an entity tag matches only strongly, a date only when it equals
// Last-Modified exactly.
func ifRangeMatches(field []string, m *cache.Meta) bool {
	if len(field) != 1 {
		return false
	}
	v := textproto.TrimString(field[0])
	if strings.HasPrefix(v, `"`) {
		et := m.Header.Get("Etag")
		return strings.HasPrefix(et, `"`) && et == v
	}
	if strings.HasPrefix(v, "W/") {
		return false // a weak tag never matches (§13.1.5)
	}
	t, err := http.ParseTime(v)
	if err != nil {
		return false
	}
	lm, err := http.ParseTime(m.Header.Get("Last-Modified"))
	return err == nil && lm.Equal(t)
}
