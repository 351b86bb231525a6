package bench

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"strings"
)

// Percentile is one point of a latency distribution: the Q-quantile
// (0.5 is the median) was at most Ms milliseconds.
type Percentile struct {
	Q  float64 `json:"q"`
	Ms float64 `json:"ms"`
}

// LatencyQuantiles are the quantiles an HTTPReport keeps in Latency and
// that PlotLatency draws: from the median to the one-in-ten-thousand tail.
var LatencyQuantiles = []float64{0.5, 0.75, 0.9, 0.95, 0.99, 0.995, 0.999, 0.9995, 0.9999}

// PlotLatency draws latency (ms) against percentile, one line per report,
// labelled with the report's Label and its origin offload or hit ratio.
// The x axis is spaced by "nines" (log of 1/(1-q)), so p50, p90, p99 and
// p99.9 are evenly apart, and the y axis is logarithmic, so that a median
// of 0.1 ms and a tail of 100 ms are both readable.
func PlotLatency(title string, reports []HTTPReport) Plot {
	p := Plot{
		Title:   title,
		XLabel:  "percentile (log scale of 1/(1-q))",
		YLabel:  "latency (ms, log scale)",
		LogX:    true,
		LogY:    true,
		XFormat: formatNines,
	}
	for i, r := range reports {
		s := Series{Name: seriesName(i, r), Key: r.Label}
		for _, pt := range r.Latency {
			if pt.Q <= 0 || pt.Q >= 1 {
				continue
			}
			s.X = append(s.X, 1/(1-pt.Q))
			s.Y = append(s.Y, pt.Ms)
		}
		p.Series = append(p.Series, s)
	}
	return p
}

// seriesName is the legend entry of report i: its label and what it saved
// the origin (offload when measured, else the Cache-Status hit ratio).
func seriesName(i int, r HTTPReport) string {
	name := r.Label
	if name == "" {
		name = "run " + strconv.Itoa(i+1)
	}
	switch {
	case r.OriginRequests >= 0 && r.Requests > 0:
		name += fmt.Sprintf(" (%.0f%% off)", 100*r.Offload)
	case r.CacheStatusSeen > 0:
		name += fmt.Sprintf(" (%.0f%% hit)", 100*r.HitRatio)
	}
	return name
}

// formatNines labels x = 1/(1-q) as a percentile: 2 is "p50", 1000 "p99.9".
func formatNines(x float64) string {
	if x <= 0 {
		return ""
	}
	pct := 100 * (1 - 1/x)
	// Round off the float noise of 1/(1-q) without losing p99.95.
	pct = math.Round(pct*1e4) / 1e4
	return "p" + strconv.FormatFloat(pct, 'f', -1, 64)
}

// ReadHTTPReports reads the reports in a `cellar bench http -json` output
// file: one JSON object per line (or several concatenated).
func ReadHTTPReports(path string) ([]HTTPReport, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("reading reports: %w", err)
	}
	defer f.Close()
	var out []HTTPReport
	dec := json.NewDecoder(f)
	dec.DisallowUnknownFields()
	for {
		var r HTTPReport
		if err := dec.Decode(&r); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return nil, fmt.Errorf("reading reports from %s: %w", path, err)
		}
		out = append(out, r)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("reading reports from %s: %w", path, ErrNoReports)
	}
	return out, nil
}

// ErrNoReports is returned by ReadHTTPReports for a file without reports.
var ErrNoReports = errors.New("bench: no reports in file")

// labelFor is the default -label of a run: the proxy's host:port, or
// "origin" for a baseline without a proxy.
func labelFor(proxyURL string) string {
	if proxyURL == "" {
		return "origin"
	}
	s := strings.TrimPrefix(strings.TrimPrefix(proxyURL, "http://"), "https://")
	return strings.TrimSuffix(s, "/")
}
