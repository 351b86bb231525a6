package h1

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"testing"
)

// releasing wraps h: it calls ReleaseRequest after h, as the proxy does
// after a memory hit.
func releasing(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.ServeHTTP(w, r)
		w.(interface{ ReleaseRequest() }).ReleaseRequest()
	})
}

// A released request costs no allocation of its Request, URL, context,
// header map or target string (a target met before is the server's
// copy): in steady state a request as wrk sends it allocates nothing.
// Fewer bytes per hit, fewer collections (docs/DESIGN.md, the tail of
// small hits). The connection's own allocations are left out by counting
// the difference between 400 and 200 requests on one connection.
func TestReleasedRequestAllocatesNoRequest(t *testing.T) {
	per := func(h http.Handler) float64 {
		s := New(&http.Server{Handler: h})
		servePipelined(s, wrkRequest, 1) // the server meets the target
		a := testing.AllocsPerRun(5, func() { servePipelined(s, wrkRequest, 200) })
		b := testing.AllocsPerRun(5, func() { servePipelined(s, wrkRequest, 400) })
		return (b - a) / 200
	}
	kept, released := per(hitHandler()), per(releasing(hitHandler()))
	t.Logf("allocations per request: %.2f kept, %.2f released", kept, released)
	if released > 0.05 {
		t.Errorf("a released request allocates %.2f times (kept: %.2f), want 0", released, kept)
	}
}

// Each request read into released memory is only itself: nothing of the
// previous one (fields, query, context state) shows through.
func TestReleasedMemoryHoldsOnlyTheNextRequest(t *testing.T) {
	var seen []string
	var ptrs []*http.Request
	var maps []uintptr
	h := releasing(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ptrs = append(ptrs, r)
		maps = append(maps, reflect.ValueOf(r.Header).Pointer())
		seen = append(seen, fmt.Sprintf("%s %s?%s a=%q b=%q n=%d err=%v", r.Method, r.URL.Path, r.URL.RawQuery,
			r.Header.Get("A"), r.Header.Get("B"), len(r.Header), r.Context().Err()))
	}))
	in := "GET /one?q=1 HTTP/1.1\r\nHost: x\r\nA: 1\r\nB: 2\r\n\r\n" +
		"HEAD /two HTTP/1.1\r\nHost: x\r\n\r\n" +
		"GET /three HTTP/1.1\r\nHost: x\r\nB: 3\r\n\r\n" +
		"GET /four HTTP/1.1\r\nHost: x\r\nA: 4\r\n\r\n"
	s := New(&http.Server{Handler: h})
	pc := &pipeConn{in: bytes.NewReader([]byte(in))}
	c := newConn(s, pc)
	c.ctx = context.Background()
	s.addConn(c)
	c.serve()
	want := []string{
		`GET /one?q=1 a="1" b="2" n=2 err=<nil>`,
		`HEAD /two? a="" b="" n=0 err=<nil>`,
		`GET /three? a="" b="3" n=1 err=<nil>`,
		`GET /four? a="4" b="" n=1 err=<nil>`,
	}
	if fmt.Sprint(seen) != fmt.Sprint(want) {
		t.Errorf("requests seen:\n%q\nwant\n%q", seen, want)
	}
	// The first request had two fields: its memory has room for values,
	// and every later one fits in it, its header map too.
	for i := 1; i < len(ptrs); i++ {
		if ptrs[i] != ptrs[0] || maps[i] != maps[0] {
			t.Errorf("request %d was not read into the released memory (same Request %v, same header map %v)",
				i+1, ptrs[i] == ptrs[0], maps[i] == maps[0])
		}
	}
}

// A request that is not released, or whose context's Done channel was
// asked for, is never reused: a handler may keep it.
func TestRequestKeptUnlessReleased(t *testing.T) {
	for _, tc := range []struct {
		name string
		h    http.HandlerFunc
	}{
		{"not released", func(w http.ResponseWriter, r *http.Request) {}},
		{"released after Done was asked for", func(w http.ResponseWriter, r *http.Request) {
			_ = r.Context().Done()
			w.(interface{ ReleaseRequest() }).ReleaseRequest()
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var mu sync.Mutex
			var kept []*http.Request
			h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				mu.Lock()
				kept = append(kept, r)
				mu.Unlock()
				tc.h(w, r)
			})
			// Over loopback, with a client that stays until the server
			// closes: an in-memory connection that ends after its bytes
			// would look like a client gone to the background read that
			// asking for Done starts, and end the connection early.
			_, addr := start(t, nil, h)
			out := exchange(t, addr, "GET /a HTTP/1.1\r\nHost: x\r\nA: 1\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\nA: 2\r\n\r\nGET /c HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
			if n := strings.Count(out, "HTTP/1.1 200 OK"); n != 3 {
				t.Fatalf("%d responses, want 3:\n%s", n, out)
			}
			mu.Lock()
			defer mu.Unlock()
			var got []string
			for _, r := range kept {
				got = append(got, r.URL.Path+" "+r.Header.Get("A"))
			}
			if want := "[/a 1 /b 2 /c ]"; fmt.Sprint(got) != want {
				t.Errorf("kept requests after the connection: %q, want %s", got, want)
			}
		})
	}
}
