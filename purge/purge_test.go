package purge_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cellar-cache/cellar/cache"
	"github.com/cellar-cache/cellar/purge"
	"github.com/cellar-cache/cellar/store"
)

// catalog is the origin of the endpoint tests: tagged pages, a page that
// varies on Accept-Language, all fresh for an hour.
func catalog(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Cache-Control", "max-age=3600")
	h.Set("Content-Type", "application/octet-stream") // no coding variants
	h.Set("ETag", `"`+r.URL.Path+`"`)
	switch r.URL.Path {
	case "/a":
		if r.URL.RawQuery == "" {
			h.Set("Surrogate-Key", "product-4 shoes")
		} else {
			h.Set("Surrogate-Key", "other")
		}
	case "/b":
		h.Set("Surrogate-Key", "product-42")
	case "/blog/1", "/blog/2":
		h.Set("Cache-Tag", "blog, news")
	case "/v":
		h.Set("Vary", "Accept-Language")
		h.Set("Surrogate-Key", "vary")
	}
	fmt.Fprintf(w, "%s %s", r.URL.RequestURI(), r.Header.Get("Accept-Language"))
}

// request is one request of the catalog: its path and Accept-Language.
type request struct{ path, lang string }

var catalogRequests = []request{{"/a", ""}, {"/a?x=1", ""}, {"/b", ""}, {"/blog/1", ""}, {"/blog/2", ""}, {"/v", "en"}, {"/v", "fr"}}

func (r *rig) getLang(q request) (*http.Response, string) {
	r.t.Helper()
	var h http.Header
	if q.lang != "" {
		h = http.Header{"Accept-Language": {q.lang}}
	}
	return r.do(http.MethodGet, q.path, h)
}

// fillCatalog stores every catalog request and waits until each one hits.
func (r *rig) fillCatalog() {
	r.t.Helper()
	for _, q := range catalogRequests {
		resp, _ := r.getLang(q)
		for _, f := range []string{"Surrogate-Key", "Cache-Tag"} {
			if v := resp.Header.Get(f); v != "" {
				r.t.Errorf("GET %s: %s %q sent to the client", q.path, f, v)
			}
		}
	}
	for _, q := range catalogRequests {
		deadline := time.Now().Add(5 * time.Second)
		for {
			resp, _ := r.getLang(q)
			if isHit(resp) {
				for _, f := range []string{"Surrogate-Key", "Cache-Tag"} {
					if v := resp.Header.Get(f); v != "" {
						r.t.Errorf("hit %s: %s %q sent to the client", q.path, f, v)
					}
				}
				break
			}
			if time.Now().After(deadline) {
				r.t.Fatalf("GET %s: no hit after 5s", q.path)
			}
			time.Sleep(time.Millisecond)
		}
	}
	for _, q := range catalogRequests {
		if n := r.origin.count(q.path); n != 1 && q.path != "/v" || q.path == "/v" && n != 2 {
			r.t.Fatalf("origin saw %s %d times while filling", q.path, n)
		}
	}
}

// TestPurgeEndpointsRemoveExactlyTheirObjects purges through each admin
// endpoint and checks the count, which requests go back to the origin and
// which still hit, and the audit line. Tags that are prefixes of each other
// (product-4, product-42) must not cross-talk.
func TestPurgeEndpointsRemoveExactlyTheirObjects(t *testing.T) {
	tests := []struct {
		name, kind, body string
		want             int
		refetched        []string // paths that must go to the origin again
		audit            string
	}{
		{name: "url with all its variants", kind: "url", body: `{"urls":["http://cellar.test/a","http://CELLAR.test:80/v"]}`, want: 4, refetched: []string{"/a", "/v"}, audit: "what=\"url=http://cellar.test/a url=http://cellar.test/v\""},
		{name: "prefix", kind: "prefix", body: `{"prefixes":["http://cellar.test/blog/"]}`, want: 2, refetched: []string{"/blog/1", "/blog/2"}, audit: `what="prefix=http://cellar.test/blog/"`},
		{name: "tag that prefixes another tag", kind: "tag", body: `{"tags":["product-4"]}`, want: 1, refetched: []string{"/a"}, audit: `what="tag=product-4"`},
		{name: "tag that another tag prefixes", kind: "tag", body: `{"tags":["product-42"]}`, want: 1, refetched: []string{"/b"}},
		{name: "cache-tag", kind: "tag", body: `{"tags":["news"]}`, want: 2, refetched: []string{"/blog/1", "/blog/2"}},
		{name: "several tags", kind: "tag", body: `{"tags":["blog","vary"]}`, want: 4, refetched: []string{"/blog/1", "/blog/2", "/v"}},
		{name: "unknown tag", kind: "tag", body: `{"tags":["nothing"]}`, want: 0},
		{name: "soft url", kind: "url", body: `{"urls":["http://cellar.test/a?x=1"],"soft":true}`, want: 1, refetched: []string{"/a?x=1"}, audit: "soft=true"},
		{name: "all", kind: "all", body: `{}`, want: 8, refetched: []string{"/a", "/a?x=1", "/b", "/blog/1", "/blog/2", "/v"}},
		{name: "all without a body", kind: "all", body: ``, want: 8, refetched: []string{"/a", "/a?x=1", "/b", "/blog/1", "/blog/2", "/v"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRig(t, catalog)
			r.fillCatalog()
			code, a := r.purgeReq(tt.kind, tt.body, testToken)
			if code != http.StatusOK || a.Purged != tt.want {
				t.Fatalf("POST /purge/%s %s = %d %+v, want 200 purged %d", tt.kind, tt.body, code, a, tt.want)
			}
			refetched := map[string]bool{}
			for _, p := range tt.refetched {
				refetched[p] = true
			}
			before := map[string]int{}
			for _, q := range catalogRequests {
				before[q.path] = r.origin.count(q.path)
			}
			for _, q := range catalogRequests {
				resp, body := r.getLang(q)
				if want := q.path + " " + q.lang; body != want {
					t.Errorf("GET %s: body %q, want %q", q.path, body, want)
				}
				if isHit(resp) == refetched[q.path] {
					t.Errorf("GET %s (%s) after purge: hit = %v, want %v (Cache-Status %q)", q.path, q.lang, isHit(resp), !refetched[q.path], resp.Header.Get("Cache-Status"))
				}
			}
			for p, n := range before {
				want := 0
				if refetched[p] {
					for _, q := range catalogRequests {
						if q.path == p {
							want++ // one per variant
						}
					}
				}
				if got := r.origin.count(p) - n; got != want {
					t.Errorf("origin requests for %s after purge = %d, want %d", p, got, want)
				}
			}
			log := r.audit.String()
			line := ""
			for _, l := range strings.Split(log, "\n") {
				if strings.Contains(l, "msg=purge ") {
					if line != "" {
						t.Errorf("more than one audit line:\n%s", log)
					}
					line = l
				}
			}
			for _, want := range []string{"who=127.0.0.1:", "token=" + purge.Fingerprint(testToken), "kind=" + tt.kind, fmt.Sprintf("purged=%d", tt.want), tt.audit} {
				if !strings.Contains(line, want) {
					t.Errorf("audit line %q lacks %q", line, want)
				}
			}
			if strings.Contains(log, testToken) {
				t.Errorf("the token itself is in the log:\n%s", log)
			}
		})
	}
}

// TestPurgeRejectsBadRequestsAndPurgesNothing checks 401 for a missing or
// wrong token and 400, saying what is wrong, for a malformed body; in every
// case nothing is purged, even the valid part of a partly valid list.
func TestPurgeRejectsBadRequestsAndPurgesNothing(t *testing.T) {
	r := newRig(t, catalog)
	r.fillCatalog()
	tests := []struct {
		name, kind, body, token string
		code                    int
		msg                     string
	}{
		{"no token", "all", `{}`, "", 401, "bearer token"},
		{"wrong token", "all", `{}`, "wrong-token-0123456789abcdef", 401, "bearer token"},
		{"token with a suffix", "all", `{}`, testToken + "x", 401, "bearer token"},
		{"token prefix", "all", `{}`, testToken[:len(testToken)-1], 401, "bearer token"},
		{"bad JSON", "url", `{"urls":["http://cellar.test/a"`, testToken, 400, "bad JSON"},
		{"not JSON", "tag", `tags=product-4`, testToken, 400, "bad JSON"},
		{"unknown field", "url", `{"urls":["http://cellar.test/a"],"tags":["x"]}`, testToken, 400, `unknown field "tags"`},
		{"misspelled soft", "tag", `{"tags":["product-4"],"sfot":true}`, testToken, 400, `unknown field "sfot"`},
		{"wrong type", "tag", `{"tags":"product-4"}`, testToken, 400, `field "tags" must be []string`},
		{"trailing data", "tag", `{"tags":["product-4"]} {"tags":["blog"]}`, testToken, 400, "data after the object"},
		{"empty body", "url", ``, testToken, 400, "empty body"},
		{"empty list", "prefix", `{"prefixes":[]}`, testToken, 400, "the list is empty"},
		{"missing list", "tag", `{"soft":true}`, testToken, 400, "the list is empty"},
		{"relative url after a good one", "url", `{"urls":["http://cellar.test/a","/b"]}`, testToken, 400, `urls[1] "/b": must be an absolute http or https URL`},
		{"ftp url", "url", `{"urls":["ftp://cellar.test/a"]}`, testToken, 400, "absolute http or https"},
		{"relative prefix", "prefix", `{"prefixes":["/blog/"]}`, testToken, 400, "absolute http or https URL prefix"},
		{"empty tag", "tag", `{"tags":["product-4",""]}`, testToken, 400, "tags[1] is empty"},
		{"tag with a space", "tag", `{"tags":["product-4 shoes"]}`, testToken, 400, "white space"},
		{"every problem at once", "url", `{"urls":["a","b"]}`, testToken, 400, `urls[1] "b"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, a := r.purgeReq(tt.kind, tt.body, tt.token)
			if code != tt.code || !strings.Contains(a.Error, tt.msg) || a.Purged != 0 {
				t.Errorf("POST /purge/%s %s = %d %+v, want %d with %q", tt.kind, tt.body, code, a, tt.code, tt.msg)
			}
		})
	}
	if st := r.store.Stats(); st.DiskObjects != 8 {
		t.Errorf("%d objects stored after rejected purges, want all 8", st.DiskObjects)
	}
	for _, q := range catalogRequests {
		if resp, _ := r.getLang(q); !isHit(resp) {
			t.Errorf("GET %s: not a hit after rejected purges", q.path)
		}
	}
	// Only POST is routed.
	resp, err := r.admin.Client().Get(r.admin.URL + "/purge/all")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("GET /purge/all = %d, want 405", resp.StatusCode)
	}
}

// TestSoftPurgeServesStaleWhileOneRevalidation checks that a soft purge
// keeps the object for stale-while-revalidate (RFC 5861 §3): requests after
// it get the old body at once while exactly one revalidation runs, and the
// refreshed response then hits.
func TestSoftPurgeServesStaleWhileOneRevalidation(t *testing.T) {
	entered := make(chan struct{}, 1)
	release := make(chan struct{})
	var mu sync.Mutex // protects version
	version := 0
	r := newRig(t, func(w http.ResponseWriter, req *http.Request) {
		mu.Lock()
		version++
		v := version
		mu.Unlock()
		if v > 1 {
			entered <- struct{}{}
			<-release
		}
		w.Header().Set("Cache-Control", "max-age=3600, stale-while-revalidate=60")
		w.Header().Set("ETag", fmt.Sprintf(`"v%d"`, v))
		fmt.Fprintf(w, "v%d", v)
	})
	const key = "http://" + testHost + "/s"
	if _, body := r.get("/s"); body != "v1" {
		t.Fatalf("first GET: %q", body)
	}
	r.waitStored(key, func(*store.Object) bool { return true })
	if code, a := r.purgeReq("url", `{"urls":["`+key+`"],"soft":true}`, testToken); code != 200 || a.Purged != 1 {
		t.Fatalf("soft purge = %d %+v", code, a)
	}
	if o, err := r.store.Get(t.Context(), key); err != nil || !o.Meta.Invalid {
		t.Fatalf("after soft purge: object %+v, err %v; want it kept, Invalid", o, err)
	}
	for i := range 5 {
		resp, body := r.get("/s")
		if body != "v1" || !isHit(resp) || !strings.Contains(resp.Header.Get("Cache-Status"), "stale") {
			t.Errorf("GET %d after soft purge: %q, Cache-Status %q; want the stale v1", i, body, resp.Header.Get("Cache-Status"))
		}
		if i == 0 {
			<-entered // the one revalidation has reached the origin
		}
	}
	close(release)
	r.waitStored(key, func(o *store.Object) bool { return !o.Meta.Invalid })
	resp, body := r.get("/s")
	if body != "v2" || !isHit(resp) {
		t.Errorf("GET after revalidation: %q, Cache-Status %q; want a fresh hit on v2", body, resp.Header.Get("Cache-Status"))
	}
	if n := r.origin.count("/s"); n != 2 {
		t.Errorf("origin saw %d requests, want 2 (the fill and one revalidation)", n)
	}
}

// TestPurgeDuringFillWins starts a fill, purges its object while the origin
// is still answering, and checks that the response is delivered to its
// client but is not served as fresh afterwards.
func TestPurgeDuringFillWins(t *testing.T) {
	const key = "http://" + testHost + "/slow"
	tests := []struct {
		name         string
		afterHeaders bool // purge once the headers are out, else before the origin answers
		kind, body   string
		soft         bool
	}{
		{"url, while the body streams", true, "url", `{"urls":["` + key + `"]}`, false},
		{"tag, while the body streams", true, "tag", `{"tags":["slow"]}`, false},
		{"prefix, before the origin answers", false, "prefix", `{"prefixes":["http://cellar.test/"]}`, false},
		{"soft url, before the origin answers", false, "url", `{"urls":["` + key + `"],"soft":true}`, true},
		{"all, while the body streams", true, "all", `{}`, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			entered := make(chan struct{}, 2)
			release := make(chan struct{})
			var mu sync.Mutex // protects n
			n := 0
			r := newRig(t, func(w http.ResponseWriter, req *http.Request) {
				mu.Lock()
				n++
				first := n == 1
				mu.Unlock()
				w.Header().Set("Cache-Control", "max-age=3600")
				w.Header().Set("Surrogate-Key", "slow")
				if !first {
					fmt.Fprint(w, "second")
					return
				}
				if !tt.afterHeaders {
					entered <- struct{}{}
					<-release
				}
				w.Header().Set("Content-Length", "10")
				w.WriteHeader(200)
				fmt.Fprint(w, "first")
				w.(http.Flusher).Flush()
				if tt.afterHeaders {
					entered <- struct{}{}
					<-release
				}
				fmt.Fprint(w, "-body")
			})
			type result struct {
				body string
				err  error
			}
			done := make(chan result, 1)
			go func() {
				req, _ := http.NewRequest(http.MethodGet, r.front.URL+"/slow", nil)
				req.Host = testHost
				resp, err := r.front.Client().Do(req)
				if err != nil {
					done <- result{err: err}
					return
				}
				defer resp.Body.Close()
				var b strings.Builder
				_, err = fmt.Fprint(&b, readAll(resp))
				done <- result{body: b.String(), err: err}
			}()
			<-entered
			if code, a := r.purgeReq(tt.kind, tt.body, testToken); code != 200 {
				t.Fatalf("purge = %d %+v", code, a)
			}
			close(release)
			res := <-done
			if res.err != nil || res.body != "first-body" {
				t.Fatalf("the client of the fill got %q, %v; want the whole response", res.body, res.err)
			}
			r.waitStored(key, func(*store.Object) bool { return true })
			r.waitIdle()
			resp, body := r.get("/slow")
			if isHit(resp) && !strings.Contains(resp.Header.Get("Cache-Status"), "stale") {
				t.Errorf("GET after the purge: fresh hit %q (Cache-Status %q); the purge lost the race", body, resp.Header.Get("Cache-Status"))
			}
			if got := r.origin.count("/slow"); got != 2 {
				t.Errorf("origin saw %d requests, want 2: the purged response must be revalidated", got)
			}
			if body != "second" {
				t.Errorf("GET after the purge: %q, want the origin's new response", body)
			}
		})
	}
}

// TestRequestAfterPurgeDoesNotJoinTheFillInProgress purges an object while
// its fill is still streaming and checks that a request arriving after the
// purge is not collapsed onto that fill (whose response the purge removed)
// but gets the origin's new response, while the fill's own client still
// receives its whole response.
func TestRequestAfterPurgeDoesNotJoinTheFillInProgress(t *testing.T) {
	const key = "http://" + testHost + "/slow"
	entered := make(chan struct{}, 1)
	release := make(chan struct{})
	var mu sync.Mutex // protects n
	n := 0
	r := newRig(t, func(w http.ResponseWriter, req *http.Request) {
		mu.Lock()
		n++
		first := n == 1
		mu.Unlock()
		w.Header().Set("Cache-Control", "max-age=3600")
		if !first {
			fmt.Fprint(w, "second")
			return
		}
		w.Header().Set("Content-Length", "10")
		w.WriteHeader(200)
		fmt.Fprint(w, "first")
		w.(http.Flusher).Flush()
		entered <- struct{}{}
		select {
		case <-release:
		case <-req.Context().Done():
			return
		}
		fmt.Fprint(w, "-body")
	})
	released := false
	releaseOnce := func() {
		if !released {
			released = true
			close(release)
		}
	}
	defer releaseOnce()
	first := make(chan string, 1)
	go func() {
		_, body := r.get("/slow")
		first <- body
	}()
	<-entered
	if code, a := r.purgeReq("url", `{"urls":["`+key+`"]}`, testToken); code != 200 {
		t.Fatalf("purge = %d %+v", code, a)
	}
	second := make(chan string, 1)
	go func() {
		_, body := r.get("/slow")
		second <- body
	}()
	select {
	case body := <-second:
		if body != "second" {
			t.Errorf("request after the purge got %q, want the origin's new response", body)
		}
	case <-time.After(10 * time.Second):
		releaseOnce()
		t.Fatalf("request after the purge waited on the purged fill: got %q", <-second)
	}
	releaseOnce()
	if body := <-first; body != "first-body" {
		t.Errorf("the purged fill's own client got %q, want its whole response", body)
	}
	r.waitIdle()
	resp, body := r.get("/slow")
	if !isHit(resp) || body != "second" {
		t.Errorf("after both fills: %q (Cache-Status %q), want a hit of the new response", body, resp.Header.Get("Cache-Status"))
	}
	if got := r.origin.count("/slow"); got != 2 {
		t.Errorf("origin saw %d requests, want 2", got)
	}
}

func readAll(resp *http.Response) string {
	var b strings.Builder
	buf := make([]byte, 4096)
	for {
		n, err := resp.Body.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			return b.String()
		}
	}
}

// TestPurgeSurvivesRestart purges (hard by tag, soft by URL), restarts on
// the same data directory, and checks that neither object is served fresh.
func TestPurgeSurvivesRestart(t *testing.T) {
	r := newRig(t, catalog)
	r.fillCatalog()
	if code, a := r.purgeReq("tag", `{"tags":["product-4"]}`, testToken); code != 200 || a.Purged != 1 {
		t.Fatalf("tag purge = %d %+v", code, a)
	}
	if code, a := r.purgeReq("url", `{"urls":["http://cellar.test/b"],"soft":true}`, testToken); code != 200 || a.Purged != 1 {
		t.Fatalf("soft purge = %d %+v", code, a)
	}
	r.restart()
	if _, err := r.store.Get(t.Context(), "http://cellar.test/a"); err == nil {
		t.Errorf("/a is stored after restart; it was purged")
	}
	if o, err := r.store.Get(t.Context(), "http://cellar.test/b"); err != nil || !o.Meta.Invalid {
		t.Errorf("/b after restart: %v, err %v; want it kept, Invalid", o, err)
	}
	for _, p := range []string{"/a", "/b"} {
		if resp, _ := r.get(p); isHit(resp) {
			t.Errorf("GET %s after restart: hit; it was purged", p)
		}
		if n := r.origin.count(p); n != 2 {
			t.Errorf("origin saw %s %d times, want 2", p, n)
		}
	}
	if resp, _ := r.get("/blog/1"); !isHit(resp) {
		t.Errorf("GET /blog/1 after restart: miss; it was not purged")
	}
}

// TestPurgeMethod checks the PURGE method on the main listener: allowed
// from loopback (a real connection), 403 from other networks unless
// configured, and forwarded to the origin when no purge handler is set.
func TestPurgeMethod(t *testing.T) {
	r := newRig(t, catalog)
	r.fillCatalog()
	resp, body := r.do("PURGE", "/a", nil)
	if resp.StatusCode != 200 || !strings.Contains(body, `"purged":1`) {
		t.Fatalf("PURGE /a from loopback = %d %s", resp.StatusCode, body)
	}
	if resp, _ := r.get("/a"); isHit(resp) {
		t.Errorf("GET /a after PURGE: hit")
	}
	if resp, _ := r.get("/a?x=1"); !isHit(resp) {
		t.Errorf("GET /a?x=1 after PURGE /a: miss; another URL was purged")
	}
	if !strings.Contains(r.audit.String(), "kind=method") {
		t.Errorf("no audit line for PURGE:\n%s", r.audit.String())
	}

	// Soft-Purge: 1 marks the URL stale and keeps it; a bad value purges
	// nothing.
	resp, body = r.do("PURGE", "/blog/1", http.Header{purge.SoftPurgeField: {"yes"}})
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, purge.SoftPurgeField) {
		t.Errorf("PURGE with %s: yes = %d %s, want 400 naming the field", purge.SoftPurgeField, resp.StatusCode, body)
	}
	if resp, _ := r.get("/blog/1"); !isHit(resp) {
		t.Errorf("GET /blog/1 after a refused soft PURGE: miss")
	}
	resp, body = r.do("PURGE", "/blog/1", http.Header{purge.SoftPurgeField: {"1"}})
	if resp.StatusCode != 200 || !strings.Contains(body, `"purged":1`) {
		t.Fatalf("soft PURGE /blog/1 = %d %s", resp.StatusCode, body)
	}
	if obj, err := r.store.Get(t.Context(), "http://"+testHost+"/blog/1"); err != nil || !obj.Meta.Invalid {
		t.Errorf("after a soft PURGE the object must stay, stale: %v", err)
	}
	if !strings.Contains(r.audit.String(), "soft=true") {
		t.Errorf("no audit line for the soft PURGE:\n%s", r.audit.String())
	}

	for _, tt := range []struct {
		remote   string
		networks []netip.Prefix
		want     int
	}{
		{"203.0.113.5:4000", nil, http.StatusForbidden},
		{"[2001:db8::1]:4000", nil, http.StatusForbidden},
		{"10.0.0.1:4000", nil, http.StatusForbidden},
		{"garbage", nil, http.StatusForbidden},
		{"203.0.113.5:4000", []netip.Prefix{netip.MustParsePrefix("203.0.113.0/24")}, http.StatusOK},
		{"[::ffff:203.0.113.5]:4000", []netip.Prefix{netip.MustParsePrefix("203.0.113.0/24")}, http.StatusOK},
		{"127.0.0.1:4000", []netip.Prefix{netip.MustParsePrefix("203.0.113.0/24")}, http.StatusForbidden},
	} {
		t.Run(tt.remote, func(t *testing.T) {
			st, err := store.Open(store.Options{Dir: t.TempDir(), MemoryBytes: -1, DiskBytes: 16 << 20})
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			w, _ := st.Create(t.Context(), "http://cellar.test/b", cache.Meta{Status: 200}, store.CreateOptions{SizeHint: -1})
			w.Commit(t.Context())
			api, err := purge.New(st, purge.Options{Tokens: []string{testToken}, Networks: tt.networks, Logger: r.aopts.Logger})
			if err != nil {
				t.Fatal(err)
			}
			req := httptest.NewRequest("PURGE", "http://cellar.test/b", nil)
			req.RemoteAddr = tt.remote
			rec := httptest.NewRecorder()
			api.MethodHandler().ServeHTTP(rec, req)
			if rec.Code != tt.want {
				t.Errorf("PURGE from %s with networks %v = %d, want %d", tt.remote, tt.networks, rec.Code, tt.want)
			}
			_, err = st.Get(t.Context(), "http://cellar.test/b")
			if purged := err != nil; purged != (tt.want == http.StatusOK) {
				t.Errorf("object purged = %v after %d", purged, rec.Code)
			}
		})
	}

	// The disallowed case through the proxy itself: it routes PURGE to the
	// handler, which refuses.
	req := httptest.NewRequest("PURGE", "http://cellar.test/b", nil)
	req.RemoteAddr = "198.51.100.7:5555"
	rec := httptest.NewRecorder()
	r.proxy.ServeHTTP(rec, req)
	if rec.Code != http.StatusForbidden {
		t.Errorf("PURGE through the proxy from 198.51.100.7 = %d, want 403", rec.Code)
	}
	if resp, _ := r.get("/b"); !isHit(resp) {
		t.Errorf("GET /b after a refused PURGE: miss")
	}
}

// TestPurgeMethodForwardedWithoutHandler checks that PURGE is an ordinary
// unknown method, forwarded to the origin, when proxy.Options.Purge is nil.
func TestPurgeMethodForwardedWithoutHandler(t *testing.T) {
	var mu sync.Mutex // protects methods
	var methods []string
	r := newRig(t, func(w http.ResponseWriter, req *http.Request) {
		mu.Lock()
		methods = append(methods, req.Method)
		mu.Unlock()
		w.WriteHeader(204)
	}, func(r *rig) { r.noPurgeMethod = true })
	resp, _ := r.do("PURGE", "/x", nil)
	mu.Lock()
	defer mu.Unlock()
	if resp.StatusCode != 204 || len(methods) != 1 || methods[0] != "PURGE" {
		t.Errorf("PURGE without handler: %d, origin saw %v; want it forwarded", resp.StatusCode, methods)
	}
}

// TestSoftPurgeDuringRevalidationWins checks that a 304 for a conditional
// request that was in flight when a soft purge arrived does not make the
// stored response fresh again (RFC 9111 §4.3.4 freshening loses to the
// purge).
func TestSoftPurgeDuringRevalidationWins(t *testing.T) {
	entered := make(chan struct{}, 1)
	release := make(chan struct{})
	r := newRig(t, func(w http.ResponseWriter, req *http.Request) {
		w.Header().Set("Cache-Control", "max-age=0, must-revalidate")
		w.Header().Set("ETag", `"e1"`)
		if req.Header.Get("If-None-Match") == `"e1"` {
			entered <- struct{}{}
			<-release
			w.WriteHeader(http.StatusNotModified)
			return
		}
		fmt.Fprint(w, "body")
	})
	const key = "http://" + testHost + "/r"
	r.get("/r")
	r.waitStored(key, func(*store.Object) bool { return true })
	r.waitIdle()
	done := make(chan struct{})
	go func() {
		defer close(done)
		req, _ := http.NewRequest(http.MethodGet, r.front.URL+"/r", nil)
		req.Host = testHost
		if resp, err := r.front.Client().Do(req); err == nil {
			readAll(resp)
			resp.Body.Close()
		}
	}()
	<-entered
	if code, a := r.purgeReq("url", `{"urls":["`+key+`"],"soft":true}`, testToken); code != 200 || a.Purged != 1 {
		t.Fatalf("soft purge = %d %+v", code, a)
	}
	close(release)
	<-done
	r.waitIdle()
	if o, err := r.store.Get(t.Context(), key); err != nil || !o.Meta.Invalid {
		t.Errorf("after a 304 that raced a soft purge: %+v, %v; want the entry kept Invalid", o, err)
	}
}

// auditCount returns the number of audit lines ("purge", one per purge
// that a node applied) in r's log.
func (r *rig) auditCount() int {
	return strings.Count(r.audit.String(), "msg=purge ")
}

// auditLines returns r's audit lines.
func (r *rig) auditLines() []string {
	var lines []string
	for _, l := range strings.Split(r.audit.String(), "\n") {
		if strings.Contains(l, "msg=purge ") {
			lines = append(lines, l)
		}
	}
	return lines
}

// metricWith returns the sum of the named counter's series whose labels
// include every one of labels.
func (r *rig) metricWith(name string, labels map[string]string) float64 {
	r.t.Helper()
	mfs, err := r.reg.Gather()
	if err != nil {
		r.t.Fatal(err)
	}
	sum := 0.0
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	series:
		for _, m := range mf.GetMetric() {
			for k, v := range labels {
				found := false
				for _, lp := range m.GetLabel() {
					if lp.GetName() == k && lp.GetValue() == v {
						found = true
					}
				}
				if !found {
					continue series
				}
			}
			sum += m.GetCounter().GetValue()
		}
	}
	return sum
}

// closedURL returns the base URL of a loopback address on which nothing
// listens any more: connections to it are refused.
func closedURL(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u := "http://" + ln.Addr().String()
	ln.Close()
	return u
}

// checkPeers compares the peers of an answer with want: for each peer, its
// count (want >= 0) or a text its error must contain.
func checkPeers(t *testing.T, what string, got []peerAnswer, want []peerWant) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%s: answer lists %d peers %+v, want %d", what, len(got), got, len(want))
		return
	}
	for i, w := range want {
		g := got[i]
		switch {
		case g.Peer != w.peer:
			t.Errorf("%s: peers[%d] is %q, want %q (the order of Options.Peers)", what, i, g.Peer, w.peer)
		case w.err == "" && (g.Purged == nil || *g.Purged != w.purged || g.Error != ""):
			t.Errorf("%s: peer %s: %+v (purged %v), want purged %d", what, g.Peer, g, deref(g.Purged), w.purged)
		case w.err != "" && (!strings.Contains(g.Error, w.err) || g.Purged != nil):
			t.Errorf("%s: peer %s: error %q (purged %v), want an error with %q and no count", what, g.Peer, g.Error, deref(g.Purged), w.err)
		}
	}
}

type peerWant struct {
	peer   string
	purged int
	err    string // when not empty, the peer must have failed with it
}

func deref(p *int) any {
	if p == nil {
		return nil
	}
	return *p
}

// TestPurgeFansOutToEveryPeerOnce runs three nodes, each a whole cellar
// with the catalog stored: A lists B and C as peers, B lists A (a cycle).
// Purges posted to A reach every node once (the forwarded copies are not
// forwarded again), hard ones remove the objects and a soft one leaves
// them stale, so each node's proxy goes back to its origin; A's answer
// lists both peers with their counts. A purge posted to B reaches A but
// not C: A does not forward what B forwarded.
func TestPurgeFansOutToEveryPeerOnce(t *testing.T) {
	lnA, urlA := listenAdmin(t)
	lnB, urlB := listenAdmin(t)
	lnC, urlC := listenAdmin(t)
	a := newRig(t, catalog, withAdminListener(lnA), withPurge(func(o *purge.Options) { o.Peers = []string{urlB, urlC + "/"} }))
	b := newRig(t, catalog, withAdminListener(lnB), withPurge(func(o *purge.Options) { o.Peers = []string{urlA} }))
	c := newRig(t, catalog, withAdminListener(lnC))
	names := map[*rig]string{a: "A", b: "B", c: "C"}
	for _, n := range []*rig{a, b, c} {
		n.fillCatalog()
	}
	steps := []struct {
		name       string
		to         *rig
		kind, body string
		path       request // purged by the step
		kept       request // not purged by it
		want       int     // objects purged on each node reached (/v: its Vary marker and 2 variants)
		reached    []*rig
		peers      []string // the answer's peers, in order
		soft       bool
	}{
		{"tag", a, "tag", `{"tags":["product-4"]}`, request{"/a", ""}, request{"/a?x=1", ""}, 1, []*rig{a, b, c}, []string{urlB, urlC + "/"}, false},
		{"url with variants, not normalized", a, "url", `{"urls":["http://CELLAR.test:80/v"]}`, request{"/v", "fr"}, request{"/b", ""}, 3, []*rig{a, b, c}, []string{urlB, urlC + "/"}, false},
		{"soft url", a, "url", `{"urls":["http://cellar.test/blog/1"],"soft":true}`, request{"/blog/1", ""}, request{"/blog/2", ""}, 1, []*rig{a, b, c}, []string{urlB, urlC + "/"}, true},
		{"tag posted to B", b, "tag", `{"tags":["product-42"]}`, request{"/b", ""}, request{"/blog/2", ""}, 1, []*rig{b, a}, []string{urlA}, false},
	}
	applied := map[*rig]int{}
	for _, st := range steps {
		code, ans := st.to.purgeReq(st.kind, st.body, testToken)
		what := fmt.Sprintf("%s: POST %s/purge/%s %s", st.name, names[st.to], st.kind, st.body)
		if code != http.StatusOK || ans.Purged != st.want || ans.Error != "" {
			t.Fatalf("%s = %d %+v, want 200 purged %d", what, code, ans, st.want)
		}
		var want []peerWant
		for _, p := range st.peers {
			want = append(want, peerWant{peer: p, purged: st.want})
		}
		checkPeers(t, what, ans.Peers, want)
		for _, n := range st.reached {
			applied[n]++
		}
		for _, n := range []*rig{a, b, c} {
			reached := slices.Contains(st.reached, n)
			if got := n.auditCount(); got != applied[n] {
				t.Errorf("%s: node %s applied %d purges in all, want %d:\n%s", what, names[n], got, applied[n], n.audit.String())
			}
			if got := n.metricWith("cellar_purge_requests_total", map[string]string{"result": "ok"}); got != float64(applied[n]) {
				t.Errorf("%s: node %s counts %v purge requests, want %d", what, names[n], got, applied[n])
			}
			if reached {
				lines := n.auditLines()
				line := lines[len(lines)-1]
				fwd := n != st.to
				for _, w := range []string{"kind=" + st.kind, fmt.Sprintf("purged=%d", st.want), fmt.Sprintf("forwarded=%v", fwd), fmt.Sprintf("soft=%v", st.soft)} {
					if !strings.Contains(line, w) {
						t.Errorf("%s: node %s: audit line %q lacks %q", what, names[n], line, w)
					}
				}
				if !fwd && !strings.Contains(line, fmt.Sprintf("peers_ok=%d peers_failed=0", len(st.peers))) {
					t.Errorf("%s: node %s: audit line %q does not count its %d peers", what, names[n], line, len(st.peers))
				}
			}
			key := "http://" + testHost + st.path.path
			if st.soft && reached {
				if o, err := n.store.Get(t.Context(), key); err != nil || !o.Meta.Invalid {
					t.Errorf("%s: node %s: %s is %+v, %v; want it kept, Invalid", what, names[n], key, o, err)
				}
			}
			before := n.origin.count(st.path.path)
			if resp, _ := n.getLang(st.path); isHit(resp) == reached {
				t.Errorf("%s: node %s: GET %s hit = %v, want %v (Cache-Status %q)", what, names[n], st.path.path, isHit(resp), !reached, resp.Header.Get("Cache-Status"))
			}
			if got, want := n.origin.count(st.path.path)-before, boolInt(reached); got != want {
				t.Errorf("%s: node %s: origin saw %s %d more times, want %d", what, names[n], st.path.path, got, want)
			}
			if resp, _ := n.getLang(st.kept); !isHit(resp) {
				t.Errorf("%s: node %s: GET %s is not a hit; the purge went too far", what, names[n], st.kept.path)
			}
			n.waitIdle()
		}
	}
	for n, want := range map[*rig]float64{a: 6, b: 1, c: 0} {
		if got := n.metricWith("cellar_purge_peer_forwards_total", map[string]string{"result": "ok"}); got != want {
			t.Errorf("node %s forwarded %v purges, want %v", names[n], got, want)
		}
	}
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// TestPurgeReportsFailedPeers gives A a peer that is down, one that
// refuses A's token and one that works: A purges its own objects, the
// working peer purges, and A answers 502 with its count and every peer's
// result, logs each failure with the peer's URL and counts it. The CLI
// prints the peers and fails.
func TestPurgeReportsFailedPeers(t *testing.T) {
	down := closedURL(t)
	b := newRig(t, catalog, withPurge(func(o *purge.Options) { o.Tokens = []string{"another-token-0123456789abcdef"} }))
	c := newRig(t, catalog)
	a := newRig(t, catalog, withPurge(func(o *purge.Options) { o.Peers = []string{down, b.admin.URL, c.admin.URL} }))
	for _, n := range []*rig{a, b, c} {
		n.fillCatalog()
	}
	code, ans := a.purgeReq("tag", `{"tags":["product-4"]}`, testToken)
	if code != http.StatusBadGateway || ans.Purged != 1 || !strings.Contains(ans.Error, "2 of 3 peers failed") {
		t.Fatalf("purge with failing peers = %d %+v, want 502, purged 1 and an error saying 2 of 3 peers failed", code, ans)
	}
	checkPeers(t, "purge with failing peers", ans.Peers, []peerWant{
		{peer: down, err: "connection refused"},
		{peer: b.admin.URL, err: "401 Unauthorized: missing or wrong bearer token"},
		{peer: c.admin.URL, purged: 1},
	})
	for n, purged := range map[*rig]bool{a: true, b: false, c: true} {
		if resp, _ := n.get("/a"); isHit(resp) == purged {
			t.Errorf("GET /a on %s: hit = %v, want %v", n.admin.URL, isHit(resp), !purged)
		}
	}
	lines := a.auditLines()
	if len(lines) != 1 || !strings.Contains(lines[0], "peers_ok=1 peers_failed=2") {
		t.Errorf("A's audit lines %q, want one counting 1 peer reached and 2 failed", lines)
	}
	for _, p := range []string{down, b.admin.URL} {
		found := false
		for _, l := range strings.Split(a.audit.String(), "\n") {
			found = found || strings.Contains(l, `msg="purge not forwarded"`) && strings.Contains(l, " peer="+p+" ")
		}
		if !found {
			t.Errorf("A's log has no failure line for %s:\n%s", p, a.audit.String())
		}
	}
	for _, m := range []struct{ peer, result string }{{down, "unreachable"}, {b.admin.URL, "status"}, {c.admin.URL, "ok"}} {
		if got := a.metricWith("cellar_purge_peer_forwards_total", map[string]string{"peer": m.peer, "result": m.result}); got != 1 {
			t.Errorf("forwards to %s with result %s = %v, want 1", m.peer, m.result, got)
		}
	}
	if got := a.metricWith("cellar_purge_requests_total", map[string]string{"kind": "tag", "result": "incomplete"}); got != 1 {
		t.Errorf("incomplete tag purges = %v, want 1", got)
	}

	// The command-line client prints every peer's result and fails.
	var stdout, stderr bytes.Buffer
	err := purge.RunCLI(t.Context(), []string{"tag", "product-42", "-admin", a.admin.URL, "-token", testToken}, &stdout, &stderr, t.TempDir())
	if err == nil || !strings.Contains(err.Error(), "502") || !strings.Contains(err.Error(), "incomplete") {
		t.Errorf("RunCLI with failing peers: error %v, want a 502 saying the purge is incomplete", err)
	}
	out := strings.Split(stdout.String(), "\n")
	want := []string{"purged 1", "peer " + down + ": error: ", "peer " + b.admin.URL + ": error: answered 401", "peer " + c.admin.URL + ": purged 1", ""}
	if len(out) != len(want) {
		t.Fatalf("RunCLI printed %q, want lines starting %q", stdout.String(), want)
	}
	for i := range want {
		if !strings.HasPrefix(out[i], want[i]) {
			t.Errorf("RunCLI line %d = %q, want it to start with %q", i, out[i], want[i])
		}
	}
}

// TestPurgeMethodFansOut checks that the PURGE method on A's main listener
// is forwarded to A's peer as a URL purge, soft when Soft-Purge: 1, and
// not when the request says it was forwarded already; and that the CLI
// prints the peers of a complete purge.
func TestPurgeMethodFansOut(t *testing.T) {
	b := newRig(t, catalog)
	a := newRig(t, catalog, withPurge(func(o *purge.Options) { o.Peers = []string{b.admin.URL} }))
	a.fillCatalog()
	b.fillCatalog()
	decode := func(what, body string) answer {
		var ans answer
		if err := json.Unmarshal([]byte(body), &ans); err != nil {
			t.Fatalf("%s: answer %q: %v", what, body, err)
		}
		return ans
	}

	resp, body := a.do("PURGE", "/a", nil)
	ans := decode("PURGE /a", body)
	if resp.StatusCode != http.StatusOK || ans.Purged != 1 {
		t.Fatalf("PURGE /a on A = %d %s, want 200 purged 1", resp.StatusCode, body)
	}
	checkPeers(t, "PURGE /a", ans.Peers, []peerWant{{peer: b.admin.URL, purged: 1}})
	if resp, _ := b.get("/a"); isHit(resp) {
		t.Errorf("GET /a on B after PURGE on A: hit")
	}
	if resp, _ := b.get("/a?x=1"); !isHit(resp) {
		t.Errorf("GET /a?x=1 on B after PURGE /a on A: miss; another URL was purged")
	}
	if l := b.auditLines(); len(l) != 1 || !strings.Contains(l[0], "kind=url") || !strings.Contains(l[0], "forwarded=true") {
		t.Errorf("B's audit lines %q, want one forwarded url purge", l)
	}
	if l := a.auditLines(); len(l) != 1 || !strings.Contains(l[0], "kind=method") || !strings.Contains(l[0], "peers_ok=1") {
		t.Errorf("A's audit lines %q, want one method purge with its peer", l)
	}

	resp, body = a.do("PURGE", "/blog/1", http.Header{purge.SoftPurgeField: {"1"}})
	ans = decode("soft PURGE", body)
	if resp.StatusCode != http.StatusOK || ans.Purged != 1 {
		t.Fatalf("soft PURGE /blog/1 on A = %d %s", resp.StatusCode, body)
	}
	checkPeers(t, "soft PURGE /blog/1", ans.Peers, []peerWant{{peer: b.admin.URL, purged: 1}})
	for _, n := range []*rig{a, b} {
		if o, err := n.store.Get(t.Context(), "http://"+testHost+"/blog/1"); err != nil || !o.Meta.Invalid {
			t.Errorf("after a soft PURGE on A, /blog/1 on %s is %+v, %v; want it kept, Invalid", n.admin.URL, o, err)
		}
	}

	// A PURGE that says it was forwarded is not forwarded again.
	resp, body = a.do("PURGE", "/b", http.Header{purge.ForwardedField: {"1"}})
	if ans := decode("forwarded PURGE", body); resp.StatusCode != http.StatusOK || ans.Purged != 1 || ans.Peers != nil {
		t.Errorf("PURGE /b with %s: 1 = %d %s, want 200 purged 1 and no peers", purge.ForwardedField, resp.StatusCode, body)
	}
	if resp, _ := b.get("/b"); !isHit(resp) {
		t.Errorf("GET /b on B: miss; a PURGE marked as forwarded was forwarded")
	}

	var stdout, stderr bytes.Buffer
	err := purge.RunCLI(t.Context(), []string{"prefix", "http://cellar.test/blog/", "-admin", a.admin.URL, "-token", testToken}, &stdout, &stderr, t.TempDir())
	if want := "purged 2\npeer " + b.admin.URL + ": purged 2\n"; err != nil || stdout.String() != want {
		t.Errorf("RunCLI = %q, %v; want %q", stdout.String(), err, want)
	}
}

// TestPurgePeerThatNeverAnswersTimesOut gives A a peer that accepts the
// forwarded purge and never answers: A answers once PeerTimeout has
// passed, with 502 and the timeout, and its working peer is purged.
func TestPurgePeerThatNeverAnswersTimesOut(t *testing.T) {
	const timeout = 300 * time.Millisecond
	block := make(chan struct{})
	var entered atomic.Int32
	hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		entered.Add(1)
		<-block
	}))
	t.Cleanup(hang.Close)              // runs last: the handler has returned
	t.Cleanup(func() { close(block) }) // after the rigs stop
	c := newRig(t, catalog)
	a := newRig(t, catalog, withPurge(func(o *purge.Options) {
		o.Peers = []string{hang.URL, c.admin.URL}
		o.PeerTimeout = timeout
	}))
	a.fillCatalog()
	c.fillCatalog()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	start := time.Now()
	code, ans := a.purgeReqCtx(ctx, "url", `{"urls":["http://cellar.test/a"]}`, testToken)
	elapsed := time.Since(start)
	if code != http.StatusBadGateway || ans.Purged != 1 {
		t.Errorf("purge with a silent peer = %d %+v, want 502 purged 1", code, ans)
	}
	if elapsed < timeout || elapsed > timeout+5*time.Second {
		t.Errorf("A answered after %v, want PeerTimeout %v plus at most 5s (a loaded machine)", elapsed, timeout)
	}
	checkPeers(t, "purge with a silent peer", ans.Peers, []peerWant{{peer: hang.URL, err: "timeout"}, {peer: c.admin.URL, purged: 1}})
	if n := entered.Load(); n != 1 {
		t.Errorf("the silent peer got %d requests, want 1", n)
	}
	for _, n := range []*rig{a, c} {
		if resp, _ := n.get("/a"); isHit(resp) {
			t.Errorf("GET /a on %s: hit after the purge", n.admin.URL)
		}
	}
	if got := a.metricWith("cellar_purge_peer_forwards_total", map[string]string{"peer": hang.URL, "result": "timeout"}); got != 1 {
		t.Errorf("timeouts counted for the silent peer = %v, want 1", got)
	}
}

// TestOptionsRejectBadPeers checks that Validate reports every bad peer
// setting at once, and the defaults of the peer options.
func TestOptionsRejectBadPeers(t *testing.T) {
	opts := purge.Options{
		Tokens: []string{testToken},
		Peers: []string{
			"http://10.0.0.2:8081",
			"10.0.0.3:8081",
			"ftp://10.0.0.4",
			"http://",
			"http://10.0.0.5:8081/?x=1",
			"http://10.0.0.6:8081/#top",
			"http://user:pw@10.0.0.7:8081",
			"https://10.0.0.8:8081/cellar",
			"http://10.0.0.2:8081/",
			"/purge",
			"http://10.0.0.9:http",
		},
		PeerToken:   "short",
		PeerTimeout: -time.Second,
	}
	opts.EnsureDefaults()
	err := opts.Validate()
	if err == nil {
		t.Fatal("Validate accepted bad peers")
	}
	for _, want := range []string{
		`Peers[1] "10.0.0.3:8081" is invalid: unparsable`,
		`Peers[2] "ftp://10.0.0.4" is invalid: scheme is not http or https`,
		`Peers[3] "http://" is invalid: no host`,
		`Peers[4] "http://10.0.0.5:8081/?x=1" is invalid: has a query`,
		`Peers[5] "http://10.0.0.6:8081/#top" is invalid: has a fragment`,
		`Peers[6] "http://user:pw@10.0.0.7:8081" is invalid: has user information`,
		`Peers[8] "http://10.0.0.2:8081/" is invalid: repeats Peers[0]`,
		`Peers[9] "/purge" is invalid: scheme is not http or https`,
		`Peers[10] "http://10.0.0.9:http" is invalid: unparsable`,
		"e.g. http://10.0.0.2:8081",
		"PeerToken (fingerprint " + purge.Fingerprint("short") + ") is invalid",
		"PeerTimeout -1s is invalid",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Validate error lacks %q:\n%v", want, err)
		}
	}
	for _, good := range []string{"Peers[0]", "Peers[7]"} {
		if strings.Contains(err.Error(), good+" ") {
			t.Errorf("Validate rejects the good %s:\n%v", good, err)
		}
	}
	if _, err := purge.New(nil, opts); err == nil {
		t.Error("New accepted bad peers")
	}

	ok := purge.Options{Tokens: []string{testToken, "second-token-0123456789abcdef"}, Peers: []string{"http://10.0.0.2:8081", "https://[::1]:8443/cellar/"}}
	ok.EnsureDefaults()
	if err := ok.Validate(); err != nil {
		t.Errorf("Validate rejected good peers: %v", err)
	}
	if ok.PeerToken != testToken || ok.PeerTimeout != 5*time.Second {
		t.Errorf("defaults: PeerToken fingerprint %s, PeerTimeout %v; want the first token's and 5s", purge.Fingerprint(ok.PeerToken), ok.PeerTimeout)
	}
	if ok.Client != nil {
		t.Errorf("EnsureDefaults set Client %p; nil means the API's own client", ok.Client)
	}
}

// TestPurgeFanOutOutlivesTheClient hangs up on A while its purge waits on
// a peer: the forward still completes (the fan-out's context is not the
// client's), and the peer sees no cancellation.
func TestPurgeFanOutOutlivesTheClient(t *testing.T) {
	entered := make(chan struct{}, 1)
	release := make(chan struct{})
	var cancelled atomic.Bool
	gate := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		entered <- struct{}{}
		select {
		case <-release:
		case <-r.Context().Done():
			cancelled.Store(true)
			return
		}
		io.WriteString(w, `{"purged":7}`)
	}))
	t.Cleanup(gate.Close)
	releaseOnce := sync.OnceFunc(func() { close(release) })
	t.Cleanup(releaseOnce)
	a := newRig(t, catalog, withPurge(func(o *purge.Options) { o.Peers = []string{gate.URL} }))
	a.fillCatalog()
	// A's admin API behind a wrapper that says when the server has seen
	// the client hang up (the request's context is cancelled).
	hungUp := make(chan struct{})
	admin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		stop := context.AfterFunc(r.Context(), func() { close(hungUp) })
		defer stop()
		a.api.Handler().ServeHTTP(w, r)
	}))
	t.Cleanup(admin.Close)

	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, admin.URL+"/purge/tag", strings.NewReader(`{"tags":["product-4"]}`))
		req.Header.Set("Authorization", "Bearer "+testToken)
		resp, err := admin.Client().Do(req)
		if err == nil {
			resp.Body.Close()
		}
		done <- err
	}()
	select {
	case <-entered:
	case <-time.After(10 * time.Second):
		t.Fatal("the purge did not reach the peer in 10s")
	}
	cancel() // the client hangs up
	if err := <-done; err == nil {
		t.Fatal("the client's request succeeded; it should have been cancelled")
	}
	select {
	case <-hungUp:
	case <-time.After(10 * time.Second):
		t.Fatal("A's server did not notice the client hanging up in 10s")
	}
	releaseOnce()
	deadline := time.Now().Add(5 * time.Second)
	for a.auditCount() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no audit line 5s after the peer answered")
		}
		time.Sleep(time.Millisecond)
	}
	if got := a.metricWith("cellar_purge_peer_forwards_total", map[string]string{"result": "ok"}); got != 1 || cancelled.Load() {
		t.Errorf("after the client hung up: %v forwards ok, peer saw a cancellation: %v; want the forward completed", got, cancelled.Load())
	}
	if l := a.auditLines(); len(l) != 1 || !strings.Contains(l[0], "peers_ok=1 peers_failed=0") {
		t.Errorf("A's audit lines %q, want one with its peer reached", l)
	}
}
