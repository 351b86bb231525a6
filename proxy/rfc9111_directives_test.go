package proxy

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestRevalidationRequiredAnswers504WhenTheOriginIsDown checks §4.2.4,
// §5.2.2.2 (must-revalidate), §5.2.2.8 (proxy-revalidate), §5.2.2.10
// (s-maxage implies proxy-revalidate) and §5.2.2.4 (no-cache): when the
// stale entry must be revalidated and the origin cannot be reached, the
// answer is 504, never the stale entry, even with stale-if-error or the
// client's max-stale. Without such a directive, stale-if-error (RFC 5861
// §4) lets the stale entry answer.
func TestRevalidationRequiredAnswers504WhenTheOriginIsDown(t *testing.T) {
	tests := []struct {
		cc    string
		req   []string
		stale bool // the stale entry may answer
	}{
		{"max-age=10, must-revalidate", nil, false},
		{"max-age=10, must-revalidate, stale-if-error=600", nil, false},
		{"max-age=10, must-revalidate", []string{"Cache-Control: max-stale"}, false},
		{"max-age=10, proxy-revalidate, stale-if-error=600", nil, false},
		{"s-maxage=10, stale-if-error=600", nil, false},
		{"max-age=600, no-cache, stale-if-error=600", nil, false},
		{"max-age=10", nil, false},
		{"max-age=10, stale-if-error=600", nil, true},
		{"max-age=10", []string{"Cache-Control: max-stale=600"}, true},
	}
	for _, tt := range tests {
		t.Run(tt.cc+strings.Join(tt.req, ""), func(t *testing.T) {
			r := newRig(t, reply(200, "stored", "Cache-Control: "+tt.cc, `ETag: "1"`))
			r.sget("/mr")
			r.origin.Close()
			r.clock.advance(30 * time.Second)
			resp, body := r.sget("/mr", tt.req...)
			if tt.stale {
				if resp.StatusCode != 200 || body != "stored" {
					t.Errorf("got %d %q, want the stale entry", resp.StatusCode, body)
				}
				return
			}
			if resp.StatusCode != http.StatusGatewayTimeout || body == "stored" {
				t.Errorf("got %d %q (Cache-Status %q), want 504 and never the stale entry", resp.StatusCode, body, resp.Header.Get("Cache-Status"))
			}
		})
	}
}

// TestMustRevalidatePassesOnTheOriginsError checks §4.2.4: when the
// origin answers the revalidation with an error status, that error (not
// the stale entry) reaches the client.
func TestMustRevalidatePassesOnTheOriginsError(t *testing.T) {
	r := newRig(t, reply(200, "stored", "Cache-Control: max-age=10, must-revalidate, stale-if-error=600"))
	r.sget("/mre")
	r.origin.setHandler(reply(503, "down"))
	r.clock.advance(30 * time.Second)
	resp, body := r.sget("/mre")
	if resp.StatusCode != 503 || body != "down" {
		t.Errorf("got %d %q, want the origin's 503", resp.StatusCode, body)
	}
}

// TestNoCacheResponseIsRevalidatedBeforeEachReuse checks §5.2.2.4: a
// response with no-cache is stored but validated with the origin before
// every reuse; a 304 lets the stored body answer.
func TestNoCacheResponseIsRevalidatedBeforeEachReuse(t *testing.T) {
	r := newRig(t, func(w http.ResponseWriter, req *http.Request) {
		w.Header().Set("Cache-Control", "max-age=600, no-cache")
		w.Header().Set("ETag", `"v1"`)
		if req.Header.Get("If-None-Match") == `"v1"` {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		w.Write([]byte("nc"))
	})
	r.sget("/nc")
	for i := 0; i < 2; i++ {
		resp, body := r.sget("/nc")
		cs := resp.Header.Get("Cache-Status")
		if body != "nc" || resp.StatusCode != 200 || !hasParam(cs, "fwd=stale") || !hasParam(cs, "fwd-status=304") {
			t.Errorf("reuse %d: %d %q Cache-Status %q, want the stored body after a 304", i, resp.StatusCode, body, cs)
		}
	}
	r.wantHits(t, 3, "one fill and two revalidations")
}

// TestImmutableAnswersReloadsWhileFresh checks RFC 8246 §2 (cellar's
// reading in cache/doc.go): a fresh immutable entry answers a request with
// no-cache or max-age=0 without contacting the origin; once stale it is
// revalidated like any other.
func TestImmutableAnswersReloadsWhileFresh(t *testing.T) {
	r := newRig(t, reply(200, "imm", "Cache-Control: max-age=60, immutable"))
	r.sget("/imm")
	for _, h := range []string{"Cache-Control: no-cache", "Cache-Control: max-age=0", "Pragma: no-cache"} {
		if resp, _ := r.sget("/imm", h); !isHit(resp.Header.Get("Cache-Status")) {
			t.Errorf("%s: Cache-Status %q, want a hit", h, resp.Header.Get("Cache-Status"))
		}
	}
	r.wantHits(t, 1, "reloads of a fresh immutable entry")
	r.clock.advance(61 * time.Second)
	if resp, _ := r.sget("/imm"); isHit(resp.Header.Get("Cache-Status")) {
		t.Errorf("stale immutable: Cache-Status %q, want fwd=stale", resp.Header.Get("Cache-Status"))
	}
	r.wantHits(t, 2, "stale immutable entry")
}

// TestPublicMakesAResponseStorable checks §5.2.2.9: public makes a
// response without explicit freshness storable, and heuristically fresh
// even for a status that is not heuristically cacheable.
func TestPublicMakesAResponseStorable(t *testing.T) {
	now := time.Now()
	r := newRig(t, reply(302, "", "Cache-Control: public", "Location: /elsewhere",
		"Date: "+httpDate(now), "Last-Modified: "+httpDate(now.Add(-1000*time.Second))))
	resp, _ := r.sget("/pub")
	if !hasParam(resp.Header.Get("Cache-Status"), "stored") {
		t.Errorf("Cache-Status %q, want stored", resp.Header.Get("Cache-Status"))
	}
	r.clock.advance(30 * time.Second)
	if resp, _ := r.sget("/pub"); resp.StatusCode != 302 || !isHit(resp.Header.Get("Cache-Status")) {
		t.Errorf("second: %d %q, want a 302 hit", resp.StatusCode, resp.Header.Get("Cache-Status"))
	}
}
