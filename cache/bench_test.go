package cache

import (
	"net/http"
	"testing"
	"time"
)

// BenchmarkEvaluate measures the per-hit decision for a typical entry.
func BenchmarkEvaluate(b *testing.B) {
	p := newPolicy(b, Options{})
	m := stored("Cache-Control: public, max-age=300, stale-while-revalidate=60", `ETag: "abc"`,
		"Content-Type: text/html", "Last-Modified: "+httpDate(t0.Add(-time.Hour)), "Age: 3")
	r := get("http://example.com/a", "Accept-Encoding: gzip, br", "User-Agent: bench")
	now := t0.Add(time.Minute)
	b.ReportAllocs()
	for b.Loop() {
		if l := p.Evaluate(r, m, now); l.Action != Serve {
			b.Fatal(l)
		}
	}
}

// BenchmarkEvaluateRequestCacheControl adds request directives.
func BenchmarkEvaluateRequestCacheControl(b *testing.B) {
	p := newPolicy(b, Options{})
	m := stored("Cache-Control: max-age=300", `ETag: "abc"`)
	r := get("http://example.com/a", "Cache-Control: max-age=600")
	now := t0.Add(time.Minute)
	b.ReportAllocs()
	for b.Loop() {
		if l := p.Evaluate(r, m, now); l.Action != Serve {
			b.Fatal(l)
		}
	}
}

func BenchmarkServeHeader(b *testing.B) {
	p := newPolicy(b, Options{})
	m := stored("Cache-Control: public, max-age=300", `ETag: "abc"`, "Content-Type: text/html",
		"Set-Cookie: a=b", "CDN-Cache-Control: max-age=600", "Vary: Accept-Encoding")
	dst := make(http.Header, 8)
	b.ReportAllocs()
	for b.Loop() {
		clear(dst)
		p.ServeHeader(dst, m)
	}
}

func BenchmarkPrimaryKey(b *testing.B) {
	r := get("http://Example.com:80/some/path?q=1")
	b.ReportAllocs()
	for b.Loop() {
		_ = PrimaryKey(r)
	}
}
