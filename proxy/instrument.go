package proxy

import (
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/cellar-cache/cellar/internal/h1"
	"github.com/prometheus/client_golang/prometheus"
)

// httpMetrics are the request-level collectors: latency by cache outcome,
// responses by status class, and the origins' response times. They are
// part of Metrics.
type httpMetrics struct {
	duration       *prometheus.HistogramVec // seconds, by outcome
	responses      *prometheus.CounterVec   // by status class
	originDuration *prometheus.HistogramVec // seconds to the response header, by origin
	originFailures *prometheus.CounterVec   // by origin
}

// latencyBuckets span a memory hit (tens of microseconds) to a slow fill.
var latencyBuckets = []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}

func newHTTPMetrics() *httpMetrics {
	return &httpMetrics{
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "cellar", Name: "request_duration_seconds",
			Help:    "Time from a client request's arrival to the end of its response, by cache outcome (hit, stale, miss, pass, as in the response's Cache-Status).",
			Buckets: latencyBuckets,
		}, []string{"outcome"}),
		responses: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "cellar", Name: "responses_total",
			Help: "Responses to clients by status class (1xx, 2xx, 3xx, 4xx, 5xx).",
		}, []string{"code"}),
		originDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "cellar", Name: "origin_response_seconds",
			Help:    "Time from sending a request to an origin to its response header, by origin (host:port).",
			Buckets: latencyBuckets,
		}, []string{"origin"}),
		originFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "cellar", Name: "origin_failures_total",
			Help: "Requests to an origin that got no response (refused, reset, timed out), by origin (host:port).",
		}, []string{"origin"}),
	}
}

func (m *httpMetrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{m.duration, m.responses, m.originDuration, m.originFailures}
}

// observeOrigin records one origin round trip.
func (m *httpMetrics) observeOrigin(host string, d time.Duration, err error) {
	if err != nil {
		m.originFailures.WithLabelValues(host).Inc()
		return
	}
	m.originDuration.WithLabelValues(host).Observe(d.Seconds())
}

// Instrument wraps a proxy handler so that every request is counted in
// cellar_request_duration_seconds by outcome and cellar_responses_total by
// status class. The outcome is read from the Cache-Status the proxy set.
// observe, when not nil, is told each request, its status and its
// Cache-Status once it is answered. The series of every outcome and status
// class are resolved here, once, so that a request only finds its own in
// an array.
func (m *Metrics) Instrument(h http.Handler, observe func(r *http.Request, status int, cacheStatus string)) http.Handler {
	var durations [len(outcomes)]prometheus.Observer
	for o, name := range outcomes {
		durations[o] = m.http.duration.WithLabelValues(name)
	}
	var responses [len(statusClasses)]prometheus.Counter
	for c, name := range statusClasses {
		responses[c] = m.http.responses.WithLabelValues(name)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sw := statusWriters.Get().(*statusWriter)
		sw.ResponseWriter, sw.start = w, time.Now()
		defer func() {
			var cs string
			if v := w.Header()["Cache-Status"]; len(v) > 0 {
				cs = v[0]
			}
			d := sw.elapsed
			if !sw.timed {
				d = time.Since(sw.start)
			}
			durations[outcomeOf(cs)].Observe(d.Seconds())
			if sw.code != 0 {
				responses[statusClass(sw.code)].Inc()
			}
			if observe != nil {
				observe(r, sw.code, cs)
			}
			*sw = statusWriter{}
			statusWriters.Put(sw)
		}()
		h.ServeHTTP(sw, r)
	})
}

// An outcome is what cellar_request_duration_seconds counts a request as:
// its label is outcomes[outcome].
type outcome int

const (
	outcomeHit outcome = iota
	outcomeStale
	outcomeMiss
	outcomePass
)

var outcomes = [...]string{outcomeHit: "hit", outcomeStale: "stale", outcomeMiss: "miss", outcomePass: "pass"}

// outcomeOf maps cellar's Cache-Status member (RFC 9211) to the outcome
// cellar_request_duration_seconds counts: hit, stale, miss or pass.
func outcomeOf(cs string) outcome {
	switch {
	case cs == "":
		return outcomePass // answered without the cache (PURGE, a tunnel)
	case strings.Contains(cs, "; hit"):
		if strings.Contains(cs, "detail=stale") {
			return outcomeStale
		}
		return outcomeHit
	case strings.Contains(cs, "detail=stale-if-error"):
		return outcomeStale
	case strings.Contains(cs, "fwd=bypass"), strings.Contains(cs, "fwd=method"),
		strings.Contains(cs, "detail=not-shareable"), strings.Contains(cs, "detail=hit-for-miss"):
		return outcomePass
	case strings.Contains(cs, "; stored"), strings.Contains(cs, "detail="), strings.Contains(cs, "fwd-status=304"):
		// Stored, revalidated, or a shareable response that could not be
		// stored or fetched (store-unavailable, wait-timeout, origin-*).
		return outcomeMiss
	case strings.Contains(cs, "fwd="):
		return outcomePass // the fill's leader got a response it may not share
	}
	return outcomeMiss
}

// statusClasses are the labels of cellar_responses_total, by statusClass.
var statusClasses = [...]string{"1xx", "2xx", "3xx", "4xx", "5xx", "other"}

// statusClass is code's index in statusClasses.
func statusClass(code int) int {
	if code >= 100 && code < 600 {
		return code/100 - 1
	}
	return len(statusClasses) - 1
}

// statusWriters recycles the statusWriters of answered requests.
var statusWriters = sync.Pool{New: func() any { return new(statusWriter) }}

// statusWriter notes the final status of a response and when its request
// arrived, which the Server inside reads instead of the clock (and, when
// it logs the request, tells the duration: timed). It passes Flush,
// ReadFrom (sendfile) and, through Unwrap, everything else
// http.ResponseController offers.
type statusWriter struct {
	http.ResponseWriter
	code    int
	start   time.Time
	elapsed time.Duration // with timed: the request's duration, from the Server
	timed   bool
}

func (w *statusWriter) WriteHeader(code int) {
	if w.code == 0 && (code >= 200 || code == http.StatusSwitchingProtocols) {
		w.code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) ReadFrom(src io.Reader) (int64, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return io.Copy(w.ResponseWriter, src)
}

func (w *statusWriter) Flush() { http.NewResponseController(w.ResponseWriter).Flush() }

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// PresetFields passes ready-made header fields on (prepared.go).
func (w *statusWriter) PresetFields(f *h1.Fields) bool { return presetFields(w.ResponseWriter, f) }

// OriginState is one origin's state in the round robin.
type OriginState struct {
	URL     string `json:"url"`
	Healthy bool   `json:"healthy"`
}

// Origins reports every origin the server forwards to (its sites' and the
// default ones, each once) and whether the round robin takes it now.
func (s *Server) Origins() []OriginState {
	now := s.now()
	var out []OriginState
	seen := map[*upstream]bool{}
	for _, st := range s.transport.sites {
		for _, c := range append(append([]candidate(nil), st.primary...), st.backup...) {
			if !seen[c.u] {
				seen[c.u] = true
				out = append(out, OriginState{URL: c.u.url.String(), Healthy: c.u.healthy(now)})
			}
		}
	}
	return out
}
