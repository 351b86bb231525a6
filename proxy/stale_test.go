package proxy

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cellar-cache/cellar/cache"
)

// answer returns a handler that answers status with body and Cache-Control
// cc (none when empty).
func answer(status int, body, cc string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if cc != "" {
			w.Header().Set("Cache-Control", cc)
		}
		w.WriteHeader(status)
		io.WriteString(w, body)
	}
}

// failure is how the origin fails a revalidation.
type failure struct {
	name    string
	status  int  // the origin answers with this status
	down    bool // the origin is gone: connection refused
	timeout bool // the origin never answers (ResponseTimeout)
}

// apply makes the rig's origin fail as f says.
func (f failure) apply(r *rig) {
	switch {
	case f.down:
		r.origin.Close()
	case f.timeout:
		r.origin.setHandler(func(w http.ResponseWriter, req *http.Request) { <-req.Context().Done() })
	default:
		r.origin.setHandler(answer(f.status, "origin error", "no-store"))
	}
}

var failures = []failure{
	{name: "500", status: 500},
	{name: "502", status: 502},
	{name: "503", status: 503},
	{name: "504", status: 504},
	{name: "connection refused", down: true},
	{name: "timeout", timeout: true},
}

// TestStaleIfErrorAnswersWithTheStaleEntry (RFC 5861 §4): within the
// stale-if-error window, a 500, 502, 503 or 504, a connection error or a
// timeout is answered with the stale entry, and Cache-Status says
// fwd=stale with the reason. The window may come from the response, from
// the operator's default or from the request.
func TestStaleIfErrorAnswersWithTheStaleEntry(t *testing.T) {
	windows := []struct {
		name string
		cc   string               // the stored response's Cache-Control
		req  http.Header          // the client's request fields
		opts func(*cache.Options) // engine options
	}{
		{name: "response", cc: "max-age=1, stale-if-error=60"},
		{name: "operator default", cc: "max-age=1", opts: func(o *cache.Options) { o.StaleIfError = time.Minute }},
		{name: "request", cc: "max-age=1", req: http.Header{"Cache-Control": {"stale-if-error=60"}}},
	}
	for _, win := range windows {
		for _, f := range failures {
			if win.name != "response" && f.name != "503" && !f.down {
				continue // the window's source matters, not every failure again
			}
			t.Run(win.name+"/"+f.name, func(t *testing.T) {
				checkNoLeakedGoroutines(t)
				var opts []rigOption
				if f.timeout {
					// Short, but not so short that the first fill's
					// header misses it on a loaded machine (50 ms did:
					// nothing was stored).
					opts = append(opts, withProxyOptions(func(o *Options) { o.ResponseTimeout = time.Second }))
				}
				if win.opts != nil {
					opts = append(opts, withCacheOptions(win.opts))
				}
				r := newRig(t, answer(200, "v1", win.cc), opts...)
				if resp, body := r.get("/sie"); resp.StatusCode != 200 || body != "v1" {
					t.Fatalf("the first fill got %d %q, want 200 v1", resp.StatusCode, body)
				}
				r.waitIdle()
				r.clock.advance(10 * time.Second)
				f.apply(r)

				resp, body := r.do(http.MethodGet, "/sie", win.req)

				cs := resp.Header.Get("Cache-Status")
				if resp.StatusCode != 200 || body != "v1" {
					t.Fatalf("got %d %q (Cache-Status %q), want the stale entry", resp.StatusCode, body, cs)
				}
				if !strings.Contains(cs, "fwd=stale") || !strings.Contains(cs, "detail=stale-if-error") || isHit(cs) {
					t.Errorf("Cache-Status %q, want fwd=stale and detail=stale-if-error", cs)
				}
				if want := fmt.Sprintf("fwd-status=%d", f.status); f.status != 0 && !strings.Contains(cs, want) {
					t.Errorf("Cache-Status %q lacks %s", cs, want)
				}
			})
		}
	}
}

// TestStaleIfErrorEnds: past the stale-if-error window, or with no window
// at all, the failure reaches the client: the origin's error status, or 504
// when it could not be reached (RFC 9111 §4.2.4). Without a stored entry
// an unreachable origin is a 502.
func TestStaleIfErrorEnds(t *testing.T) {
	for _, tc := range []struct {
		name   string
		cc     string
		stored bool
		f      failure
		want   int
	}{
		{"past the window, 503", "max-age=1, stale-if-error=5", true, failure{status: 503}, 503},
		{"past the window, refused", "max-age=1, stale-if-error=5", true, failure{down: true}, 504},
		{"no window, refused", "max-age=1", true, failure{down: true}, 504},
		{"nothing stored, refused", "max-age=1", false, failure{down: true}, 502},
	} {
		t.Run(tc.name, func(t *testing.T) {
			checkNoLeakedGoroutines(t)
			r := newRig(t, answer(200, "v1", tc.cc))
			if tc.stored {
				r.get("/end")
				r.waitIdle()
			}
			r.clock.advance(10 * time.Second)
			tc.f.apply(r)

			resp, body := r.get("/end")

			if resp.StatusCode != tc.want || body == "v1" {
				t.Errorf("got %d %q (Cache-Status %q), want %d and never the stale entry", resp.StatusCode, body, resp.Header.Get("Cache-Status"), tc.want)
			}
		})
	}
}

// TestWaitersOfAFailedRevalidationShareTheStaleEntry: clients that want
// the same stale entry while the origin fails (503) make one origin
// request, and each gets the stale entry as its own request allows (RFC
// 5861 §4 decides per request). A client whose request forbids stale
// content (no-cache) gets the origin's 503: as a waiter it asks the origin
// itself; as the leader its revalidation's 503 is its answer, and the
// waiters behind it still get the stale entry.
func TestWaitersOfAFailedRevalidationShareTheStaleEntry(t *testing.T) {
	tests := []struct {
		name    string
		noCache int   // the client whose request says no-cache
		hits    int64 // origin requests in all
	}{
		{"no-cache waiter", 5, 3}, // fill, one revalidation, the no-cache client's own
		{"no-cache leader", 0, 2}, // fill and the leader's revalidation
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkNoLeakedGoroutines(t)
			r := newRig(t, answer(200, "v1", "max-age=1, stale-if-error=60"))
			r.get("/shared")
			r.waitIdle()
			r.clock.advance(10 * time.Second)
			g := newGate()
			r.origin.setHandler(g.handler(answer(503, "down", "")))
			c := herdClient(t, 8)
			const clients = 6
			res := make([]herdResult, clients)
			var wg sync.WaitGroup
			for i := range clients {
				var h http.Header
				if i == tt.noCache {
					h = http.Header{"Cache-Control": {"no-cache"}}
				}
				wg.Add(1)
				go func() { defer wg.Done(); res[i] = r.herdGet(c, context.Background(), "/shared", h) }()
				if i == 0 {
					waitFor(t, "the revalidation reached the origin", func() bool { return g.first.Load() })
				}
			}
			waitFor(t, "every client joined the revalidation", func() bool { return r.waiting("/shared") == clients-1 })
			close(g.open)
			wg.Wait()

			for i, h := range res {
				if i == tt.noCache {
					if h.status != 503 || string(h.body) == "v1" {
						t.Errorf("no-cache client %d: %d %q (Cache-Status %q), want the origin's 503", i, h.status, h.body, h.cacheStatus)
					}
					continue
				}
				if h.err != nil || h.status != 200 || string(h.body) != "v1" || !strings.Contains(h.cacheStatus, "detail=stale-if-error") {
					t.Errorf("client %d: err %v, %d %q (Cache-Status %q), want the stale entry", i, h.err, h.status, h.body, h.cacheStatus)
				}
			}
			if got := r.origin.hits.Load(); got != tt.hits {
				t.Errorf("origin requests = %d, want %d", got, tt.hits)
			}
		})
	}
}

// TestStaleWhileRevalidateMakesOneBackgroundRequest (RFC 5861 §3): within
// the window, 100 clients get the stale entry at once while exactly one
// background revalidation refreshes it. The window may come from the
// response or from the operator's default.
func TestStaleWhileRevalidateMakesOneBackgroundRequest(t *testing.T) {
	for _, tc := range []struct {
		name string
		cc   string
		opts func(*cache.Options)
	}{
		{"response", "max-age=1, stale-while-revalidate=60", nil},
		{"operator default", "max-age=1", func(o *cache.Options) { o.StaleWhileRevalidate = time.Minute }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			checkNoLeakedGoroutines(t)
			var opts []rigOption
			if tc.opts != nil {
				opts = append(opts, withCacheOptions(tc.opts))
			}
			r := newRig(t, answer(200, "v1", tc.cc), opts...)
			r.get("/swr")
			r.waitIdle()
			r.clock.advance(10 * time.Second)
			release := make(chan struct{})
			r.origin.setHandler(func(w http.ResponseWriter, req *http.Request) {
				select {
				case <-release:
				case <-req.Context().Done():
					return
				}
				answer(200, "v2", "max-age=60")(w, req)
			})
			const n = 100
			res, _ := r.herd(herdClient(t, n), n, "/swr", nil)

			for i, h := range res {
				if h.err != nil || string(h.body) != "v1" || !isHit(h.cacheStatus) || !strings.Contains(h.cacheStatus, "detail=stale-while-revalidate") {
					t.Fatalf("client %d: err %v, body %q, Cache-Status %q; want the stale entry at once", i, h.err, h.body, h.cacheStatus)
				}
			}
			waitFor(t, "the background revalidation reached the origin", func() bool { return r.origin.hits.Load() == 2 })
			close(release)
			r.waitIdle()
			if got := r.origin.hits.Load(); got != 2 {
				t.Errorf("origin requests = %d, want 2 (the fill and one background revalidation)", got)
			}
			if got := metricValue(t, r.server.metrics.backgroundRevalidations); got != 1 {
				t.Errorf("background_revalidations_total = %v, want 1", got)
			}
			if resp, body := r.get("/swr"); body != "v2" || !isHit(resp.Header.Get("Cache-Status")) {
				t.Errorf("after the revalidation: %q (Cache-Status %q), want the refreshed entry as a hit", body, resp.Header.Get("Cache-Status"))
			}
		})
	}
}

// TestBackgroundRevalidationIsBoundedAndEndsWithClose: at most
// MaxBackground revalidations run at once (a stale hit beyond that serves
// without starting one), they do not run on a client's context, and
// Server.Close cancels them and waits for them.
func TestBackgroundRevalidationIsBoundedAndEndsWithClose(t *testing.T) {
	checkNoLeakedGoroutines(t)
	r := newRig(t, answer(200, "v1", "max-age=1, stale-while-revalidate=60"),
		withProxyOptions(func(o *Options) { o.MaxBackground = 1 }))
	r.get("/a")
	r.get("/b")
	r.waitIdle()
	r.clock.advance(10 * time.Second)
	cancelled := make(chan struct{}, 2)
	r.origin.setHandler(func(w http.ResponseWriter, req *http.Request) {
		<-req.Context().Done()
		cancelled <- struct{}{}
	})

	if _, body := r.get("/a"); body != "v1" {
		t.Fatalf("stale hit for /a: %q", body)
	}
	waitFor(t, "the background revalidation of /a reached the origin", func() bool { return r.origin.hits.Load() == 3 })
	if _, body := r.get("/b"); body != "v1" {
		t.Fatalf("stale hit for /b: %q", body)
	}
	// The client of /a is long gone and its revalidation still runs.
	if got := metricValue(t, r.server.metrics.fillsInProgress); got != 1 {
		t.Errorf("fills_in_progress = %v, want 1 (only /a's revalidation)", got)
	}

	closed := make(chan struct{})
	go func() { r.stop(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not end the background revalidation")
	}
	select {
	case <-cancelled:
	case <-time.After(5 * time.Second):
		t.Error("the origin's request was not cancelled by Close")
	}
	if got := r.origin.hits.Load(); got != 3 {
		t.Errorf("origin requests = %d, want 3 (two fills, one background revalidation)", got)
	}
}
