package proxy

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestValidationCarriesEveryStoredVariantsETag (§4.3.1, §4.3.4): a request
// whose variant is not stored sends the ETags of the stored variants; a 304
// that selects one of them answers it from that stored body.
func TestValidationCarriesEveryStoredVariantsETag(t *testing.T) {
	var mu sync.Mutex // protects inm
	var inm []string
	r := newRig(t, func(w http.ResponseWriter, req *http.Request) {
		mu.Lock()
		inm = append(inm, req.Header.Get("If-None-Match"))
		mu.Unlock()
		w.Header().Set("Vary", "Accept-Language")
		w.Header().Set("Cache-Control", "max-age=60")
		etag := `"en"`
		if req.Header.Get("Accept-Language") == "de" {
			etag = `"de"`
		}
		w.Header().Set("ETag", etag)
		// fr gets the English representation: the same ETag.
		if strings.Contains(req.Header.Get("If-None-Match"), etag) {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		fmt.Fprintf(w, "body %s", etag)
	})
	for _, lang := range []string{"en", "de"} {
		r.do(http.MethodGet, "/v", http.Header{"Accept-Language": {lang}})
		r.waitIdle()
	}
	resp, body := r.do(http.MethodGet, "/v", http.Header{"Accept-Language": {"fr"}})
	if resp.StatusCode != 200 || body != `body "en"` {
		t.Fatalf("fr: %d %q, want the stored English body", resp.StatusCode, body)
	}
	mu.Lock()
	last := inm[len(inm)-1]
	mu.Unlock()
	if !strings.Contains(last, `"en"`) || !strings.Contains(last, `"de"`) {
		t.Errorf("validation If-None-Match = %q, want both stored ETags", last)
	}
	if got := r.origin.hits.Load(); got != 3 {
		t.Errorf("origin hits = %d, want 3", got)
	}
	// The selected variant was freshened, not replaced: English is a hit.
	r.clock.advance(time.Second)
	resp, body = r.do(http.MethodGet, "/v", http.Header{"Accept-Language": {"en"}})
	if body != `body "en"` || !isHit(resp.Header.Get("Cache-Status")) {
		t.Errorf("en after: %q %q", body, resp.Header.Get("Cache-Status"))
	}
	// A 304 that selects nothing the cache holds is never passed on to a
	// client that sent no validators (§4.3.4).
	r.origin.setHandler(func(w http.ResponseWriter, req *http.Request) {
		w.Header().Set("Vary", "Accept-Language")
		if req.Header.Get("If-None-Match") != "" {
			w.Header().Set("ETag", `"other"`)
			w.WriteHeader(http.StatusNotModified)
			return
		}
		io.WriteString(w, "full")
	})
	resp, body = r.do(http.MethodGet, "/v", http.Header{"Accept-Language": {"it"}})
	if resp.StatusCode != 200 || body != "full" {
		t.Errorf("it: %d %q, want the origin's full answer", resp.StatusCode, body)
	}
}
