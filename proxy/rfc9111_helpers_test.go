package proxy

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// hasParam reports whether the Cache-Status value cs has parameter p, such
// as "stored" or "fwd=uri-miss" (RFC 9211 §2).
func hasParam(cs, p string) bool {
	for _, e := range strings.Split(cs, ";") {
		if strings.TrimSpace(e) == p {
			return true
		}
	}
	return false
}

// param returns the value of Cache-Status parameter name in cs, or "".
func param(cs, name string) string {
	for _, e := range strings.Split(cs, ";") {
		if k, v, ok := strings.Cut(strings.TrimSpace(e), "="); ok && k == name {
			return v
		}
	}
	return ""
}

// httpDate formats t as an IMF-fixdate.
func httpDate(t time.Time) string { return t.UTC().Format(http.TimeFormat) }

// reply is an origin handler that answers with status, the header fields
// of hdr ("Name: value" lines) and body (when the status allows one).
func reply(status int, body string, hdr ...string) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		for _, l := range hdr {
			k, v, _ := strings.Cut(l, ":")
			w.Header().Add(strings.TrimSpace(k), strings.TrimSpace(v))
		}
		w.WriteHeader(status)
		if bodyAllowed(status) {
			io.WriteString(w, body)
		}
	}
}

// send sends one request through the proxy without following redirects,
// reads the body, and waits until any fill it started is committed. host
// "" means testHost. header lines are "Name: value".
func (r *rig) send(method, host, path string, hdr ...string) (*http.Response, string) {
	r.t.Helper()
	resp, body, err := r.trySend(method, host, path, hdr...)
	if err != nil {
		r.t.Fatalf("%s %s: %v", method, path, err)
	}
	return resp, body
}

// trySend is send that returns a transport or body error instead of failing.
func (r *rig) trySend(method, host, path string, hdr ...string) (*http.Response, string, error) {
	req, err := http.NewRequest(method, r.front.URL+path, nil)
	if err != nil {
		r.t.Fatal(err)
	}
	req.Host = testHost
	if host != "" {
		req.Host = host
	}
	for _, l := range hdr {
		k, v, _ := strings.Cut(l, ":")
		req.Header.Add(strings.TrimSpace(k), strings.TrimSpace(v))
	}
	c := *r.front.Client()
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := c.Do(req)
	if err != nil {
		return nil, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	r.waitIdle()
	return resp, string(b), err
}

// sget is send with GET on testHost.
func (r *rig) sget(path string, hdr ...string) (*http.Response, string) {
	r.t.Helper()
	return r.send(http.MethodGet, "", path, hdr...)
}

// hits is the number of requests the origin has received.
func (r *rig) hits() int64 { return r.origin.hits.Load() }

// wantHits fails the test unless the origin has received n requests.
func (r *rig) wantHits(t *testing.T, n int64, when string) {
	t.Helper()
	if got := r.hits(); got != n {
		t.Errorf("%s: origin requests = %d, want %d", when, got, n)
	}
}
