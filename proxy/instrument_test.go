package proxy

import (
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"

	"github.com/cellar-cache/cellar/internal/proxytest"
)

// TestInstrumentAgreesWithRequestsTotal sends hits, misses, passes (no-store,
// private, hit-for-miss, POST), a revalidation and stale answers through
// Instrument and checks that the latency histogram counts each outcome as
// cellar_requests_total does, and responses by status class.
func TestInstrumentAgreesWithRequestsTotal(t *testing.T) {
	r := newRig(t, func(w http.ResponseWriter, req *http.Request) {
		switch req.URL.Path {
		case "/nostore":
			w.Header().Set("Cache-Control", "no-store")
		case "/private":
			w.Header().Set("Cache-Control", "private")
		case "/gone":
			w.Header().Set("Cache-Control", "no-store")
			w.WriteHeader(http.StatusNotFound)
		case "/etag":
			w.Header().Set("Cache-Control", "max-age=10")
			w.Header().Set("ETag", `"v1"`)
			if req.Header.Get("If-None-Match") == `"v1"` {
				w.WriteHeader(http.StatusNotModified)
				return
			}
		case "/swr":
			w.Header().Set("Cache-Control", "max-age=10, stale-while-revalidate=600")
		default:
			w.Header().Set("Cache-Control", "max-age=600")
		}
		io.WriteString(w, "body")
	})
	front := httptest.NewServer(r.server.metrics.Instrument(r.server, nil))
	defer front.Close()
	do := func(method, path string) {
		t.Helper()
		proxytest.Do(t, front.Client(), front.URL, testHost, method, path, nil)
	}
	for _, p := range []string{"/a", "/a", "/nostore", "/nostore", "/private", "/gone", "/etag", "/swr"} {
		do(http.MethodGet, p)
	}
	do(http.MethodPost, "/a")
	r.clock.advance(20 * time.Second)
	do(http.MethodGet, "/etag") // stale: revalidated with a 304
	do(http.MethodGet, "/swr")  // stale-while-revalidate
	r.waitIdle()

	m := r.server.metrics
	// A request is observed when its handler returns, which may be just
	// after its client has read the whole response.
	waitFor(t, "every request is observed", func() bool {
		var n uint64
		for _, o := range []string{"hit", "stale", "miss", "pass"} {
			n += histogramCount(t, m.http.duration.WithLabelValues(o))
		}
		return n == 11
	})
	for _, o := range []string{"hit", "stale", "miss", "pass"} {
		want := testutil.ToFloat64(m.requests.WithLabelValues(o))
		if got := histogramCount(t, m.http.duration.WithLabelValues(o)); got != uint64(want) {
			t.Errorf("outcome %s: histogram counted %d, cellar_requests_total %v", o, got, want)
		}
	}
	if got := testutil.ToFloat64(m.requests.WithLabelValues("pass")); got != 5 {
		t.Errorf("passes = %v, want 5 (no-store twice, private, 404 no-store, POST)", got)
	}
	if got := testutil.ToFloat64(m.http.responses.WithLabelValues("4xx")); got != 1 {
		t.Errorf("4xx responses = %v, want 1", got)
	}
	if got := testutil.ToFloat64(m.http.responses.WithLabelValues("2xx")); got != 10 {
		t.Errorf("2xx responses = %v, want 10", got)
	}
}

func histogramCount(t *testing.T, o prometheus.Observer) uint64 {
	t.Helper()
	h := o.(prometheus.Histogram)
	ch := make(chan prometheus.Metric, 1)
	h.Collect(ch)
	var pb dto.Metric
	if err := (<-ch).Write(&pb); err != nil {
		t.Fatal(err)
	}
	return pb.GetHistogram().GetSampleCount()
}
