package bench

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// Origin is the synthetic origin server of `cellar bench http`: GET
// PathPrefix+KEY answers 200 with a body of the object's size, the
// configured Cache-Control, an ETag and a Last-Modified date, and answers
// conditional requests with 304 (RFC 9110 §13.1.2). It counts what it
// serves, which gives the origin offload without trusting the proxy.
// Safe for concurrent use.
type Origin struct {
	opts OriginOptions

	requests, notModified, bytes atomic.Int64
}

// OriginOptions configures an Origin.
type OriginOptions struct {
	// SizeOf gives the body size of an object; nil means 1 KiB for all.
	// It is called concurrently.
	SizeOf func(key uint64) int64
	// CacheControl is sent on every response; empty means
	// "public, max-age=3600". "-" sends none.
	CacheControl string
	// Delay is added before every response (a slow origin); zero means none.
	Delay time.Duration
	// PathPrefix is the path before the key. Default "/o/".
	PathPrefix string
}

// EnsureDefaults fills in zero fields.
func (o *OriginOptions) EnsureDefaults() {
	if o.SizeOf == nil {
		o.SizeOf = func(uint64) int64 { return 1 << 10 }
	}
	if o.CacheControl == "" {
		o.CacheControl = "public, max-age=3600"
	}
	if o.PathPrefix == "" {
		o.PathPrefix = "/o/"
	}
}

// NewOrigin returns an Origin handler.
func NewOrigin(o OriginOptions) *Origin {
	o.EnsureDefaults()
	return &Origin{opts: o}
}

// lastModified is fixed so that validators are stable across runs.
var lastModified = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC).Format(http.TimeFormat)

var pattern = func() []byte {
	b := make([]byte, 32<<10)
	for i := range b {
		b[i] = "abcdefghijklmnopqrstuvwxyz012345"[i%32]
	}
	return b
}()

// ServeHTTP implements http.Handler.
func (o *Origin) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rest, ok := strings.CutPrefix(r.URL.Path, o.opts.PathPrefix)
	key, err := strconv.ParseUint(rest, 10, 64)
	if !ok || err != nil {
		http.NotFound(w, r)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	o.requests.Add(1)
	if o.opts.Delay > 0 {
		t := time.NewTimer(o.opts.Delay)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			return
		}
	}
	size := max(o.opts.SizeOf(key), 0)
	h := w.Header()
	etag := fmt.Sprintf(`"%d-%d"`, key, size)
	h.Set("ETag", etag)
	h.Set("Last-Modified", lastModified)
	if o.opts.CacheControl != "-" {
		h.Set("Cache-Control", o.opts.CacheControl)
	}
	if inm := r.Header.Get("If-None-Match"); inm != "" && strings.Contains(inm, etag) {
		o.notModified.Add(1)
		w.WriteHeader(http.StatusNotModified)
		return
	}
	h.Set("Content-Type", "application/octet-stream")
	h.Set("Content-Length", strconv.FormatInt(size, 10))
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodHead {
		return
	}
	for left := size; left > 0; {
		n, err := w.Write(pattern[:min(left, int64(len(pattern)))])
		o.bytes.Add(int64(n))
		if err != nil {
			return
		}
		left -= int64(n)
	}
}

// OriginCounts is what an Origin has served.
type OriginCounts struct {
	// Requests counts every request for an object, 304s included.
	Requests int64 `json:"origin_requests"`
	// NotModified counts 304 answers to revalidations.
	NotModified int64 `json:"origin_not_modified"`
	// Bytes counts body bytes sent.
	Bytes int64 `json:"origin_bytes"`
}

// Counts returns the counters so far.
func (o *Origin) Counts() OriginCounts {
	return OriginCounts{Requests: o.requests.Load(), NotModified: o.notModified.Load(), Bytes: o.bytes.Load()}
}
