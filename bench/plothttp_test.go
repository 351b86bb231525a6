package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"errors"
	"image/png"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestFormatNinesLabelsPercentiles(t *testing.T) {
	tests := []struct {
		q    float64
		want string
	}{
		{0.5, "p50"}, {0.9, "p90"}, {0.99, "p99"}, {0.999, "p99.9"}, {0.9995, "p99.95"}, {0.9999, "p99.99"},
	}
	for _, tt := range tests {
		if got := formatNines(1 / (1 - tt.q)); got != tt.want {
			t.Errorf("q %v: %q, want %q", tt.q, got, tt.want)
		}
	}
}

func TestRunHTTPReportKeepsTheLatencyDistribution(t *testing.T) {
	var out bytes.Buffer
	err := RunHTTP(context.Background(), []string{"-requests", "400", "-objects", "30", "-concurrency", "2", "-json", "-label", "base"}, &out, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	var rep HTTPReport
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatal(err)
	}
	if rep.Label != "base" {
		t.Errorf("label %q, want base", rep.Label)
	}
	if len(rep.Latency) != len(LatencyQuantiles) {
		t.Fatalf("%d percentiles, want %d", len(rep.Latency), len(LatencyQuantiles))
	}
	for i, pt := range rep.Latency {
		if pt.Q != LatencyQuantiles[i] || pt.Ms <= 0 || pt.Ms > rep.Max {
			t.Errorf("percentile %d = %+v, want q %v, 0 < ms <= max %v", i, pt, LatencyQuantiles[i], rep.Max)
		}
		if i > 0 && pt.Ms < rep.Latency[i-1].Ms {
			t.Errorf("q%v = %v ms is below q%v = %v ms", pt.Q, pt.Ms, rep.Latency[i-1].Q, rep.Latency[i-1].Ms)
		}
	}
	if rep.Latency[0].Ms != rep.P50 || rep.Latency[4].Ms != rep.P99 {
		t.Errorf("p50/p99 %v/%v differ from the report's %v/%v", rep.Latency[0].Ms, rep.Latency[4].Ms, rep.P50, rep.P99)
	}
}

// TestRunHTTPPlotsOneLinePerTarget draws a run beside an earlier run's
// -json report, as bench/peers.sh does for cellar, Varnish and nginx.
func TestRunHTTPPlotsOneLinePerTarget(t *testing.T) {
	dir := t.TempDir()
	earlier := filepath.Join(dir, "first.json")
	var out bytes.Buffer
	if err := RunHTTP(context.Background(), []string{"-requests", "300", "-objects", "30", "-concurrency", "2", "-json", "-label", "first"}, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(earlier, out.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, ext := range []string{"svg", "png"} {
		plot := filepath.Join(dir, "latency."+ext)
		args := []string{"-requests", "300", "-objects", "30", "-concurrency", "2", "-plot", plot, "-plot-with", earlier}
		var table bytes.Buffer
		if err := RunHTTP(context.Background(), args, &table, io.Discard); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(table.String(), "target") || !strings.Contains(table.String(), "origin") {
			t.Errorf("table does not name the target:\n%s", table.String())
		}
		data, err := os.ReadFile(plot)
		if err != nil {
			t.Fatal(err)
		}
		if ext == "png" {
			img, err := png.Decode(bytes.NewReader(data))
			if err != nil {
				t.Fatal(err)
			}
			if b := img.Bounds(); b.Dx() != plotW || b.Dy() != plotH {
				t.Errorf("png is %v", b)
			}
			// Both lines are drawn, each in its target's colour.
			for _, c := range seriesColors([]string{"first", "origin"}) {
				found := false
				for y := 0; y < plotH && !found; y++ {
					for x := 0; x < plotW && !found; x++ {
						r, g, b, _ := img.At(x, y).RGBA()
						found = uint8(r>>8) == c.R && uint8(g>>8) == c.G && uint8(b>>8) == c.B
					}
				}
				if !found {
					t.Errorf("png has no pixel of colour %v", c)
				}
			}
			continue
		}
		circles := map[string]int{}
		dec := xml.NewDecoder(bytes.NewReader(data))
		for {
			tok, err := dec.Token()
			if err == io.EOF {
				break
			} else if err != nil {
				t.Fatalf("svg is not well-formed: %v", err)
			}
			if el, ok := tok.(xml.StartElement); ok && el.Name.Local == "circle" {
				for _, a := range el.Attr {
					if a.Name.Local == "fill" {
						circles[a.Value]++
					}
				}
			}
		}
		// One marker per percentile and one in the legend, for each target.
		for i, c := range seriesColors([]string{"first", "origin"}) {
			if got, want := circles[hexColor(c)], len(LatencyQuantiles)+1; got != want {
				t.Errorf("series %d: %d markers, want %d", i, got, want)
			}
		}
		if n := len(circles); n != 2 {
			t.Errorf("markers in %d colours, want 2", n)
		}
		for _, want := range []string{">first (0% off)</text>", ">origin (0% off)</text>", ">latency (ms, log scale)</text>", ">p50</text>", ">p99.9</text>"} {
			if !bytes.Contains(data, []byte(want)) {
				t.Errorf("svg lacks %s", want)
			}
		}
	}
}

func TestRunHTTPRejectsBadPlotFlags(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty.json")
	if err := os.WriteFile(empty, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"gif", []string{"-plot", "x.gif"}, "-plot"},
		{"with without plot", []string{"-plot-with", empty}, "-plot-with needs -plot"},
		{"empty report file", []string{"-plot", filepath.Join(dir, "p.svg"), "-plot-with", empty}, "no reports"},
		{"missing report file", []string{"-plot", filepath.Join(dir, "p.svg"), "-plot-with", filepath.Join(dir, "nope.json")}, "nope.json"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := RunHTTP(context.Background(), tt.args, io.Discard, io.Discard)
			if !errors.Is(err, ErrUsage) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want ErrUsage naming %q", err, tt.want)
			}
		})
	}
	if _, err := os.Stat(filepath.Join(dir, "p.svg")); err == nil {
		t.Errorf("a plot was written although the flags were bad")
	}
}

func TestLogYSpacesDecadesEvenly(t *testing.T) {
	tests := []struct {
		name   string
		logY   bool
		ys     []float64
		evenly bool // equal pixel steps between successive points
	}{
		{"log scale, decades", true, []float64{0.1, 1, 10, 100}, true},
		{"linear scale, decades", false, []float64{0.1, 1, 10, 100}, false},
		{"linear scale, steps of 10", false, []float64{10, 20, 30, 40}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := Plot{LogY: tt.logY, Series: []Series{{Name: "s", X: []float64{1, 2, 3, 4}, Y: tt.ys}}}
			d := p.layout()
			// The first len(ys) markers are the points, the last the legend.
			ms := d.markers[:len(tt.ys)]
			step := ms[0].y - ms[1].y
			even := true
			for i := 1; i < len(ms); i++ {
				if got := ms[i-1].y - ms[i].y; got <= 0 || math.Abs(got-step) > 0.5 {
					even = false
				}
			}
			if even != tt.evenly {
				t.Errorf("points at y %v: evenly spaced %v, want %v", []float64{ms[0].y, ms[1].y, ms[2].y, ms[3].y}, even, tt.evenly)
			}
		})
	}
}
