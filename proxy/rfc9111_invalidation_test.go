package proxy

import (
	"net/http"
	"testing"
)

// invalidationOrigin stores GETs for 60 s and answers other methods with
// status and the given header lines.
func invalidationOrigin(status int, hdr ...string) http.HandlerFunc {
	return func(w http.ResponseWriter, req *http.Request) {
		if req.Method == http.MethodGet {
			w.Header().Set("Cache-Control", "max-age=60")
			w.Write([]byte("get " + req.URL.Path))
			return
		}
		reply(status, "done", hdr...)(w, req)
	}
}

// TestUnsafeMethodsInvalidateTheTarget checks §4.4: a non-error response
// to an unsafe or unknown method invalidates the stored response of the
// target URI, all its variants included.
func TestUnsafeMethodsInvalidateTheTarget(t *testing.T) {
	for _, m := range []string{http.MethodPost, http.MethodPut, http.MethodDelete, http.MethodPatch, "FROBNICATE"} {
		for _, status := range []int{200, 204, 303} {
			t.Run(m+"/"+http.StatusText(status), func(t *testing.T) {
				r := newRig(t, invalidationOrigin(status, "Location: /elsewhere"))
				r.sget("/doc")
				r.sget("/doc?q=1")
				r.send(m, "", "/doc")
				if resp, _ := r.sget("/doc"); isHit(resp.Header.Get("Cache-Status")) {
					t.Errorf("after %s: Cache-Status %q, want a miss", m, resp.Header.Get("Cache-Status"))
				}
				if resp, _ := r.sget("/doc?q=1"); !isHit(resp.Header.Get("Cache-Status")) {
					t.Errorf("another URI was invalidated: Cache-Status %q", resp.Header.Get("Cache-Status"))
				}
			})
		}
	}
}

// TestSafeMethodsAndErrorsDoNotInvalidate checks §4.4: safe methods and
// error responses (4xx, 5xx) leave the stored response alone.
func TestSafeMethodsAndErrorsDoNotInvalidate(t *testing.T) {
	tests := []struct {
		method string
		status int
	}{
		{http.MethodPost, 400},
		{http.MethodPost, 404},
		{http.MethodDelete, 500},
		{http.MethodPut, 503},
		{http.MethodOptions, 200},
	}
	for _, tt := range tests {
		t.Run(tt.method+"/"+http.StatusText(tt.status), func(t *testing.T) {
			r := newRig(t, invalidationOrigin(tt.status))
			r.sget("/doc")
			r.send(tt.method, "", "/doc")
			if resp, _ := r.sget("/doc"); !isHit(resp.Header.Get("Cache-Status")) {
				t.Errorf("Cache-Status %q, want a hit", resp.Header.Get("Cache-Status"))
			}
		})
	}
}

// TestInvalidationCoversSameOriginLocationAndContentLocation checks §4.4:
// Location and Content-Location URIs are invalidated when they share the
// target's origin, and not when they name another host.
func TestInvalidationCoversSameOriginLocationAndContentLocation(t *testing.T) {
	r := newRig(t, invalidationOrigin(201, "Location: /new", "Content-Location: http://"+testHost+"/list"))
	for _, p := range []string{"/new", "/list", "/other"} {
		r.sget(p)
	}
	r.send(http.MethodGet, "other.test", "/foreign")
	r.send(http.MethodPost, "", "/list-add")
	for _, p := range []string{"/new", "/list"} {
		if resp, _ := r.sget(p); isHit(resp.Header.Get("Cache-Status")) {
			t.Errorf("%s not invalidated: Cache-Status %q", p, resp.Header.Get("Cache-Status"))
		}
	}
	if resp, _ := r.sget("/other"); !isHit(resp.Header.Get("Cache-Status")) {
		t.Errorf("/other invalidated: Cache-Status %q", resp.Header.Get("Cache-Status"))
	}

	r.origin.setHandler(invalidationOrigin(200, "Location: http://other.test/foreign", "Content-Location: https://"+testHost+"/other"))
	r.send(http.MethodPut, "", "/x")
	if resp, _ := r.send(http.MethodGet, "other.test", "/foreign"); !isHit(resp.Header.Get("Cache-Status")) {
		t.Errorf("another host's URI invalidated: Cache-Status %q", resp.Header.Get("Cache-Status"))
	}
	if resp, _ := r.sget("/other"); !isHit(resp.Header.Get("Cache-Status")) {
		t.Errorf("another scheme's URI invalidated: Cache-Status %q", resp.Header.Get("Cache-Status"))
	}
}

// TestInvalidationUsesTheClientsHost checks §4.4 when cellar sends the
// origin its own Host (PreserveHost false): the invalidated URI is the one
// the client asked for, the key under which it is stored.
func TestInvalidationUsesTheClientsHost(t *testing.T) {
	f := false
	r := newRig(t, invalidationOrigin(200), withProxyOptions(func(o *Options) { o.PreserveHost = &f }))
	r.sget("/doc")
	r.send(http.MethodPost, "", "/doc")
	if resp, _ := r.sget("/doc"); isHit(resp.Header.Get("Cache-Status")) {
		t.Errorf("after POST: Cache-Status %q, want a miss", resp.Header.Get("Cache-Status"))
	}
}
