package proxy

import (
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/cellar-cache/cellar/internal/accesslog"
)

// TestHitAllocations holds a memory hit, access log on, to one allocation
// in cellar's handler (the cache key), whatever representation it sends:
// a body never compressed, the stored brotli variant of a compressible
// one, its identity form for a client that accepts no coding, and an
// object read back from disk after a restart (whose stored metadata has no
// memo of its evaluation), with and without Metrics.Instrument around it.
// net/http's own allocations, for the response
// header map and its writing, are not counted: the header map here is
// cleared, not new.
func TestHitAllocations(t *testing.T) {
	if testing.Short() || raceEnabled {
		t.Skip("allocation count (with -race, ristretto's pools allocate at random)")
	}
	for _, tc := range []struct {
		name, ctype, ae, coding string
		restart                 bool
	}{
		{"octet", "application/octet-stream", "", "", false},
		{"variant", "text/html", "gzip, deflate, br, zstd", "br", false},
		{"identity of a compressible body", "text/html", "", "", false},
		{"read from disk after a restart", "application/octet-stream", "", "", true},
		{"variant read from disk after a restart", "text/html", "br", "br", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body := make([]byte, 1<<10)
			for i := range body {
				body[i] = byte('a' + i%26)
			}
			on := true
			access := accesslog.New(io.Discard, accesslog.Options{})
			defer access.Close()
			r := newRig(t, func(w http.ResponseWriter, _ *http.Request) {
				w.Header().Set("Cache-Control", "max-age=3600")
				w.Header().Set("Content-Type", tc.ctype)
				w.Header().Set("Etag", `"v1"`)
				w.Write(body)
			}, withProxyOptions(func(o *Options) { o.AccessLog, o.AccessLogOutput = &on, access }))
			r.fillCodings("/obj")
			if tc.restart {
				r.restart()
			}
			r.server.clock = nil
			req := httptest.NewRequest(http.MethodGet, "http://"+testHost+"/obj", nil)
			req.RemoteAddr = "127.0.0.1:1234"
			if tc.ae != "" {
				req.Header.Set("Accept-Encoding", tc.ae)
			}
			w := &discardWriter{h: http.Header{}}
			// After a restart, the first hits read from disk and put in
			// memory what they read (the memory tier admits it shortly).
			want := int64(1)
			if tc.coding != "" {
				want = 2
			}
			for deadline := time.Now().Add(5 * time.Second); ; {
				clear(w.h)
				r.server.ServeHTTP(w, req)
				if r.store.Stats().MemoryObjects >= want || time.Now().After(deadline) {
					break
				}
				time.Sleep(time.Millisecond)
			}
			if !isHit(w.h.Get("Cache-Status")) || w.h.Get("Content-Encoding") != tc.coding {
				t.Fatalf("not a hit in coding %q: %v", tc.coding, w.h)
			}
			n := testing.AllocsPerRun(200, func() {
				clear(w.h)
				r.server.ServeHTTP(w, req)
			})
			t.Logf("%.1f allocations per hit", n)
			if n > 1 {
				t.Errorf("%.1f allocations per memory hit, want at most 1 (the cache key)", n)
			}
			// The metrics cellar serve wraps every request in add none.
			h := r.server.metrics.Instrument(r.server, nil)
			if n := testing.AllocsPerRun(200, func() {
				clear(w.h)
				h.ServeHTTP(w, req)
			}); n > 1 {
				t.Errorf("%.1f allocations per instrumented memory hit, want at most 1 (the cache key)", n)
			}
		})
	}
}
