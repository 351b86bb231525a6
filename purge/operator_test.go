package purge_test

import (
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/cellar-cache/cellar/cache"
)

// Purges key URLs as the proxy keys requests (cache.Options.Key), so that
// any spelling of a URL purges the one object it is stored as.
func TestPurgesUseTheConfiguredCacheKey(t *testing.T) {
	r := newRig(t, func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Cache-Control", "max-age=600")
		w.Write([]byte("x"))
	}, func(r *rig) {
		r.copts.Key = cache.KeyOptions{Query: cache.QuerySort, IgnoreParams: []string{"utm_*"}}
	})
	r.get("/p?b=2&a=1&utm_source=x")
	r.get("/p?a=1&b=2")
	if n := r.origin.count("/p?b=2&a=1&utm_source=x"); n != 1 || r.origin.count("/p?a=1&b=2") != 0 {
		t.Fatalf("origin fetches %d, want one for both spellings", n)
	}
	code, a := r.purgeReq("url", `{"urls": ["http://cellar.test/p?utm_medium=y&a=1&b=2"]}`, testToken)
	if code != 200 || a.Purged != 1 {
		t.Fatalf("purge/url = %d %+v, want 1 purged", code, a)
	}
	r.get("/p?a=1&b=2")
	if n := r.origin.count("/p?a=1&b=2"); n != 1 {
		t.Errorf("after the purge: %d fetches, want 1", n)
	}
	// The PURGE method keys its own URL the same way.
	resp, _ := r.do("PURGE", "/p?b=2&utm_x=1&a=1", nil)
	if resp.StatusCode != 200 {
		t.Fatalf("PURGE = %d", resp.StatusCode)
	}
	r.get("/p?a=1&b=2")
	if n := r.origin.count("/p?a=1&b=2"); n != 2 {
		t.Errorf("after PURGE: %d fetches, want 2", n)
	}
}

func TestBanByRegularExpression(t *testing.T) {
	var sawINM atomic.Bool
	r := newRig(t, func(w http.ResponseWriter, req *http.Request) {
		w.Header().Set("Cache-Control", "max-age=600")
		w.Header().Set("ETag", `"v1"`)
		if req.Header.Get("If-None-Match") == `"v1"` {
			sawINM.Store(true)
			w.WriteHeader(http.StatusNotModified)
			return
		}
		w.Write([]byte("x"))
	})
	for _, p := range []string{"/img/a.png", "/img/b.png", "/img/c.jpg", "/page"} {
		r.get(p)
	}
	code, a := r.purgeReq("regex", `{"patterns": ["^http://cellar\\.test/img/.*\\.png$"]}`, testToken)
	if code != 200 || a.Error != "" {
		t.Fatalf("purge/regex = %d %+v", code, a)
	}
	for _, p := range []string{"/img/a.png", "/img/b.png", "/img/c.jpg", "/page"} {
		r.get(p)
	}
	for p, want := range map[string]int{"/img/a.png": 2, "/img/b.png": 2, "/img/c.jpg": 1, "/page": 1} {
		if n := r.origin.count(p); n != want {
			t.Errorf("%s: %d origin fetches, want %d", p, n, want)
		}
	}
	// Soft: the object stays, and is revalidated.
	code, _ = r.purgeReq("regex", `{"patterns": ["/page$"], "soft": true}`, testToken)
	if code != 200 {
		t.Fatalf("soft purge/regex = %d", code)
	}
	resp, _ := r.get("/page")
	if n := r.origin.count("/page"); n != 2 || !sawINM.Load() || resp.StatusCode != 200 {
		t.Errorf("after a soft ban: %d fetches (If-None-Match %v), status %d; want one revalidation", n, sawINM.Load(), resp.StatusCode)
	}
	// Durable across a restart, whether or not the sweep has run.
	code, _ = r.purgeReq("regex", `{"patterns": ["c\\.jpg"]}`, testToken)
	if code != 200 {
		t.Fatalf("purge/regex = %d", code)
	}
	if bs := r.store.BanStats(); bs.Added != 3 || bs.Lazy+bs.Swept < 3 {
		t.Errorf("BanStats = %+v: want 3 bans, at least 3 objects banned", bs)
	}
	r.restart()
	r.get("/img/c.jpg")
	if n := r.origin.count("/img/c.jpg"); n != 2 {
		t.Errorf("after a ban and a restart: %d fetches of c.jpg, want 2", n)
	}
	// A bad pattern is a 400 that names it, and bans nothing.
	code, a = r.purgeReq("regex", `{"patterns": ["ok", "(unclosed"]}`, testToken)
	if code != 400 || !strings.Contains(a.Error, `patterns[1] "(unclosed"`) {
		t.Errorf("bad pattern: %d %q", code, a.Error)
	}
	if got := r.metricWith("cellar_purge_requests_total", map[string]string{"kind": "regex", "result": "bad_request"}); got != 1 {
		t.Errorf("bad regex purges counted: %v, want 1", got)
	}

}
