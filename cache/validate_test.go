package cache

import (
	"net/http"
	"testing"
	"time"
)

// TestConditionalRequest covers §4.3.1.
func TestConditionalRequest(t *testing.T) {
	a := stored(`ETag: "a"`, "Last-Modified: "+httpDate(t0.Add(-time.Hour)))
	b := stored(`ETag: W/"b"`)
	c := stored(`ETag: "a"`)
	h := http.Header{}
	Conditional(h, a, b, c)
	if got := h.Get("If-None-Match"); got != `"a", W/"b"` {
		t.Errorf("If-None-Match = %q", got)
	}
	if got := h.Get("If-Modified-Since"); got != httpDate(t0.Add(-time.Hour)) {
		t.Errorf("If-Modified-Since = %q", got)
	}
	h = http.Header{}
	Conditional(h, stored())
	if got := h.Get("If-Modified-Since"); got != httpDate(t0) {
		t.Errorf("If-Modified-Since from Date = %q", got)
	}
	if _, ok := h["If-None-Match"]; ok {
		t.Error("If-None-Match without ETags")
	}
}

// TestFreshenWith304 covers §3.2 and §4.3.4.
func TestFreshenWith304(t *testing.T) {
	p := newPolicy(t, Options{})
	m := stored(`ETag: "a"`, "Cache-Control: max-age=10", "Content-Length: 100", "X-Old: 1", "Age: 50", "Content-Type: text/plain")
	m.Invalid = true
	h := hdr(`ETag: "a"`, "Cache-Control: max-age=600", "Content-Length: 0", "X-New: 2", "Connection: X-Hop", "X-Hop: 1", "Keep-Alive: 1")
	later := t0.Add(time.Hour)
	n := p.Freshen(m, h, later.Add(-time.Second), later)
	checks := map[string]string{
		"Cache-Control":  "max-age=600",
		"Content-Length": "100",
		"X-Old":          "1",
		"X-New":          "2",
		"Content-Type":   "text/plain",
		"X-Hop":          "",
		"Keep-Alive":     "",
		"Age":            "",
		"Date":           httpDate(later),
	}
	for k, want := range checks {
		if got := n.Header.Get(k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	if n.Invalid || !n.ResponseTime.Equal(later) || n.Status != 200 {
		t.Errorf("freshened meta = %+v", n)
	}
	if m.Header.Get("Cache-Control") != "max-age=10" || !m.Invalid {
		t.Error("Freshen modified the stored entry")
	}
	if l := p.Evaluate(get("http://h/"), &n, later.Add(time.Minute)); l.Action != Serve || l.Age != time.Minute+time.Second {
		t.Errorf("after freshening: %+v", l)
	}
}

// TestMatches304 covers §4.3.4 selection.
func TestMatches304(t *testing.T) {
	lm := "Last-Modified: " + httpDate(t0.Add(-time.Hour))
	tests := []struct {
		name  string
		m     *Meta
		h     http.Header
		match bool
	}{
		{"StrongETag", stored(`ETag: "a"`), hdr(`ETag: "a"`), true},
		{"StrongETagDiffers", stored(`ETag: "a"`), hdr(`ETag: "b"`), false},
		{"StrongDoesNotMatchWeakStored", stored(`ETag: W/"a"`), hdr(`ETag: "a"`), false},
		{"WeakETagWeakCompare", stored(`ETag: "a"`), hdr(`ETag: W/"a"`), true},
		{"ETagButStoredHasNone", stored(lm), hdr(`ETag: "a"`), false},
		{"LastModified", stored(lm), hdr(lm), true},
		{"LastModifiedDiffers", stored(lm), hdr("Last-Modified: " + httpDate(t0)), false},
		{"NoValidatorsBothSides", stored(), hdr(), true},
		{"NoValidatorsIn304", stored(`ETag: "a"`), hdr(), true},
		{"NoValidatorsIn304LastModifiedStored", stored(lm), hdr(), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Matches304(tt.m, tt.h); got != tt.match {
				t.Errorf("Matches304 = %v, want %v", got, tt.match)
			}
		})
	}
}

// TestClientConditionals covers RFC 9110 §13.1.1-§13.1.4 and the
// precedence of §13.2.2, as RFC 9111 §4.3.2 applies them to stored entries.
func TestClientConditionals(t *testing.T) {
	lm := t0.Add(-time.Hour)
	m := stored(`ETag: W/"a"`, "Last-Modified: "+httpDate(lm))
	tests := []struct {
		name        string
		req         []string
		notModified bool
		failed      bool
	}{
		{"IfNoneMatchWeakCompare", []string{`If-None-Match: "a"`}, true, false},
		{"IfNoneMatchList", []string{`If-None-Match: "x", W/"a"`}, true, false},
		{"IfNoneMatchStar", []string{`If-None-Match: *`}, true, false},
		{"IfNoneMatchMiss", []string{`If-None-Match: "b"`}, false, false},
		{"ETagPrecedesDate", []string{`If-None-Match: "b"`, "If-Modified-Since: " + httpDate(t0)}, false, false},
		{"IfModifiedSinceLater", []string{"If-Modified-Since: " + httpDate(t0)}, true, false},
		{"IfModifiedSinceEqual", []string{"If-Modified-Since: " + httpDate(lm)}, true, false},
		{"IfModifiedSinceEarlier", []string{"If-Modified-Since: " + httpDate(lm.Add(-time.Second))}, false, false},
		{"IfModifiedSinceInvalid", []string{"If-Modified-Since: yesterday"}, false, false},
		{"IfMatchWeakStoredFails", []string{`If-Match: "a"`}, false, true},
		{"IfMatchStar", []string{`If-Match: *`}, false, false},
		{"IfUnmodifiedSinceBefore", []string{"If-Unmodified-Since: " + httpDate(lm.Add(-time.Second))}, false, true},
		{"IfUnmodifiedSinceAfter", []string{"If-Unmodified-Since: " + httpDate(t0)}, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := get("http://h/", tt.req...)
			if got := NotModified(r, m); got != tt.notModified {
				t.Errorf("NotModified = %v, want %v", got, tt.notModified)
			}
			if got := PreconditionFailed(r, m); got != tt.failed {
				t.Errorf("PreconditionFailed = %v, want %v", got, tt.failed)
			}
		})
	}
	strong := stored(`ETag: "s"`)
	if PreconditionFailed(get("http://h/", `If-Match: "s"`), strong) {
		t.Error("If-Match strong match failed")
	}
	if !NotModified(get("http://h/", "If-Modified-Since: "+httpDate(t0)), stored()) {
		t.Error("If-Modified-Since should fall back to Date")
	}
	notFound := stored(`ETag: "a"`)
	notFound.Status = 404
	if NotModified(get("http://h/", `If-None-Match: "a"`), notFound) {
		t.Error("304 for a stored 404")
	}
}

// TestHeadFreshensOnlyWhenValidatorsAgree covers §4.3.5.
func TestHeadFreshensOnlyWhenValidatorsAgree(t *testing.T) {
	m := stored(`ETag: "a"`, "Content-Length: 10", "Last-Modified: "+httpDate(t0.Add(-time.Hour)))
	tests := []struct {
		name string
		h    http.Header
		want bool
	}{
		{"SameValidators", hdr(`ETag: "a"`, "Content-Length: 10"), true},
		{"NoValidators", hdr("Cache-Control: max-age=60"), true},
		{"ETagDiffers", hdr(`ETag: "b"`), false},
		{"LengthDiffers", hdr("Content-Length: 11"), false},
		{"LastModifiedDiffers", hdr("Last-Modified: " + httpDate(t0)), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := HeadMatches(m, tt.h); got != tt.want {
				t.Errorf("HeadMatches = %v, want %v", got, tt.want)
			}
		})
	}
}
