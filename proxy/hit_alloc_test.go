package proxy

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/cellar-cache/cellar/internal/accesslog"
	"github.com/cellar-cache/cellar/internal/proxytest"
)

// TestHitAllocations holds a memory hit, access log on, to no allocation
// in cellar's handler (the cache key of a URL met lately is the policy's
// copy), whatever representation it sends:
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
			if n > 0 {
				t.Errorf("%.1f allocations per memory hit, want 0", n)
			}
			// The metrics cellar serve wraps every request in add none.
			h := r.server.metrics.Instrument(r.server, nil)
			if n := testing.AllocsPerRun(200, func() {
				clear(w.h)
				h.ServeHTTP(w, req)
			}); n > 0 {
				t.Errorf("%.1f allocations per instrumented memory hit, want 0", n)
			}
		})
	}
}

// TestWireHitAllocations counts what a 1 KiB memory hit allocates end to
// end, over a real loopback connection to cellar's HTTP/1.1 engine, with
// what cellar serve puts around the proxy (Instrument, the access log):
// every allocation and byte in the process during thousands of hits,
// whichever goroutine made it. In steady state a hit allocates nothing of
// its own: the engine reads the next request into the released one
// (header map included), the target and the cache key of a URL met lately
// are kept copies. What is left is ristretto's: its get buffer hands over
// a new batch of 64 key hashes (512 B) every 64 hits. The collector, whose
// pauses make most of a small hit's p99 on one CPU (docs/DESIGN.md, the
// tail of small hits), then runs rarely.
func TestWireHitAllocations(t *testing.T) {
	if testing.Short() || raceEnabled {
		t.Skip("allocation count (with -race, ristretto's pools allocate at random)")
	}
	body := make([]byte, 1<<10)
	for i := range body {
		body[i] = byte('a' + i%26)
	}
	on := true
	r := newRig(t, func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Cache-Control", "max-age=3600")
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Write(body)
	}, withProxyOptions(func(o *Options) {
		o.AccessLog, o.AccessLogOutput = &on, accesslog.New(io.Discard, accesslog.Options{})
	}), withFront(func(h http.Handler) http.Handler {
		return h.(*Server).metrics.Instrument(h, nil)
	}))
	paths := make([]string, 16)
	for i := range paths {
		paths[i] = fmt.Sprintf("/1k/%d", i)
		r.get(paths[i])
	}
	r.waitIdle()
	for deadline := time.Now().Add(10 * time.Second); r.store.Stats().MemoryObjects < int64(len(paths)); {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d objects in memory after 10s", r.store.Stats().MemoryObjects, len(paths))
		}
		for _, p := range paths {
			r.get(p)
		}
	}
	for _, shape := range []struct{ name, fields string }{
		{"as wrk sends", ""},
		{"as a browser sends", "User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0\r\n" +
			"Accept: */*\r\nAccept-Language: en-US,en;q=0.5\r\nAccept-Encoding: gzip, deflate, br, zstd\r\n" +
			"Referer: https://cellar.test/\r\nConnection: keep-alive\r\nSec-Fetch-Mode: no-cors\r\n"},
	} {
		t.Run(shape.name, func(t *testing.T) {
			c := proxytest.DialHits(t, r.front.Listener.Addr().String(), testHost, paths, shape.fields, len(body))
			c.Hits(t, 1000) // the first of each URL, buffers grown
			allocs, bytes := c.AllocsPerHit(t, 3, 5000)
			t.Logf("per 1 KiB memory hit: %.3f allocations, %.1f bytes", allocs, bytes)
			// Budget: ristretto's 1/64 allocation and 8 bytes per hit,
			// with room for the runtime's and the test's own.
			if allocs > 0.05 || bytes > 16 {
				t.Errorf("a memory hit allocates %.3f times, %.1f bytes; want at most 0.05 and 16", allocs, bytes)
			}
		})
	}
}
