package proxy

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkMemoryHit measures memory-tier hits over real HTTP on loopback
// against a bare net/http handler that serves the same bytes from a map,
// in the same run, and reports cellar's rate as a ratio of the bare
// server's (ratio-vs-bare; 1.0 = as fast as net/http itself).
func BenchmarkMemoryHit(b *testing.B) {
	for _, size := range []int{1 << 10, 100 << 10} {
		b.Run(fmt.Sprintf("%dKiB", size>>10), func(b *testing.B) {
			body := make([]byte, size)
			for i := range body {
				body[i] = byte('a' + i%26)
			}
			r := newRig(b, func(w http.ResponseWriter, _ *http.Request) {
				w.Header().Set("Cache-Control", "max-age=3600")
				w.Header().Set("Content-Type", "application/octet-stream")
				w.Write(body)
			})
			r.server.now = time.Now
			bare := bareServer(b, map[string][]byte{"/obj": body})

			// Warm: store the object and check it is a memory hit.
			r.get("/obj")
			r.waitIdle()
			if resp, _ := r.get("/obj"); !isHit(resp.Header.Get("Cache-Status")) {
				b.Fatalf("not a hit: %q", resp.Header.Get("Cache-Status"))
			}
			b.ReportAllocs()
			b.SetBytes(int64(size))
			b.ResetTimer()
			tBare := load(b, bare.URL+"/obj", b.N, size)
			tCellar := load(b, r.front.URL+"/obj", b.N, size)
			b.StopTimer()
			b.ReportMetric(float64(tBare)/float64(tCellar), "ratio-vs-bare")
			b.ReportMetric(float64(tCellar.Nanoseconds())/float64(b.N), "cellar-ns/req")
			b.ReportMetric(float64(tBare.Nanoseconds())/float64(b.N), "bare-ns/req")
			if n := r.origin.hits.Load(); n != 1 {
				b.Errorf("origin hits = %d, want 1", n)
			}
		})
	}
}

// bareServer is the ceiling: net/http serving bytes from a map.
func bareServer(b testing.TB, objs map[string][]byte) *httptest.Server {
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, ok := objs[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Cache-Control", "max-age=3600")
		w.Write(body)
	}))
	b.Cleanup(s.Close)
	return s
}

// load sends n GETs of url from a few keep-alive connections and returns
// how long they took. Every response must be 200 with want bytes.
func load(b testing.TB, url string, n, want int) time.Duration {
	const conns = 4
	tr := &http.Transport{MaxIdleConnsPerHost: conns, MaxConnsPerHost: conns, DisableCompression: true}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}
	var left atomic.Int64
	left.Store(int64(n))
	var wg sync.WaitGroup
	var failed atomic.Value
	start := time.Now()
	for range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequest(http.MethodGet, url, nil)
			req.Host = testHost
			for left.Add(-1) >= 0 {
				resp, err := client.Do(req)
				if err != nil {
					failed.Store(err)
					return
				}
				got, err := io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if err != nil || resp.StatusCode != 200 || got != int64(want) {
					failed.Store(fmt.Errorf("status %d, %d bytes, %v", resp.StatusCode, got, err))
					return
				}
			}
		}()
	}
	wg.Wait()
	d := time.Since(start)
	if err := failed.Load(); err != nil {
		b.Fatalf("load %s: %v", url, err)
	}
	return d
}
