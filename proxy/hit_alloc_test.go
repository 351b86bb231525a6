package proxy

import (
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/cellar-cache/cellar/internal/accesslog"
)

// TestHitAllocations holds a memory hit, access log on, to a small fixed
// number of allocations in cellar's handler (net/http's own, for the
// response header map and its writing, are not counted here).
func TestHitAllocations(t *testing.T) {
	if testing.Short() {
		t.Skip("allocation count")
	}
	body := make([]byte, 1<<10)
	on := true
	access := accesslog.New(io.Discard, accesslog.Options{})
	defer access.Close()
	r := newRig(t, func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Cache-Control", "max-age=3600")
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Write(body)
	}, withProxyOptions(func(o *Options) { o.AccessLog, o.AccessLogOutput = &on, access }))
	r.server.now = time.Now
	r.get("/obj")
	r.waitIdle()
	if resp, _ := r.get("/obj"); !isHit(resp.Header.Get("Cache-Status")) {
		t.Fatalf("not a hit: %q", resp.Header.Get("Cache-Status"))
	}
	req := httptest.NewRequest(http.MethodGet, "http://"+testHost+"/obj", nil)
	req.RemoteAddr = "127.0.0.1:1234"
	w := &discardWriter{h: http.Header{}}
	n := testing.AllocsPerRun(200, func() {
		clear(w.h)
		r.server.ServeHTTP(w, req)
	})
	t.Logf("%.1f allocations per hit", n)
	if n > 2 {
		t.Errorf("%.1f allocations per memory hit, want at most 2 (the cache key, the coding counter)", n)
	}
}
