package dashboard

import (
	"fmt"
	"hash/maphash"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
)

// TestTopURLsKeepTheHeavyHitters sends a skewed stream through a small
// summary: the URLs requested most are on top in order, every count is at
// least the true one (space-saving never undercounts a URL it holds), and
// the summary never holds more than its bound.
func TestTopURLsKeepTheHeavyHitters(t *testing.T) {
	tr := NewTracker(20, 5)
	truth := map[string]uint64{}
	send := func(path string) {
		tr.Request(httptest.NewRequest("GET", "http://example.com"+path, nil), 200, "")
		truth["example.com"+path]++
	}
	// Three heavy URLs among a churn of 2000 cold ones, in a random
	// order (a fixed pattern could alias with the sampling).
	rnd := rand.New(rand.NewPCG(1, 2))
	for range 20000 {
		switch x := rnd.Float64(); {
		case x < 0.25:
			send("/heavy/a")
		case x < 0.375:
			send("/heavy/b")
		case x < 0.4375:
			send("/heavy/c")
		default:
			send(fmt.Sprintf("/cold/%d", rnd.IntN(2000)))
		}
	}
	top := tr.Top(3)
	want := []string{"example.com/heavy/a", "example.com/heavy/b", "example.com/heavy/c"}
	if len(top) != 3 {
		t.Fatalf("Top(3) = %v", top)
	}
	for i, u := range want {
		if top[i].URL != u {
			t.Errorf("Top(3)[%d] = %s, want %s (all: %v)", i, top[i].URL, u, top)
		}
	}
	for _, c := range top {
		if n := truth[c.URL]; c.Requests < n*9/10 || c.Requests > n*11/10+100 {
			t.Errorf("%s counted %d for %d requests", c.URL, c.Requests, n)
		}
	}
	if all := tr.Top(100); len(all) != 20 {
		t.Errorf("the summary holds %d URLs, want its bound 20", len(all))
	}
}

// TestSpaceSavingBounds checks the summary itself (no sampling): a URL it
// holds has a count at least its true one and at most that plus its
// error, and a URL requested more than the stream's length over the
// summary's size is always held.
func TestSpaceSavingBounds(t *testing.T) {
	tr := NewTracker(16, 1)
	truth := map[string]uint64{}
	rnd := rand.New(rand.NewPCG(3, 4))
	const n = 50000
	for range n {
		u := fmt.Sprintf("u%d", rnd.IntN(300))
		if rnd.IntN(5) == 0 {
			u = fmt.Sprintf("hot%d", rnd.IntN(3))
		}
		truth[u] += topSample
		tr.count([]byte(u))
	}
	if len(tr.top) != 16 || len(tr.least) != 16 {
		t.Fatalf("summary of %d/%d URLs, want 16", len(tr.top), len(tr.least))
	}
	for i, c := range tr.least {
		if tr.held(string(c.url)) != c || c.at != i {
			t.Fatalf("heap entry %d (%s) is not indexed", i, c.url)
		}
		if i > 0 && tr.least[(i-1)/2].count > c.count {
			t.Fatalf("heap order broken at %d", i)
		}
		if v := truth[string(c.url)]; c.count < v || c.count-c.err > v {
			t.Errorf("%s: count %d (error %d), true %d", c.url, c.count, c.err, v)
		}
	}
	for u, v := range truth {
		if v > n*topSample/16 && tr.held(u) == nil {
			t.Errorf("%s (%d of %d) is not in the summary", u, v, n*topSample)
		}
	}
}

// TestRecentErrors keeps the last 5xx responses, newest first.
func TestRecentErrors(t *testing.T) {
	tr := NewTracker(10, 2)
	for i := range 3 {
		tr.Request(httptest.NewRequest("GET", fmt.Sprintf("http://example.com/e/%d", i), nil), 502, "origin-unreachable")
	}
	tr.Request(httptest.NewRequest("GET", "http://example.com/ok", nil), 200, "")
	errs, _ := tr.Recent()
	if len(errs) != 2 || errs[0].URL != "example.com/e/2" || errs[1].URL != "example.com/e/1" || errs[0].Status != 502 {
		t.Errorf("Recent errors = %+v, want /e/2 then /e/1", errs)
	}
}

// BenchmarkTrackerRequest is a hit's cost in the tracker with a hot set
// larger than the summary (every sampled request replaces a URL).
func BenchmarkTrackerRequest(b *testing.B) {
	tr := NewTracker(200, 20)
	rs := make([]*http.Request, 1000)
	for i := range rs {
		rs[i] = httptest.NewRequest("GET", fmt.Sprintf("http://example.com/1k/%d", i), nil)
	}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		tr.Request(rs[i%len(rs)], 200, "")
	}
}

// A hot set of 1000 URLs, five times what the summary holds (as cellar
// serve's Tracker), churns through it: a URL that comes back takes the
// string kept from its last time, so counting a request allocates nothing
// in steady state (a memory hit allocates nothing of its own; docs/DESIGN.md,
// the tail of small hits).
func TestRequestOfAHotSetAllocatesNothing(t *testing.T) {
	tr := NewTracker(200, 20)
	reqs := make([]*http.Request, 1000)
	for i := range reqs {
		reqs[i] = httptest.NewRequest("GET", fmt.Sprintf("http://127.0.0.1:35080/1k/%d", i), nil)
	}
	i := 0
	send := func() {
		tr.Request(reqs[i%len(reqs)], 200, "")
		i += 7 // not a multiple of the sampling
	}
	for range 50_000 {
		send()
	}
	const n = 20_000
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range n {
		send()
	}
	runtime.ReadMemStats(&after)
	if per := float64(after.Mallocs-before.Mallocs) / n; per > 0.001 {
		t.Errorf("%.3f allocations per request, want 0", per)
	}
	if all := tr.Top(1000); len(all) != 200 {
		t.Errorf("the summary holds %d URLs, want its bound 200", len(all))
	}
}

// TestLongURLsAreCounted: a URL longer than an entry's own buffer is kept
// whole, through churn.
func TestLongURLsAreCounted(t *testing.T) {
	tr := NewTracker(2, 1)
	long := "example.com/" + strings.Repeat("x", 2*maxKeptURL)
	for i := range 400 {
		tr.count([]byte(long))
		if i%2 == 0 {
			tr.count(fmt.Appendf(nil, "example.com/cold/%d", i))
		}
	}
	top := tr.Top(1)
	if len(top) != 1 || top[0].URL != long || top[0].Requests < 400*topSample {
		t.Errorf("Top(1) = %.40v, want the long URL counted %d times", top, 400*topSample)
	}
}

// held returns u's entry in the summary, or nil. Call with t.mu held.
func (t *Tracker) held(u string) *urlCount {
	if c := t.top[maphash.String(t.seed, u)]; c != nil && string(c.url) == u {
		return c
	}
	return nil
}
