package proxy

import (
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/cellar-cache/cellar/internal/accesslog"
)

// releaseCount counts the releases that reach it and passes them on to
// the engine.
type releaseCount struct {
	http.ResponseWriter
	n *atomic.Int64
}

func (w releaseCount) ReleaseRequest() {
	w.n.Add(1)
	releaseRequest(w.ResponseWriter)
}

// A memory hit releases its request to h1 through every wrapper cellar
// serve puts around the proxy (Instrument, the access log, response
// header rules), so that the connection reads its next request into the
// same memory; a miss, a Range hit and a request with a body do not. Over
// one keep-alive connection each response is still the one its own
// request asked for.
func TestMemoryHitsReleaseTheirRequest(t *testing.T) {
	origin := func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=3600")
		w.Header().Set("Content-Type", "text/plain")
		io.WriteString(w, "body of "+r.URL.Path)
	}
	var released atomic.Int64
	on := true
	r := newRig(t, origin, withProxyOptions(func(o *Options) {
		o.ResponseHeaders = HeaderOps{Set: map[string]string{"X-Served-By": "cellar"}}
		o.AccessLog, o.AccessLogOutput = &on, accesslog.New(io.Discard, accesslog.Options{})
	}), withFront(func(h http.Handler) http.Handler {
		h = h.(*Server).metrics.Instrument(h, nil)
		return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			h.ServeHTTP(releaseCount{w, &released}, req)
		})
	}))
	paths := []string{"/a", "/b?q=1", "/c"}
	for _, p := range paths {
		before := released.Load()
		r.get(p)
		if released.Load() != before {
			t.Errorf("the miss of %s released its request", p)
		}
	}
	r.waitIdle()
	// The memory tier admits in the background: wait until each is a
	// memory hit (one that releases).
	for _, p := range paths {
		for i := 0; ; i++ {
			before := released.Load()
			r.get(p)
			if released.Load() > before {
				break
			}
			if i == 200 {
				t.Fatalf("%s: no hit released its request in 200 requests", p)
			}
		}
	}
	before := released.Load()
	for i := range 30 {
		p := paths[i%len(paths)]
		h := http.Header{"X-Req": {p}}
		if i%2 == 0 {
			h.Set("Accept-Language", "en")
		}
		resp, body := r.do(http.MethodGet, p, h)
		if want := "body of " + strings.Split(p, "?")[0]; body != want || resp.Header.Get("X-Served-By") != "cellar" {
			t.Fatalf("request %d for %s: %q (X-Served-By %q), want %q", i, p, body, resp.Header.Get("X-Served-By"), want)
		}
	}
	if n := released.Load() - before; n != 30 {
		t.Errorf("30 memory hits released %d requests, want 30", n)
	}
	before = released.Load()
	if resp, body := r.do(http.MethodGet, "/a", http.Header{"Range": {"bytes=0-3"}}); resp.StatusCode != http.StatusPartialContent || body != "body" {
		t.Errorf("Range hit: %d %q", resp.StatusCode, body)
	}
	if n := released.Load() - before; n != 0 {
		t.Errorf("a Range hit released its request")
	}
}
