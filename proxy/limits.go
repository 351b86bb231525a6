package proxy

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
)

// Limits bound what one client may ask of the proxy, so that a hostile
// client costs a bounded amount of memory and work. Every zero field means
// its default; a negative one turns that limit off.
type Limits struct {
	// MaxHeaderBytes bounds the request line and header fields of a
	// request; default 64 KiB. net/http answers a larger header 431 and
	// closes the connection before the proxy sees it.
	MaxHeaderBytes int
	// MaxTarget bounds the request target (path and query as sent);
	// default 8 KiB. A longer one is answered 414. A cache key longer than
	// this (the target plus scheme and host) is never stored: such
	// requests go to the origin uncached.
	MaxTarget int
	// MaxHeaderFields bounds the number of request header field lines;
	// default 100. More are answered 431.
	MaxHeaderFields int
	// MaxBody bounds a request body in bytes: a larger declared
	// Content-Length is answered 413 at once, and a chunked body that
	// grows past it fails the request with 413. Default: no limit.
	MaxBody int64
	// MaxConns bounds the concurrent client connections of each listener
	// wrapped by Server.Listener; default 10000. A connection beyond it is
	// closed as soon as it is accepted, and counted
	// (cellar_connections_refused_total).
	MaxConns int
	// MaxRanges bounds the ranges of one Range request; default 16. A
	// request with more gets the whole representation (200), as RFC 9110
	// §14.2 allows a server to ignore Range.
	MaxRanges int
	// Rate limits requests per client address; zero (the default): no
	// limit. Sites may set their own (Site.Rate).
	Rate RateLimit
}

// EnsureDefaults fills zero fields with their defaults.
func (l *Limits) EnsureDefaults() {
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	def(&l.MaxHeaderBytes, 64<<10)
	def(&l.MaxTarget, 8<<10)
	def(&l.MaxHeaderFields, 100)
	def(&l.MaxConns, 10000)
	def(&l.MaxRanges, 16)
}

// Validate reports every invalid field at once.
func (l *Limits) Validate() error {
	var errs []error
	if err := l.Rate.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("limits: rate: %w", err))
	}
	return errors.Join(errs...)
}

// on reports whether limit v is in force (positive).
func on[T int | int64](v T) bool { return v > 0 }

// check returns the status (414, 431 or 413) and reason that refuse r when
// it breaks one of the limits on its target, header fields or declared
// body size, else 0. A Range with too many ranges is dropped from r, not
// refused.
func (l *Limits) check(r *http.Request) (int, string) {
	if on(l.MaxTarget) && len(r.RequestURI) > l.MaxTarget {
		return http.StatusRequestURITooLong, "the request target is longer than " + strconv.Itoa(l.MaxTarget) + " bytes"
	}
	if on(l.MaxHeaderFields) {
		n := 0
		for _, v := range r.Header {
			n += len(v)
		}
		if n > l.MaxHeaderFields {
			return http.StatusRequestHeaderFieldsTooLarge, "more than " + strconv.Itoa(l.MaxHeaderFields) + " header fields"
		}
	}
	if on(l.MaxBody) && r.ContentLength > l.MaxBody {
		return http.StatusRequestEntityTooLarge, "the request body is larger than " + strconv.FormatInt(l.MaxBody, 10) + " bytes"
	}
	if rg := r.Header["Range"]; on(l.MaxRanges) && len(rg) > 0 && tooManyRanges(rg, l.MaxRanges) {
		delete(r.Header, "Range")
		delete(r.Header, "If-Range")
	}
	return 0, ""
}

// tooManyRanges reports whether the Range field lines list more than max
// ranges.
func tooManyRanges(lines []string, max int) bool {
	n := len(lines)
	for _, v := range lines {
		n += strings.Count(v, ",")
	}
	return n > max
}

// refuse answers a request the proxy will not handle with code and a short
// plain-text reason, and closes the connection: after a refused request
// the rest of what the client sent cannot be trusted to be framed right.
func refuse(w http.ResponseWriter, code int, reason string) {
	h := w.Header()
	clear(h)
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store")
	h.Set("Connection", "close")
	w.WriteHeader(code)
	fmt.Fprintf(w, "cellar: %s: %s\n", http.StatusText(code), reason)
}
