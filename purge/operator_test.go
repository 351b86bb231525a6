package purge_test

import (
	"net/http"
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
