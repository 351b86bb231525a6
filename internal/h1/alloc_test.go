package h1

import (
	"bytes"
	"context"
	"net/http"
	"testing"
)

// hitHandler answers as a cache hit does: stored header values, a body.
func hitHandler() http.Handler {
	body := bytes.Repeat([]byte("x"), 1024)
	ct, cl := []string{"application/octet-stream"}, []string{"1024"}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h["Content-Type"], h["Content-Length"] = ct, cl
		w.Write(body)
	})
}

// servePipelined serves n keep-alive GETs on one connection.
func servePipelined(s *Server, req []byte, n int) {
	pc := &pipeConn{in: bytes.NewReader(bytes.Repeat(req, n))}
	pc.out.Grow(n * 1200)
	c := newConn(s, pc)
	c.ctx = context.Background()
	s.addConn(c)
	c.serve()
}

var wrkRequest = []byte("GET /1k/17 HTTP/1.1\r\nHost: 127.0.0.1:19080\r\n\r\n")

// TestAllocationsPerKeepAliveRequest bounds what one request that is not
// released costs the engine in allocations: the Request with its URL and
// context, the header map (the target string is the server's copy).
func TestAllocationsPerKeepAliveRequest(t *testing.T) {
	s := New(&http.Server{Handler: hitHandler()})
	const n = 200
	avg := testing.AllocsPerRun(5, func() { servePipelined(s, wrkRequest, n) }) / n
	t.Logf("%.2f allocations per request", avg)
	if avg > 5 {
		t.Errorf("%.2f allocations per request, want at most 5", avg)
	}
}

// browserRequest is a GET as a browser sends it.
var browserRequest = []byte("GET /static/app.js?v=3 HTTP/1.1\r\nHost: www.example.com\r\n" +
	"User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0\r\n" +
	"Accept: */*\r\nAccept-Language: en-US,en;q=0.5\r\nAccept-Encoding: gzip, deflate, br, zstd\r\n" +
	"Referer: https://www.example.com/\r\nConnection: keep-alive\r\nCookie: session=abc123; theme=dark\r\n" +
	"Sec-Fetch-Dest: script\r\nSec-Fetch-Mode: no-cors\r\nSec-Fetch-Site: same-origin\r\nPriority: u=2\r\n\r\n")

// BenchmarkKeepAliveHit serves keep-alive GETs as wrk sends them (Host
// only) and as a browser does.
func BenchmarkKeepAliveHit(b *testing.B) {
	for _, req := range []struct {
		name string
		raw  []byte
	}{{"wrk", wrkRequest}, {"browser", browserRequest}} {
		b.Run(req.name, func(b *testing.B) {
			s := New(&http.Server{Handler: hitHandler()})
			b.ReportAllocs()
			const n = 100
			for b.Loop() {
				servePipelined(s, req.raw, n)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/request")
		})
	}
}
