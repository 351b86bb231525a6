package proxy

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/cellar-cache/cellar/cache"
)

// TestPreparedHitFollowsTheServingConfiguration checks that the header a
// hit sends is the serving server's, when two servers (a config reload's
// old and new generations) answer from one store: the header prepared and
// kept with the object by one is not sent by the other, whose policy
// exposes the purge tags and whose Via names another proxy.
func TestPreparedHitFollowsTheServingConfiguration(t *testing.T) {
	r := newRig(t, reply(200, "body", "Cache-Control: max-age=3600", "Surrogate-Key: t1"))
	r.sget("/obj")
	r.waitIdle()
	copts := r.copts
	copts.ExposeTags = true
	p, err := cache.New(copts)
	if err != nil {
		t.Fatal(err)
	}
	popts := r.popts
	popts.Origins = []string{r.origin.URL}
	popts.Via = "next"
	next, err := New(popts, p, r.store)
	if err != nil {
		t.Fatal(err)
	}
	defer next.Close()
	next.clock = r.clock.now

	hit := func(s *Server) http.Header {
		t.Helper()
		req := httptest.NewRequest(http.MethodGet, "http://"+testHost+"/obj", nil)
		req.RemoteAddr = "127.0.0.1:1234"
		w := httptest.NewRecorder()
		s.ServeHTTP(w, req)
		if !isHit(w.Header().Get("Cache-Status")) || w.Body.String() != "body" {
			t.Fatalf("not a hit: %v %q", w.Header(), w.Body.String())
		}
		return w.Header()
	}
	for range 2 { // each server in turn, twice: each time its own header
		if h := hit(r.server); h.Get("Via") != "1.1 cellar" || h.Get("Surrogate-Key") != "" {
			t.Errorf("old server: Via %q, Surrogate-Key %q; want 1.1 cellar and none", h.Get("Via"), h.Get("Surrogate-Key"))
		}
		if h := hit(next); h.Get("Via") != "1.1 next" || h.Get("Surrogate-Key") != "t1" {
			t.Errorf("new server: Via %q, Surrogate-Key %q; want 1.1 next and t1", h.Get("Via"), h.Get("Surrogate-Key"))
		}
	}
}
