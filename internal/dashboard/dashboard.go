// Package dashboard is the admin listener's web page: live hit ratio,
// request rate, latency percentiles, origin health, tier usage, top URLs,
// recent purges and errors, and purge and inspect forms that call the
// admin API with the operator's token. The page and its script are
// embedded; it loads nothing from elsewhere. It reads the figures from
// the Prometheus registry and a Tracker, as JSON, once a second.
package dashboard

import (
	_ "embed"
	"encoding/json"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

//go:embed index.html
var page []byte

// Options are what the dashboard reads.
type Options struct {
	// Gatherer has cellar's metrics (cellar_requests_total,
	// cellar_request_duration_seconds, cellar_responses_total,
	// cellar_client_connections).
	Gatherer prometheus.Gatherer
	// Tracker has the top URLs and the recent errors and purges.
	Tracker *Tracker
	// Status returns the readiness report (listeners, store usage and
	// budgets, origins, config), passed through as "status".
	Status func() any
}

// Snapshot is the JSON the page polls: cumulative figures, of which the
// page shows the differences between two polls.
type Snapshot struct {
	Time        time.Time          `json:"time"`
	Requests    map[string]float64 `json:"requests"`  // by outcome
	Responses   map[string]float64 `json:"responses"` // by status class
	Latency     Histogram          `json:"latency"`   // every outcome
	Connections float64            `json:"connections"`
	Status      any                `json:"status"`
	TopURLs     []URLCount         `json:"top_urls"`
	Errors      []Event            `json:"errors"`
	Purges      []Event            `json:"purges"`
}

// Histogram is a cumulative histogram: Counts[i] observations were at
// most LE[i] seconds; Count is the total.
type Histogram struct {
	LE     []float64 `json:"le"`
	Counts []float64 `json:"counts"`
	Count  float64   `json:"count"`
}

// Handler serves the page at / and its figures at /dashboard.json.
func Handler(o Options) http.Handler {
	m := http.NewServeMux()
	m.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Type", "text/html; charset=utf-8")
		h.Set("Cache-Control", "no-store")
		h.Set("Content-Security-Policy", "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:")
		h.Set("X-Content-Type-Options", "nosniff")
		w.Write(page)
	})
	m.HandleFunc("GET /dashboard.json", func(w http.ResponseWriter, r *http.Request) {
		snap, err := o.snapshot()
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		json.NewEncoder(w).Encode(snap)
	})
	return m
}

func (o Options) snapshot() (*Snapshot, error) {
	fams, err := o.Gatherer.Gather()
	if err != nil {
		return nil, err
	}
	s := &Snapshot{Time: time.Now().UTC(), Requests: map[string]float64{}, Responses: map[string]float64{}}
	for _, f := range fams {
		switch f.GetName() {
		case "cellar_requests_total":
			sumByLabel(f, "outcome", s.Requests)
		case "cellar_responses_total":
			sumByLabel(f, "code", s.Responses)
		case "cellar_client_connections":
			for _, m := range f.GetMetric() {
				s.Connections += m.GetGauge().GetValue()
			}
		case "cellar_request_duration_seconds":
			s.Latency = mergeHistograms(f.GetMetric())
		}
	}
	if o.Tracker != nil {
		s.TopURLs = o.Tracker.Top(10)
		s.Errors, s.Purges = o.Tracker.Recent()
	}
	if o.Status != nil {
		s.Status = o.Status()
	}
	return s, nil
}

// sumByLabel adds each counter of f to into, by the value of label.
func sumByLabel(f *dto.MetricFamily, label string, into map[string]float64) {
	for _, m := range f.GetMetric() {
		for _, lp := range m.GetLabel() {
			if lp.GetName() == label {
				into[lp.GetValue()] += m.GetCounter().GetValue()
			}
		}
	}
}

// mergeHistograms adds histograms with the same buckets (one per outcome).
func mergeHistograms(ms []*dto.Metric) Histogram {
	var h Histogram
	for _, m := range ms {
		hist := m.GetHistogram()
		for i, b := range hist.GetBucket() {
			if i >= len(h.LE) {
				h.LE = append(h.LE, b.GetUpperBound())
				h.Counts = append(h.Counts, 0)
			}
			h.Counts[i] += float64(b.GetCumulativeCount())
		}
		h.Count += float64(hist.GetSampleCount())
	}
	return h
}
