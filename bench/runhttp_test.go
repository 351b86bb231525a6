package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// cachingProxy is a tiny in-test shared cache: it keeps up to max 200
// responses whole, in a map, and says what it did in Cache-Status.
type cachingProxy struct {
	upstream string
	client   *http.Client
	max      int

	mu      sync.Mutex // protects entries
	entries map[string][]byte
}

func (c *cachingProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c.mu.Lock()
	body, ok := c.entries[r.URL.Path]
	c.mu.Unlock()
	if ok {
		w.Header().Set("Cache-Status", "testcache; hit")
		w.Write(body)
		return
	}
	resp, err := c.client.Get(c.upstream + r.URL.Path)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	body, err = io.ReadAll(resp.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	c.mu.Lock()
	if len(c.entries) < c.max && resp.StatusCode == http.StatusOK {
		c.entries[r.URL.Path] = body
	}
	c.mu.Unlock()
	w.Header().Set("Cache-Status", "upstream; hit, testcache; fwd=miss; stored")
	w.WriteHeader(resp.StatusCode)
	w.Write(body)
}

func TestReplayerMeasuresOffloadAndHitRatioThroughAProxy(t *testing.T) {
	z, err := NewZipf(ZipfOptions{Objects: 100, Exponent: 1, Seed: 3, Size: SizeDist{Median: 2000, Sigma: 1}})
	if err != nil {
		t.Fatal(err)
	}
	origin := NewOrigin(OriginOptions{SizeOf: z.SizeOf})
	originSrv := httptest.NewServer(origin)
	defer originSrv.Close()
	proxy := &cachingProxy{upstream: originSrv.URL, client: originSrv.Client(), max: 200, entries: map[string][]byte{}}
	proxySrv := httptest.NewServer(proxy)
	defer proxySrv.Close()

	const n = 2000
	rp := &Replayer{
		BaseURL:     proxySrv.URL,
		Next:        func() (Request, bool) { return z.Next(), true },
		Concurrency: 4,
		Requests:    n,
		Origin:      origin,
	}
	rep, err := rp.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if rep.Requests != n || rep.Errors != 0 {
		t.Fatalf("requests %d, errors %d; want %d, 0", rep.Requests, rep.Errors, n)
	}
	if rep.CacheStatusSeen != n {
		t.Errorf("Cache-Status read on %d responses, want %d", rep.CacheStatusSeen, n)
	}
	// Every miss, and only a miss, reaches the origin once.
	if rep.OriginRequests != n-rep.CacheHits {
		t.Errorf("origin saw %d requests, want misses = %d", rep.OriginRequests, n-rep.CacheHits)
	}
	if rep.Offload != rep.HitRatio {
		t.Errorf("offload %v != hit ratio %v", rep.Offload, rep.HitRatio)
	}
	// At most 100 objects, each missed at most by the 4 workers at once.
	if rep.CacheHits < n-400 {
		t.Errorf("hits %d, want at least %d", rep.CacheHits, n-400)
	}
	if !(rep.P50 > 0 && rep.P50 <= rep.P99 && rep.P99 <= rep.P999 && rep.P999 <= rep.Max) {
		t.Errorf("latencies not ordered: %+v", rep)
	}
	if want := origin.Counts().Bytes; rep.Bytes < want {
		t.Errorf("client read %d bytes, less than the origin's %d", rep.Bytes, want)
	}
}

func TestReplayerStopsAtTheEndOfTheWorkloadAndOnDuration(t *testing.T) {
	origin := NewOrigin(OriginOptions{})
	srv := httptest.NewServer(origin)
	defer srv.Close()

	left := 30
	rep, err := (&Replayer{BaseURL: srv.URL, Next: func() (Request, bool) { left--; return Request{Key: 1, Size: 1}, left >= 0 }}).Run(context.Background())
	if err != nil || rep.Requests != 30 {
		t.Errorf("finite workload: %d requests, %v; want 30", rep.Requests, err)
	}
	// An endless workload with a duration bound ends by itself.
	rep, err = (&Replayer{BaseURL: srv.URL, Next: func() (Request, bool) { return Request{Key: 2, Size: 1}, true }, Duration: 500 * time.Millisecond}).Run(context.Background())
	if err != nil || rep.Requests == 0 {
		t.Errorf("duration-bound workload: %d requests, %v", rep.Requests, err)
	}
}

func TestOriginAnswersConditionalRequestsWith304(t *testing.T) {
	origin := NewOrigin(OriginOptions{SizeOf: func(uint64) int64 { return 10 }, CacheControl: "max-age=5"})
	rec := httptest.NewRecorder()
	origin.ServeHTTP(rec, httptest.NewRequest("GET", "/o/7", nil))
	if rec.Code != 200 || rec.Body.Len() != 10 || rec.Header().Get("Cache-Control") != "max-age=5" {
		t.Fatalf("GET: %d, %d bytes, Cache-Control %q", rec.Code, rec.Body.Len(), rec.Header().Get("Cache-Control"))
	}
	req := httptest.NewRequest("GET", "/o/7", nil)
	req.Header.Set("If-None-Match", rec.Header().Get("ETag"))
	rec = httptest.NewRecorder()
	origin.ServeHTTP(rec, req)
	if rec.Code != http.StatusNotModified {
		t.Errorf("conditional GET: %d, want 304", rec.Code)
	}
	rec = httptest.NewRecorder()
	origin.ServeHTTP(rec, httptest.NewRequest("GET", "/other", nil))
	if rec.Code != http.StatusNotFound {
		t.Errorf("GET /other: %d, want 404", rec.Code)
	}
	if c := origin.Counts(); c.Requests != 2 || c.NotModified != 1 || c.Bytes != 10 {
		t.Errorf("counts %+v, want 2 requests, 1 not modified, 10 bytes", c)
	}
}

func TestParseCacheOutcomeReadsTheNearestCache(t *testing.T) {
	tests := []struct {
		name   string
		header http.Header
		want   cacheOutcome
	}{
		{"hit", http.Header{"Cache-Status": {"cellar; hit"}}, cacheHit},
		{"forwarded miss", http.Header{"Cache-Status": {"cellar; fwd=uri-miss; stored"}}, cacheMiss},
		{"last member is nearest", http.Header{"Cache-Status": {"origin-cache; hit, cellar; fwd=miss"}}, cacheMiss},
		{"split over fields", http.Header{"Cache-Status": {"cdn; fwd=miss", "cellar; hit; ttl=30"}}, cacheHit},
		{"varnish x-cache", http.Header{"X-Cache": {"HIT"}}, cacheHit},
		{"nginx miss", http.Header{"X-Cache-Status": {"MISS"}}, cacheMiss},
		{"nginx stale", http.Header{"X-Cache-Status": {"STALE"}}, cacheHit},
		{"nothing", http.Header{}, cacheUnknown},
	}
	for _, tt := range tests {
		if got := parseCacheOutcome(tt.header); got != tt.want {
			t.Errorf("%s: got %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestLatencyHistQuantilesWithinResolution(t *testing.T) {
	var h latencyHist
	for i := 1; i <= 10000; i++ {
		h.add(time.Duration(i) * time.Microsecond)
	}
	for _, q := range []float64{0.5, 0.99, 0.999} {
		want := q * 10000 * float64(time.Microsecond)
		got := float64(h.quantile(q))
		if got < want || got > want*1.035 {
			t.Errorf("q%v = %v, want %v within +3.5%%", q, time.Duration(got), time.Duration(want))
		}
	}
	if h.quantile(1) != 10*time.Millisecond {
		t.Errorf("q1 = %v, want the maximum 10ms", h.quantile(1))
	}
}

func TestRunHTTPAgainstItsOwnOrigin(t *testing.T) {
	var out, errOut bytes.Buffer
	err := RunHTTP(context.Background(), []string{"-requests", "300", "-objects", "50", "-concurrency", "3", "-json"}, &out, &errOut)
	if err != nil {
		t.Fatalf("%v; stderr: %s", err, errOut.String())
	}
	var rep HTTPReport
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatalf("%v in %q", err, out.String())
	}
	// No proxy: every request reaches the origin.
	if rep.Requests != 300 || rep.OriginRequests != 300 || rep.Offload != 0 {
		t.Errorf("report %+v, want 300 requests all at the origin", rep)
	}
	if !strings.Contains(errOut.String(), "origin listening on http://127.0.0.1:") {
		t.Errorf("stderr %q does not give the origin's address", errOut.String())
	}
}

func TestRunHTTPRejectsBadFlags(t *testing.T) {
	err := RunHTTP(context.Background(), []string{"-concurrency", "0", "-proxy", "ftp://x", "-size-median", "big"}, io.Discard, io.Discard)
	if !errors.Is(err, ErrUsage) {
		t.Fatalf("err = %v, want ErrUsage", err)
	}
	for _, f := range []string{"-concurrency", "-proxy", "-size-median"} {
		if !strings.Contains(err.Error(), f) {
			t.Errorf("error %q does not name %s", err, f)
		}
	}
}

// TestRunHTTPFailsWhenRequestsFail points bench http at a proxy address
// where nothing listens: every request fails, so the command exits with an
// error that breaks the failures down, the table says so, and the offload
// is not reported as 100%.
func TestRunHTTPFailsWhenRequestsFail(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + ln.Addr().String()
	ln.Close()
	var out, errOut bytes.Buffer
	err = RunHTTP(context.Background(), []string{"-proxy", dead, "-requests", "20", "-concurrency", "2"}, &out, &errOut)
	if !errors.Is(err, ErrRequestsFailed) || !strings.Contains(err.Error(), "20 of 20") || !strings.Contains(err.Error(), "20 connection refused") {
		t.Errorf("err = %v, want ErrRequestsFailed saying 20 of 20 failed, 20 connection refused", err)
	}
	for _, want := range []string{"20 connection refused", "n/a (every request failed)"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, out.String())
		}
	}
	if strings.Contains(out.String(), "100.00%") {
		t.Errorf("report claims 100%% offload:\n%s", out.String())
	}

	// -max-errors tolerates a share of failures.
	err = RunHTTP(context.Background(), []string{"-proxy", dead, "-requests", "5", "-max-errors", "1", "-json"}, &out, &errOut)
	if err != nil {
		t.Errorf("with -max-errors 1: %v", err)
	}
}
