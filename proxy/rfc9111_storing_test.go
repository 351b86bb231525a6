package proxy

import (
	"net/http"
	"testing"
	"time"

	"github.com/cellar-cache/cellar/cache"
)

// TestStoringDependsOnStatusAndFreshness checks §3 with §4.2.2: explicit
// freshness makes any final status storable, Last-Modified heuristics apply
// only to the heuristically cacheable statuses of RFC 9110 §15.1, and a
// response without either is not reused.
func TestStoringDependsOnStatusAndFreshness(t *testing.T) {
	lm := "Last-Modified: " + httpDate(time.Now().Add(-1000*time.Second))
	tests := []struct {
		name   string
		status int
		hdr    []string
		reused bool
	}{
		{"200 heuristic", 200, []string{lm}, true},
		{"203 heuristic", 203, []string{lm}, true},
		{"204 heuristic", 204, []string{lm}, true},
		{"300 heuristic", 300, []string{lm}, true},
		{"301 heuristic", 301, []string{lm, "Location: /x"}, true},
		{"308 heuristic", 308, []string{lm, "Location: /x"}, true},
		{"404 heuristic", 404, []string{lm}, true},
		{"405 heuristic", 405, []string{lm}, true},
		{"410 heuristic", 410, []string{lm}, true},
		{"414 heuristic", 414, []string{lm}, true},
		{"501 heuristic", 501, []string{lm}, true},
		{"302 no heuristic", 302, []string{lm, "Location: /x"}, false},
		{"307 no heuristic", 307, []string{lm, "Location: /x"}, false},
		{"403 no heuristic", 403, []string{lm}, false},
		{"500 no heuristic", 500, []string{lm}, false},
		{"299 unknown no heuristic", 299, []string{lm}, false},
		{"302 max-age", 302, []string{"Cache-Control: max-age=60", "Location: /x"}, true},
		{"307 expires", 307, []string{"Expires: " + httpDate(time.Now().Add(time.Hour)), "Location: /x"}, true},
		{"403 s-maxage", 403, []string{"Cache-Control: s-maxage=60"}, true},
		{"500 max-age", 500, []string{"Cache-Control: max-age=60"}, true},
		{"299 unknown max-age", 299, []string{"Cache-Control: max-age=60"}, true},
		{"200 without freshness", 200, nil, false},
		{"200 max-age=0", 200, []string{"Cache-Control: max-age=0"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRig(t, reply(tt.status, "body", tt.hdr...))
			resp, _ := r.sget("/s")
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d", resp.StatusCode, tt.status)
			}
			r.clock.advance(10 * time.Second)
			resp, _ = r.sget("/s")
			if resp.StatusCode != tt.status {
				t.Fatalf("second status %d, want %d", resp.StatusCode, tt.status)
			}
			cs := resp.Header.Get("Cache-Status")
			if isHit(cs) != tt.reused {
				t.Errorf("second Cache-Status %q, want hit=%v", cs, tt.reused)
			}
			want := int64(2)
			if tt.reused {
				want = 1
			}
			r.wantHits(t, want, "after two requests")
		})
	}
}

// TestNoStoreIsNeverStored checks §5.2.2.5 (response no-store) and §5.2.1.5
// (request no-store): the response is not stored, so the next request
// goes to the origin.
func TestNoStoreIsNeverStored(t *testing.T) {
	tests := []struct {
		name    string
		resp    string
		request []string
	}{
		{"response no-store", "max-age=60, no-store", nil},
		{"response NO-STORE uppercase", "MAX-AGE=60, NO-STORE", nil},
		{"response no-store with invalid argument", "no-store=1, max-age=60", nil},
		{"request no-store", "max-age=60", []string{"Cache-Control: no-store"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRig(t, reply(200, "x", "Cache-Control: "+tt.resp))
			resp, _ := r.sget("/n", tt.request...)
			if hasParam(resp.Header.Get("Cache-Status"), "stored") {
				t.Errorf("first Cache-Status %q says stored", resp.Header.Get("Cache-Status"))
			}
			resp, _ = r.sget("/n")
			if isHit(resp.Header.Get("Cache-Status")) {
				t.Errorf("second Cache-Status %q is a hit", resp.Header.Get("Cache-Status"))
			}
			r.wantHits(t, 2, "after two requests")
		})
	}
}

// TestPrivateResponseIsNotStored checks §5.2.2.7: a shared cache never
// stores a private response.
func TestPrivateResponseIsNotStored(t *testing.T) {
	r := newRig(t, reply(200, "mine", "Cache-Control: private, max-age=60"))
	r.sget("/p")
	resp, body := r.sget("/p")
	if body != "mine" || isHit(resp.Header.Get("Cache-Status")) {
		t.Errorf("second: %q %q", body, resp.Header.Get("Cache-Status"))
	}
	r.wantHits(t, 2, "after two requests")
}

// TestQualifiedPrivateAndNoCacheDropTheNamedFields checks §5.2.2.7
// (private="field") and §5.2.2.4 (no-cache="field"), in cellar's reading:
// the response is stored without the named fields and reused without
// revalidation; the client whose request fetched it still gets them.
func TestQualifiedPrivateAndNoCacheDropTheNamedFields(t *testing.T) {
	for _, directive := range []string{`private="X-User, X-Account"`, `no-cache="X-User, X-Account"`, `private=X-User, private=x-account`} {
		t.Run(directive, func(t *testing.T) {
			r := newRig(t, reply(200, "page", "Cache-Control: max-age=60, "+directive, "X-User: alice", "X-Account: 42", "X-Public: yes"))
			resp, body := r.sget("/q")
			if body != "page" || resp.Header.Get("X-User") != "alice" || resp.Header.Get("X-Account") != "42" {
				t.Errorf("fetching client: body %q X-User %q X-Account %q, want the origin's fields", body, resp.Header.Get("X-User"), resp.Header.Get("X-Account"))
			}
			r.clock.advance(time.Second)
			resp, body = r.sget("/q")
			if !isHit(resp.Header.Get("Cache-Status")) || body != "page" {
				t.Fatalf("second: %q %q, want a hit", body, resp.Header.Get("Cache-Status"))
			}
			if resp.Header.Get("X-User") != "" || resp.Header.Get("X-Account") != "" {
				t.Errorf("hit carries X-User %q X-Account %q", resp.Header.Get("X-User"), resp.Header.Get("X-Account"))
			}
			if resp.Header.Get("X-Public") != "yes" {
				t.Error("hit lost an unnamed field")
			}
			r.wantHits(t, 1, "after two requests")
		})
	}
}

// TestAuthorizationRequestIsStoredOnlyWhenTheResponseAllowsIt checks §3.5:
// a response to a request with Authorization is stored by a shared cache
// only with public, s-maxage or must-revalidate; cellar's default
// (cache.PersonalSafe) does not take must-revalidate as explicit enough.
func TestAuthorizationRequestIsStoredOnlyWhenTheResponseAllowsIt(t *testing.T) {
	tests := []struct {
		cc     string
		rfc    bool
		stored bool
	}{
		{"max-age=60", true, false},
		{"public, max-age=60", true, true},
		{"s-maxage=60", true, true},
		{"max-age=60, must-revalidate", true, true},
		{"max-age=60, proxy-revalidate", true, false},
		{"max-age=60", false, false},
		{"public, max-age=60", false, true},
		{"s-maxage=60", false, true},
		{"max-age=60, must-revalidate", false, false},
	}
	for _, tt := range tests {
		name := tt.cc + "/safe"
		if tt.rfc {
			name = tt.cc + "/rfc"
		}
		t.Run(name, func(t *testing.T) {
			r := newRig(t, reply(200, "doc", "Cache-Control: "+tt.cc), withCacheOptions(func(o *cache.Options) {
				if tt.rfc {
					o.Personal = cache.PersonalRFC
				}
			}))
			resp, _ := r.sget("/auth", "Authorization: Bearer a")
			if got := hasParam(resp.Header.Get("Cache-Status"), "stored"); got != tt.stored {
				t.Errorf("first Cache-Status %q, want stored=%v", resp.Header.Get("Cache-Status"), tt.stored)
			}
			resp, _ = r.sget("/auth", "Authorization: Bearer a")
			if isHit(resp.Header.Get("Cache-Status")) != tt.stored {
				t.Errorf("second Cache-Status %q, want hit=%v", resp.Header.Get("Cache-Status"), tt.stored)
			}
			want := int64(2)
			if tt.stored {
				want = 1
			}
			r.wantHits(t, want, "after two requests")
		})
	}
}

// TestIncompleteResponseIsNeverStoredAsComplete checks §3.3: a body
// shorter than its Content-Length is not stored, and the client's response
// is aborted rather than looking complete (or, when none of the body had
// reached the client yet, is a 502).
func TestIncompleteResponseIsNeverStoredAsComplete(t *testing.T) {
	r := newRig(t, func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		w.Header().Set("Content-Length", "10")
		w.Write([]byte("12345"))
		w.(http.Flusher).Flush()
		panic(http.ErrAbortHandler)
	})
	resp, body, err := r.trySend(http.MethodGet, "", "/inc")
	if err == nil && resp.StatusCode != http.StatusBadGateway {
		t.Errorf("client read %d %q with no error from a truncated response", resp.StatusCode, body)
	}
	r.origin.setHandler(reply(200, "complete", "Cache-Control: max-age=60"))
	resp, body = r.sget("/inc")
	if body != "complete" || isHit(resp.Header.Get("Cache-Status")) {
		t.Errorf("after a truncated fill: %q %q, want the origin's new response", body, resp.Header.Get("Cache-Status"))
	}
	r.wantHits(t, 2, "after the truncated and the complete fill")
}

// TestHopByHopFieldsAreNotStored checks §3.1: Connection, the fields it
// names, and the other hop-by-hop fields are never stored (nor sent).
func TestHopByHopFieldsAreNotStored(t *testing.T) {
	r := newRig(t, reply(200, "h", "Cache-Control: max-age=60", "Connection: X-Hop, x-other-hop",
		"X-Hop: 1", "X-Other-Hop: 2", "Keep-Alive: timeout=5", "Proxy-Authenticate: Basic", "X-End: e"))
	r.sget("/hop")
	obj, err := r.store.Get(t.Context(), "http://"+testHost+"/hop")
	if err != nil {
		t.Fatalf("stored entry: %v", err)
	}
	for _, f := range []string{"Connection", "X-Hop", "X-Other-Hop", "Keep-Alive", "Proxy-Authenticate"} {
		if _, ok := obj.Meta.Header[f]; ok {
			t.Errorf("stored header has %s", f)
		}
	}
	resp, _ := r.sget("/hop")
	if !isHit(resp.Header.Get("Cache-Status")) {
		t.Fatalf("second Cache-Status %q", resp.Header.Get("Cache-Status"))
	}
	for _, f := range []string{"X-Hop", "X-Other-Hop", "Keep-Alive", "Proxy-Authenticate"} {
		if resp.Header.Get(f) != "" {
			t.Errorf("hit carries %s", f)
		}
	}
	if resp.Header.Get("X-End") != "e" {
		t.Error("hit lost an end-to-end field")
	}
}

// TestResponsesToUnsafeMethodsAreNotStored checks §3 (the request method
// must be understood and cacheable; cellar stores GET only).
func TestResponsesToUnsafeMethodsAreNotStored(t *testing.T) {
	r := newRig(t, reply(200, "made", "Cache-Control: max-age=60"))
	for _, m := range []string{http.MethodPost, http.MethodPut, "REPORT"} {
		resp, _ := r.send(m, "", "/m")
		if cs := resp.Header.Get("Cache-Status"); !hasParam(cs, "fwd=method") || hasParam(cs, "stored") {
			t.Errorf("%s Cache-Status %q, want fwd=method and not stored", m, cs)
		}
	}
	resp, _ := r.sget("/m")
	if cs := resp.Header.Get("Cache-Status"); !hasParam(cs, "fwd=uri-miss") {
		t.Errorf("GET after unsafe methods: Cache-Status %q, want fwd=uri-miss", cs)
	}
	r.wantHits(t, 4, "")
}
