package proxy

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cellar-cache/cellar/internal/accesslog"
)

// BenchmarkMemoryHit measures memory-tier hits over real HTTP on loopback
// against a bare net/http handler that serves the same bytes from a map,
// in the same run (interleaved rounds), and reports cellar's rate as a
// ratio of the bare server's (ratio-vs-bare, the median of the rounds; 1.0
// = as fast as net/http itself).
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
			r.server.clock = nil
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
			tBare, tCellar, ratio := interleaved(b, bare.URL+"/obj", r.front.URL+"/obj", b.N, size)
			b.StopTimer()
			b.ReportMetric(ratio, "ratio-vs-bare")
			b.ReportMetric(float64(tCellar.Nanoseconds())/float64(b.N), "cellar-ns/req")
			b.ReportMetric(float64(tBare.Nanoseconds())/float64(b.N), "bare-ns/req")
			if n := r.origin.hits.Load(); n != 1 {
				b.Errorf("origin hits = %d, want 1", n)
			}
		})
	}
}

// interleaved loads the reference URL and cellar's in ten alternating
// rounds of n/10 requests each (which goes first alternates too), so that
// a burst of noise on the shared machine hits both alike. It returns the
// total time of each and the median of the rounds' ratios (reference time
// over cellar's; 1.0 = as fast).
func interleaved(b *testing.B, ref, cellar string, n, want int) (tRef, tCellar time.Duration, ratio float64) {
	const rounds = 10
	per := max(n/rounds, 1)
	ratios := make([]float64, 0, rounds)
	for i := range rounds {
		var a, c time.Duration
		if i%2 == 0 {
			a = load(b, ref, per, want)
			c = load(b, cellar, per, want)
		} else {
			c = load(b, cellar, per, want)
			a = load(b, ref, per, want)
		}
		tRef += a
		tCellar += c
		ratios = append(ratios, float64(a)/float64(c))
	}
	slices.Sort(ratios)
	return tRef, tCellar, (ratios[rounds/2-1] + ratios[rounds/2]) / 2
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

// BenchmarkLargeDiskHit measures hits of an 8 MiB object, which lives on
// disk only (above the memory tier's object limit), against a bare
// net/http server sending the same bytes from a file (http.ServeContent on
// an *os.File: sendfile), in the same run (ratio-vs-file; 1.0 = as fast).
func BenchmarkLargeDiskHit(b *testing.B) {
	const size = 8 << 20
	body := make([]byte, size)
	for i := range body {
		body[i] = byte(i*7 + i/4096)
	}
	r := newRig(b, func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Cache-Control", "max-age=3600")
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Write(body)
	})
	r.server.clock = nil
	path := filepath.Join(b.TempDir(), "obj")
	if err := os.WriteFile(path, body, 0o600); err != nil {
		b.Fatal(err)
	}
	bare := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		f, err := os.Open(path)
		if err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		defer f.Close()
		w.Header().Set("Content-Type", "application/octet-stream")
		http.ServeContent(w, req, "", time.Time{}, f)
	}))
	b.Cleanup(bare.Close)
	r.get("/big")
	r.waitIdle()
	if resp, _ := r.get("/big"); !isHit(resp.Header.Get("Cache-Status")) {
		b.Fatalf("not a hit: %q", resp.Header.Get("Cache-Status"))
	}
	b.SetBytes(size)
	b.ReportAllocs()
	b.ResetTimer()
	tFile, tCellar, ratio := interleaved(b, bare.URL+"/big", r.front.URL+"/big", b.N, size)
	b.StopTimer()
	b.ReportMetric(ratio, "ratio-vs-file")
	b.ReportMetric(float64(size)*float64(b.N)/tCellar.Seconds()/1e6, "cellar-MB/s")
	b.ReportMetric(float64(size)*float64(b.N)/tFile.Seconds()/1e6, "file-MB/s")
}

// discardWriter is a ResponseWriter that keeps the header and drops the
// body, so that a handler's own cost can be measured without a network.
type discardWriter struct{ h http.Header }

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) Write(p []byte) (int, error) { return len(p), nil }
func (w *discardWriter) WriteHeader(int)             {}

// BenchmarkHandlerHit calls cellar's handler for a 1 KiB memory hit
// directly, without HTTP, against a bare handler that serves the same
// bytes from a map, in interleaved rounds, and reports cellar's own cost
// per hit (handler-ns/hit) and the bare handler's (bare-ns/hit). Each call
// gets a new header map, as from net/http. It is less noisy than
// BenchmarkMemoryHit and shows what the handler adds. "octet" is a body
// that is never compressed; "html-br" a compressible one whose stored
// brotli variant is served to a client that accepts it. "octet-defaults"
// is "octet" as cellar serve runs it: access log on (to a discarding
// accesslog.Writer) and the handler wrapped in Metrics.Instrument.
func BenchmarkHandlerHit(b *testing.B) {
	for _, tc := range []struct {
		name, ctype, ae, coding string
		defaults                bool
	}{
		{"octet", "application/octet-stream", "", "", false},
		{"octet-defaults", "application/octet-stream", "", "", true},
		{"html-br", "text/html; charset=utf-8", "gzip, deflate, br, zstd", "br", false},
	} {
		b.Run(tc.name, func(b *testing.B) {
			body := make([]byte, 1<<10)
			for i := range body {
				body[i] = byte('a' + i%26)
			}
			r := newRig(b, func(w http.ResponseWriter, _ *http.Request) {
				w.Header().Set("Cache-Control", "max-age=3600")
				w.Header().Set("Content-Type", tc.ctype)
				w.Header().Set("Etag", `"v1"`)
				w.Write(body)
			}, withProxyOptions(func(o *Options) {
				if tc.defaults {
					on := true
					o.AccessLog, o.AccessLogOutput = &on, accesslog.New(io.Discard, accesslog.Options{})
				}
			}))
			r.server.clock = nil
			var h http.Handler = r.server
			if tc.defaults {
				h = r.server.metrics.Instrument(r.server, nil)
			}
			req := httptest.NewRequest(http.MethodGet, "http://"+testHost+"/obj", nil)
			req.RemoteAddr = "127.0.0.1:1234"
			if tc.ae != "" {
				req.Header.Set("Accept-Encoding", tc.ae)
			}
			r.get("/obj")
			r.waitIdle()
			w := &discardWriter{h: http.Header{}}
			r.server.ServeHTTP(w, req) // schedules the variants of html
			r.waitCodings()
			w.h = http.Header{}
			r.server.ServeHTTP(w, req)
			if !isHit(w.h.Get("Cache-Status")) || w.h.Get("Content-Encoding") != tc.coding {
				b.Fatalf("not a hit in %q: %v", tc.coding, w.h)
			}
			objs := map[string][]byte{"/obj": body}
			bare := http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
				body, ok := objs[req.URL.Path]
				if !ok {
					http.NotFound(w, req)
					return
				}
				w.Header().Set("Content-Type", tc.ctype)
				w.Header().Set("Cache-Control", "max-age=3600")
				w.Write(body)
			})
			run := func(h http.Handler, n int) time.Duration {
				start := time.Now()
				for range n {
					w.h = make(http.Header)
					h.ServeHTTP(w, req)
				}
				return time.Since(start)
			}
			b.ReportAllocs()
			b.ResetTimer()
			var tBare, tCellar time.Duration
			per := max(b.N/10, 1)
			for i := range 10 {
				if i%2 == 0 {
					tBare += run(bare, per)
					tCellar += run(h, per)
				} else {
					tCellar += run(h, per)
					tBare += run(bare, per)
				}
			}
			b.StopTimer()
			n := float64(per * 10)
			b.ReportMetric(float64(tCellar.Nanoseconds())/n, "handler-ns/hit")
			b.ReportMetric(float64(tBare.Nanoseconds())/n, "bare-ns/hit")
		})
	}
}
