package main

import (
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cellar-cache/cellar/store"
)

// metricValue returns the value of the sample line that starts with
// series in a Prometheus text exposition, or -1.
func metricValue(exposition, series string) float64 {
	for _, line := range strings.Split(exposition, "\n") {
		if rest, ok := strings.CutPrefix(line, series+" "); ok {
			v, err := strconv.ParseFloat(rest, 64)
			if err == nil {
				return v
			}
		}
	}
	return -1
}

// TestMetricsAndReadiness serves a hit, a miss, a pass and a 404 through
// a running cellar, then checks the operator's view: latency histograms
// by outcome, responses by status class, origin response time and health
// per origin, open connections, and /readyz's JSON detail.
func TestMetricsAndReadiness(t *testing.T) {
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/missing":
			w.Header().Set("Cache-Control", "no-store")
			http.NotFound(w, r)
		case "/private":
			w.Header().Set("Cache-Control", "private")
			io.WriteString(w, "mine")
		default:
			w.Header().Set("Cache-Control", "max-age=60")
			io.WriteString(w, "shared")
		}
	}))
	defer origin.Close()
	r, err := startServe(t, "-origin", origin.URL, "-data-dir", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + r.proxy
	for _, p := range []string{"/page", "/page", "/private", "/missing"} {
		get(t, base+p)
	}
	originHost := strings.TrimPrefix(origin.URL, "http://")
	// A request is counted when its handler returns, which may be just
	// after its client has read the whole response, and its collectors
	// one after the other: wait (bounded) until every figure is there.
	want := map[string]float64{
		`cellar_request_duration_seconds_count{outcome="hit"}`:              1,
		`cellar_request_duration_seconds_count{outcome="miss"}`:             1,
		`cellar_request_duration_seconds_count{outcome="pass"}`:             2,
		`cellar_requests_total{outcome="pass"}`:                             2,
		`cellar_responses_total{code="2xx"}`:                                3,
		`cellar_responses_total{code="4xx"}`:                                1,
		`cellar_origin_response_seconds_count{origin="` + originHost + `"}`: 3,
		`cellar_origin_up{origin="` + originHost + `"}`:                     1,
		`cellar_config_generation`:                                          0,
	}
	counted := func(m string) bool {
		for series, v := range want {
			if metricValue(m, series) != v {
				return false
			}
		}
		return true
	}
	var m string
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		if _, m = get(t, "http://"+r.admin+"/metrics"); counted(m) || time.Now().After(deadline) {
			break
		}
	}
	for series, want := range want {
		if got := metricValue(m, series); got != want {
			t.Errorf("%s = %v, want %v", series, got, want)
		}
	}
	if got := metricValue(m, "cellar_client_connections"); got < 1 {
		t.Errorf("cellar_client_connections = %v, want at least the keep-alive connection", got)
	}
	if !regexp.MustCompile(`cellar_request_duration_seconds_bucket\{outcome="hit",le="0.0001"\}`).MatchString(m) {
		t.Error("no histogram buckets for hits")
	}

	code, rd := readyz(t, r.admin)
	if code != http.StatusOK || !rd.Ready || len(rd.Listeners) != 2 || rd.Store.Disk != store.DiskOnline || rd.Store.DiskObjects < 1 ||
		len(rd.Origins) != 1 || !rd.Origins[0].Healthy || rd.Config.LoadedAt.IsZero() {
		t.Errorf("/readyz: %d %+v", code, rd)
	}
}
