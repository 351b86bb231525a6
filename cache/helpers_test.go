package cache

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// t0 is the fixed "now" of the tests: no test reads the clock.
var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func httpDate(t time.Time) string { return t.UTC().Format(http.TimeFormat) }

// hdr builds a header from "Name: value" lines; repeated names add lines.
func hdr(lines ...string) http.Header {
	h := http.Header{}
	for _, l := range lines {
		k, v, _ := strings.Cut(l, ":")
		h.Add(strings.TrimSpace(k), strings.TrimSpace(v))
	}
	return h
}

func newPolicy(t testing.TB, o Options) *Policy {
	t.Helper()
	p, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// stored returns a 200 entry received at t0 with Date t0 plus lines.
func stored(lines ...string) *Meta {
	h := hdr(lines...)
	if _, ok := h["Date"]; !ok {
		h.Set("Date", httpDate(t0))
	}
	return &Meta{Status: 200, Header: h, RequestTime: t0, ResponseTime: t0}
}

func get(url string, lines ...string) *http.Request {
	r := httptest.NewRequest(http.MethodGet, url, nil)
	for k, v := range hdr(lines...) {
		r.Header[k] = v
	}
	return r
}
