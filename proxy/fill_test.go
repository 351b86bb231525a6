package proxy

// The reproductions of issue 11, each through the proxy over loopback:
// coalescing across unrelated writes, pass-through under the client's
// lifetime, the between-bytes timeout, oversized chunked bodies, and no
// lock held across a commit's fsync.

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cellar-cache/cellar/internal/proxytest"
	"github.com/cellar-cache/cellar/internal/walgate"
	"github.com/cellar-cache/cellar/store"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// getAll sends n concurrent GETs of path and returns their answers.
func (r *rig) getAll(c *http.Client, n int, path string, header http.Header) (func() []herdResult, *sync.WaitGroup) {
	res := make([]herdResult, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res[i] = r.herdGet(c, context.Background(), path, header)
		}()
	}
	return func() []herdResult { wg.Wait(); return res }, &wg
}

// TestUnrelatedWriteDoesNotSplitACoalescedMiss: 20 clients wait on a slow
// fill, a POST to another URL invalidates that URL (a purge), 20 more
// clients arrive: all 40 share the one origin request. A fill that outlives
// more than 1,024 unrelated purges is still stored fresh.
func TestUnrelatedWriteDoesNotSplitACoalescedMiss(t *testing.T) {
	checkNoLeakedGoroutines(t)
	g := newGate()
	var gets atomic.Int64
	r := newRig(t, func(w http.ResponseWriter, req *http.Request) {
		if req.Method != http.MethodGet {
			io.WriteString(w, "posted")
			return
		}
		gets.Add(1)
		g.handler(fixed("herd body", "max-age=600"))(w, req)
	})
	c := herdClient(t, 40)
	first, _ := r.getAll(c, 20, "/herd", nil)
	waitFor(t, "20 clients on the fill", func() bool { return g.first.Load() && r.waiting("/herd") == 19 })
	if resp, _ := r.do(http.MethodPost, "/unrelated", nil); resp.StatusCode != 200 {
		t.Fatalf("POST: %d", resp.StatusCode)
	}
	second, _ := r.getAll(c, 20, "/herd", nil)
	waitFor(t, "40 clients on the one fill", func() bool { return r.waiting("/herd") == 39 })

	// A fill in flight while many other URLs are purged.
	for i := range 1100 {
		key := fmt.Sprintf("http://%s/other/%d", testHost, i)
		if _, err := r.store.Purge(t.Context(), store.Selector{URL: key}, false); err != nil {
			t.Fatal(err)
		}
	}
	close(g.open)
	for i, h := range append(first(), second()...) {
		if h.err != nil || string(h.body) != "herd body" {
			t.Errorf("client %d: %v %q", i, h.err, h.body)
		}
	}
	if n := gets.Load(); n != 1 {
		t.Errorf("origin GETs = %d, want 1: the unrelated POST split the flight", n)
	}
	r.waitIdle()
	if resp, _ := r.get("/herd"); !isHit(resp.Header.Get("Cache-Status")) {
		t.Errorf("after the fill: Cache-Status %q, want a hit (1,100 unrelated purges must not make the fill Invalid)", resp.Header.Get("Cache-Status"))
	}
	if n := gets.Load(); n != 1 {
		t.Errorf("origin GETs = %d after the fill, want 1", n)
	}
}

// slowNoStore is an origin that answers no-store responses of 1,000 bytes
// in two halves with a pause of pause between them, and honours Range,
// If-None-Match and Accept-Encoding: gzip as a plain origin would.
func slowNoStore(pause time.Duration) http.HandlerFunc {
	body := bytes.Repeat([]byte("0123456789"), 100)
	return func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Cache-Control", "no-store")
		h.Set("Etag", `"v1"`)
		h.Set("Vary", "Accept-Encoding")
		if r.Header.Get("If-None-Match") == `"v1"` {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		if strings.Contains(r.Header.Get("Accept-Encoding"), "gzip") {
			h.Set("Content-Encoding", "gzip")
			zw := gzip.NewWriter(w)
			zw.Write(body)
			zw.Close()
			return
		}
		if rg := r.Header.Get("Range"); rg != "" {
			http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(body))
			return
		}
		h.Set("Content-Length", strconv.Itoa(len(body)))
		w.Write(body[:500])
		w.(http.Flusher).Flush()
		select {
		case <-time.After(pause):
		case <-r.Context().Done():
			return
		}
		w.Write(body[500:])
	}
}

// TestUncacheableResponseStreamsUnderTheClientsLifetime: a no-store
// response whose body takes longer than the fill timeout reaches its first
// client whole, and that client's Range, validators and Accept-Encoding
// are honoured as for any request passed through.
func TestUncacheableResponseStreamsUnderTheClientsLifetime(t *testing.T) {
	const fillCap = time.Second
	r := newRig(t, slowNoStore(3*fillCap), withProxyOptions(func(o *Options) { o.FillTimeout = fillCap }))
	c := herdClient(t, 1)
	for _, tc := range []struct {
		name   string
		header http.Header
		check  func(h herdResult, resp http.Header) string
	}{
		{"plain", nil, func(h herdResult, _ http.Header) string {
			if h.status != 200 || len(h.body) != 1000 {
				return fmt.Sprintf("%d, %d bytes; want 200 with 1000", h.status, len(h.body))
			}
			return ""
		}},
		{"range", http.Header{"Range": {"bytes=10-19"}}, func(h herdResult, _ http.Header) string {
			if h.status != http.StatusPartialContent || string(h.body) != "0123456789" {
				return fmt.Sprintf("%d %q; want 206 with the range", h.status, h.body)
			}
			return ""
		}},
		{"validators", http.Header{"If-None-Match": {`"v1"`}}, func(h herdResult, _ http.Header) string {
			if h.status != http.StatusNotModified {
				return fmt.Sprintf("%d; want 304", h.status)
			}
			return ""
		}},
		{"accept-encoding", http.Header{"Accept-Encoding": {"gzip"}}, func(h herdResult, resp http.Header) string {
			if resp.Get("Content-Encoding") != "gzip" {
				return fmt.Sprintf("Content-Encoding %q; want the origin's gzip", resp.Get("Content-Encoding"))
			}
			return ""
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodGet, r.front.URL+"/nostore/"+tc.name, nil)
			req.Host = testHost
			for k, v := range tc.header {
				req.Header[k] = v
			}
			resp, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			h := herdResult{status: resp.StatusCode, cacheStatus: resp.Header.Get("Cache-Status"), body: b, err: err}
			if err != nil {
				t.Fatalf("first client: %v after %d bytes (Cache-Status %q)", err, len(b), h.cacheStatus)
			}
			if msg := tc.check(h, resp.Header); msg != "" {
				t.Errorf("first client: %s (Cache-Status %q)", msg, h.cacheStatus)
			}
		})
	}
}

// TestOriginStallAfterHeadersEndsTheResponse: an origin that sends its
// header and then nothing is answered 504 (detail origin-stalled) after the
// between-bytes timeout, for the leader and its waiters alike; one that
// stalls mid-body ends the response, and one that closes before the first
// body byte is a 502 with detail origin-closed, not an empty reply.
func TestOriginStallAfterHeadersEndsTheResponse(t *testing.T) {
	for _, tc := range []struct {
		name       string
		sent       int // body bytes the origin sends before it stalls or closes
		close      bool
		wantStatus int
		wantDetail string
	}{
		{"stall before the body", 0, false, http.StatusGatewayTimeout, "origin-stalled"},
		{"close before the body", 0, true, http.StatusBadGateway, "origin-closed"},
		{"stall mid-body", 100, false, http.StatusOK, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			checkNoLeakedGoroutines(t)
			g := newGate()
			r := newRig(t, g.handler(func(w http.ResponseWriter, req *http.Request) {
				w.Header().Set("Cache-Control", "max-age=60")
				w.Header().Set("Content-Length", "1000")
				w.WriteHeader(200)
				w.Write(make([]byte, tc.sent))
				w.(http.Flusher).Flush()
				if tc.close {
					panic(http.ErrAbortHandler)
				}
				<-req.Context().Done() // stalls until the proxy gives up
			}), withProxyOptions(func(o *Options) { o.BetweenBytes = 200 * time.Millisecond }))
			c := herdClient(t, 4)
			c.Timeout = time.Minute // a generous bound: the fix answers after 200 ms
			all, _ := r.getAll(c, 4, "/stall", nil)
			waitFor(t, "4 clients on the fill", func() bool { return g.first.Load() && r.waiting("/stall") == 3 })
			close(g.open)
			for i, h := range all() {
				if tc.wantStatus == http.StatusOK {
					// Cut, or 504 for a client that had not got a byte yet.
					if h.err == nil && h.status != http.StatusGatewayTimeout {
						t.Errorf("client %d: a complete %d response of %d bytes; want it cut", i, h.status, len(h.body))
					}
					continue
				}
				if h.err != nil || h.status != tc.wantStatus || !hasParam(h.cacheStatus, "detail="+tc.wantDetail) {
					t.Errorf("client %d: %v, %d, %q; want %d with detail=%s", i, h.err, h.status, h.cacheStatus, tc.wantStatus, tc.wantDetail)
				}
			}
			r.waitIdle()
			if _, err := r.store.Get(t.Context(), "http://"+testHost+"/stall"); err == nil {
				t.Error("the failed fill was stored")
			}
		})
	}
}

// TestStorableBodyTakesAsLongAsItNeeds: with the defaults no total time
// caps a fill: a body trickled slower than between-bytes would allow in one
// piece, but with every gap shorter, is stored whole.
func TestStorableBodyTakesAsLongAsItNeeds(t *testing.T) {
	r := newRig(t, func(w http.ResponseWriter, req *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		w.Header().Set("Content-Length", "10")
		for i := range 10 {
			w.Write([]byte{'0' + byte(i)})
			w.(http.Flusher).Flush()
			time.Sleep(100 * time.Millisecond) // the origin's pace, not a wait in the test
		}
	}, withProxyOptions(func(o *Options) { o.BetweenBytes = 10 * time.Second }))
	if o := r.server.opts.FillTimeout; o != 0 {
		t.Fatalf("default FillTimeout %v, want none", o)
	}
	if resp, body := r.get("/trickle"); resp.StatusCode != 200 || body != "0123456789" {
		t.Fatalf("%d %q", resp.StatusCode, body)
	}
	if resp, body := r.get("/trickle"); !isHit(resp.Header.Get("Cache-Status")) || body != "0123456789" {
		t.Errorf("second request: %q %q, want a stored hit", resp.Header.Get("Cache-Status"), body)
	}
}

// TestOversizedChunkedBodyStreamsWholeAndIsNotStored: a cacheable chunked
// body past the store's size limit (2 MiB with an 8 MiB disk) reaches every
// client of the fill whole; nothing is stored and the URL is marked
// hit-for-miss, so the next request goes straight to the origin.
func TestOversizedChunkedBodyStreamsWholeAndIsNotStored(t *testing.T) {
	checkNoLeakedGoroutines(t)
	body := make([]byte, 3<<20)
	for i := range body {
		body[i] = byte(i * 7 / 251)
	}
	g := newGate()
	r := newRig(t, g.handler(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Cache-Control", "max-age=600")
		for p := body; len(p) > 0; p = p[min(len(p), 64<<10):] {
			w.Write(p[:min(len(p), 64<<10)])
			w.(http.Flusher).Flush() // chunked: no Content-Length
		}
	}), withStoreOptions(func(o *store.Options) { o.DiskBytes = 8 << 20; o.MemoryBytes = 4 << 20 }))
	c := herdClient(t, 3)
	all, _ := r.getAll(c, 3, "/big", nil)
	waitFor(t, "3 clients on the fill", func() bool { return g.first.Load() && r.waiting("/big") == 2 })
	close(g.open)
	for i, h := range all() {
		if h.err != nil || !bytes.Equal(h.body, body) {
			t.Errorf("client %d: %v, %d of %d bytes", i, h.err, len(h.body), len(body))
		}
	}
	r.waitIdle()
	resp, b := r.get("/big")
	if cs := resp.Header.Get("Cache-Status"); !hasParam(cs, "detail=hit-for-miss") || len(b) != len(body) {
		t.Errorf("next request: %q, %d bytes; want hit-for-miss and the whole body", cs, len(b))
	}
	if n := r.origin.hits.Load(); n != 2 {
		t.Errorf("origin requests = %d, want 2", n)
	}
}

// TestCommitFsyncBlocksNoClient holds a fill's commit in its fsync and
// checks that meanwhile the client of that fill gets its whole (chunked)
// body, and that a purge waiting for the commit does not hold up a miss of
// another URL.
func TestCommitFsyncBlocksNoClient(t *testing.T) {
	g := walgate.New(vfs.Default)
	r := newRig(t, func(w http.ResponseWriter, req *http.Request) {
		if req.Method != http.MethodGet {
			return
		}
		w.Header().Set("Cache-Control", "max-age=60")
		io.WriteString(w, "body of "+req.URL.Path)
		w.(http.Flusher).Flush() // chunked: the client waits for the end
	}, withStoreOptions(func(o *store.Options) { o.FS = g }))
	t.Cleanup(g.Release) // before the rig closes the store, even on failure
	g.Shut()

	done := make(chan string, 3)
	get := func(path string) {
		resp, err := r.front.Client().Do(newReq(r, http.MethodGet, path))
		if err != nil {
			done <- path + ": " + err.Error()
			return
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || string(b) != "body of "+path {
			done <- fmt.Sprintf("%s: %q, %v", path, b, err)
			return
		}
		done <- ""
	}
	go get("/a")
	select {
	case <-g.Blocked():
	case <-time.After(time.Minute):
		t.Fatal("the commit of /a never reached its fsync")
	}
	posted := make(chan struct{})
	go func() {
		defer close(posted)
		resp, err := r.front.Client().Do(newReq(r, http.MethodPost, "/c"))
		if err == nil {
			resp.Body.Close()
		}
	}()
	go get("/b")
	for range 2 {
		select {
		case msg := <-done:
			if msg != "" {
				t.Error(msg)
			}
		case <-time.After(time.Minute):
			t.Fatal("a client waited for another fill's fsync")
		}
	}
	g.Release()
	<-posted
}

func newReq(r *rig, method, path string) *http.Request {
	req, _ := http.NewRequest(method, r.front.URL+path, nil)
	req.Host = testHost
	return req
}

// TestInvalidationOutlivesTheClient: the purge that follows a POST (§4.4)
// runs under the server's context. With a commit held in its fsync the
// purge has to wait; the POST's client leaves meanwhile, and the stored
// response is still invalidated once the commit is through.
func TestInvalidationOutlivesTheClient(t *testing.T) {
	g := walgate.New(vfs.Default)
	r := newRig(t, func(w http.ResponseWriter, req *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		io.WriteString(w, "body of "+req.URL.Path)
	}, withStoreOptions(func(o *store.Options) { o.FS = g }))
	t.Cleanup(g.Release)
	r.get("/x")
	r.waitIdle()
	if resp, _ := r.get("/x"); !isHit(resp.Header.Get("Cache-Status")) {
		t.Fatalf("/x not stored: %q", resp.Header.Get("Cache-Status"))
	}
	g.Shut()
	go r.front.Client().Do(newReq(r, http.MethodGet, "/a"))
	select {
	case <-g.Blocked():
	case <-time.After(time.Minute):
		t.Fatal("the commit of /a never reached its fsync")
	}
	postAndLeave(t, r, "/x")
	g.Release()
	waitFor(t, "/x invalidated", func() bool {
		_, err := r.store.Get(context.Background(), "http://"+testHost+"/x")
		return err != nil
	})
}

// TestInvalidationWhenTheClientLeavesBeforeTheOriginAnswers: a POST the
// origin received invalidates its target even when the client leaves
// before the origin answers (the proxy never sees the response's status).
func TestInvalidationWhenTheClientLeavesBeforeTheOriginAnswers(t *testing.T) {
	release := make(chan struct{})
	defer close(release) // before the rig's cleanup waits for the origin
	r := newRig(t, func(w http.ResponseWriter, req *http.Request) {
		if req.Method == http.MethodPost {
			<-release
		}
		w.Header().Set("Cache-Control", "max-age=60")
		io.WriteString(w, "body of "+req.URL.Path)
	})
	r.get("/x")
	r.waitIdle()
	if resp, _ := r.get("/x"); !isHit(resp.Header.Get("Cache-Status")) {
		t.Fatalf("/x not stored: %q", resp.Header.Get("Cache-Status"))
	}
	postAndLeave(t, r, "/x")
	waitFor(t, "/x invalidated", func() bool {
		_, err := r.store.Get(context.Background(), "http://"+testHost+"/x")
		return err != nil
	})
}

// postAndLeave sends a POST to path and cancels it once the origin has
// received it, before the answer reaches the client.
func postAndLeave(t *testing.T, r *rig, path string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	posted := make(chan struct{})
	go func() {
		defer close(posted)
		req := newReq(r, http.MethodPost, path).WithContext(ctx)
		if resp, err := r.front.Client().Do(req); err == nil {
			resp.Body.Close()
		}
	}()
	waitFor(t, "the POST reached the origin", func() bool { return r.origin.lastRequest() != nil && r.origin.lastRequest().Method == http.MethodPost })
	cancel()
	<-posted
}

// TestStoredMeanwhileFindsAVariant: a request that found nothing at its
// URL and leads a new flight looks in the store again before going to the
// origin; a Vary marker and this request's variant stored meanwhile (the
// first fill of the URL committed between the lookup and the join) are
// found there. It went to the origin again (the purge tests' /v, about 1
// in 1000 fills on a loaded machine).
func TestStoredMeanwhileFindsAVariant(t *testing.T) {
	r := newRig(t, func(w http.ResponseWriter, req *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		w.Header().Set("Vary", "Accept-Language")
		io.WriteString(w, req.Header.Get("Accept-Language"))
	})
	en := http.Header{"Accept-Language": {"en"}}
	r.do(http.MethodGet, "/v", en)
	r.waitIdle()
	if resp, _ := r.do(http.MethodGet, "/v", en); !isHit(resp.Header.Get("Cache-Status")) {
		t.Fatalf("second GET /v (en): Cache-Status %q, want a hit", resp.Header.Get("Cache-Status"))
	}

	// The state of a request whose lookup ran before the first fill's
	// commit: nothing found at the URL, the flight keyed by the URL.
	req := newReq(r, http.MethodGet, "/v")
	req.Header.Set("Accept-Language", "en")
	primary := r.server.policy.Key(req)
	fi := r.server.newFill(req, found{primary: primary, key: primary}, &flight{})
	defer fi.cancel(context.Canceled)
	res, ok := fi.storedMeanwhile()
	if !ok || res.kind != resultObject || res.obj == nil {
		t.Fatalf("storedMeanwhile = %v (kind %v): the variant stored meanwhile was not found", ok, res.kind)
	}
	if want := r.server.variantKey(primary, []string{"Accept-Language"}, req.Header); res.key != want || res.obj.Key != want {
		t.Errorf("storedMeanwhile found key %q (object %q), want the en variant %q", res.key, res.obj.Key, want)
	}
}

// TestWaitersOfAVariantStoredMeanwhile: the waiters of a flight whose
// leader found its variant stored meanwhile under a new Vary marker
// (TestStoredMeanwhileFindsAVariant) joined it before the marker existed,
// so each may select another variant than the leader's. One that selects
// the leader's is a hit on it; one that selects another gets its own from
// the origin, never the leader's. Each counts once among the requests'
// outcomes.
//
// The test holds the URL's flight as its leader while two requests
// through the proxy join it, then commits the en variant and the marker
// through a second server on the same store (this one's flight for the
// URL is held), then runs the leader's fill.
func TestWaitersOfAVariantStoredMeanwhile(t *testing.T) {
	var mu sync.Mutex
	asked := map[string]int{} // origin requests by Accept-Language
	r := newRig(t, func(w http.ResponseWriter, req *http.Request) {
		lang := req.Header.Get("Accept-Language")
		mu.Lock()
		asked[lang]++
		mu.Unlock()
		w.Header().Set("Cache-Control", "max-age=60")
		w.Header().Set("Vary", "Accept-Language")
		io.WriteString(w, "in "+lang)
	})
	s := r.server
	leaderReq := newReq(r, http.MethodGet, "/v")
	leaderReq.Header.Set("Accept-Language", "en")
	primary := s.policy.Key(leaderReq)
	fl, leader, _ := s.flights.join(primary, s.opts.MaxWaiters, s.store.Ticket)
	if !leader {
		t.Fatal("a flight for /v was already in progress")
	}
	s.metrics.fillsInProgress.Inc() // as fetchVariant does for its leader

	c := herdClient(t, 2)
	langs := []string{"en", "de"}
	answers := make([]herdResult, len(langs))
	var wg sync.WaitGroup
	for i, lang := range langs {
		wg.Go(func() {
			answers[i] = r.herdGet(c, context.Background(), "/v", http.Header{"Accept-Language": {lang}})
		})
	}
	waitFor(t, "both requests waiting on the flight for /v", func() bool {
		s.flights.mu.Lock()
		defer s.flights.mu.Unlock()
		return fl.waiting == len(langs)
	})

	opts := s.opts
	opts.Metrics = nil // its own
	other, err := New(opts, s.policy, r.store)
	if err != nil {
		t.Fatalf("proxy.New: %v", err)
	}
	front := httptest.NewServer(other)
	t.Cleanup(func() { front.Close(); other.Close() })
	en := http.Header{"Accept-Language": {"en"}}
	if resp, body := proxytest.Do(t, front.Client(), front.URL, testHost, http.MethodGet, "/v", en); body != "in en" {
		t.Fatalf("the first fill of /v (en): %d %q", resp.StatusCode, body)
	}
	waitFor(t, "the first fill of /v committed", func() bool {
		return metricValue(t, other.metrics.fillsInProgress) == 0
	})

	if pass := s.newFill(leaderReq, found{primary: primary, key: primary}, fl).run(nil, context.Background()); pass != nil {
		t.Fatal("the leader's fill returned a pass-through")
	}
	if res := fl.res; res.kind != resultObject || !res.stored || res.key == primary {
		t.Fatalf("the leader's fill published kind %v, stored %v, key %q: want the en variant found in the store", res.kind, res.stored, res.key)
	}
	wg.Wait()

	for i, lang := range langs {
		a := answers[i]
		if a.err != nil || a.status != http.StatusOK || string(a.body) != "in "+lang {
			t.Errorf("waiter in %s: %d %q (%v), want its own variant %q", lang, a.status, a.body, a.err, "in "+lang)
		}
	}
	if cs := answers[0].cacheStatus; !isHit(cs) {
		t.Errorf("waiter in en: Cache-Status %q, want a hit on the variant stored meanwhile", cs)
	}
	if cs := answers[1].cacheStatus; isHit(cs) || !hasStatusParam(cs, "fwd") {
		t.Errorf("waiter in de: Cache-Status %q, want a miss that went forward", cs)
	}
	mu.Lock()
	if asked["en"] != 1 || asked["de"] != 1 || len(asked) != 2 {
		t.Errorf("origin requests by language %v, want en once (the first fill) and de once", asked)
	}
	mu.Unlock()
	if hits, misses := metricValue(t, s.metrics.hits), metricValue(t, s.metrics.misses); hits != 1 || misses != 1 {
		t.Errorf("outcomes counted: %v hits, %v misses; want 1 and 1 (each waiter once)", hits, misses)
	}

	// A leader with a client of its own answers it from the variant found,
	// and counts the hit it is.
	rec := httptest.NewRecorder()
	s.fetch(rec, leaderReq, found{primary: primary, key: primary})
	if cs := rec.Header().Get("Cache-Status"); !isHit(cs) || rec.Body.String() != "in en" {
		t.Errorf("the leader's own client: Cache-Status %q, body %q; want a hit on %q", cs, rec.Body, "in en")
	}
	if hits, misses := metricValue(t, s.metrics.hits), metricValue(t, s.metrics.misses); hits != 2 || misses != 1 {
		t.Errorf("after the leader: %v hits, %v misses; want 2 and 1", hits, misses)
	}
}
