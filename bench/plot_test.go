package bench

import (
	"bytes"
	"image/png"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// TestPlotLegendFitsTheCanvas draws a latency plot whose legend entries
// are long: the canvas widens so that every entry ends inside it, in SVG
// and PNG.
func TestPlotLegendFitsTheCanvas(t *testing.T) {
	long := "varnish-7.1 behind haproxy, 4 threads, keep-alive"
	p := PlotLatency("Latency", []HTTPReport{
		{Label: long, OriginRequests: -1, Latency: []Percentile{{0.5, 1}, {0.99, 5}}},
		{Label: "cellar", OriginRequests: -1, Latency: []Percentile{{0.5, 0.5}, {0.99, 2}}},
	})
	var svg bytes.Buffer
	if err := p.WriteSVG(&svg); err != nil {
		t.Fatal(err)
	}
	width, _ := strconv.Atoi(regexp.MustCompile(`<svg [^>]*width="(\d+)"`).FindStringSubmatch(svg.String())[1])
	m := regexp.MustCompile(`<text x="([\d.]+)"[^>]*text-anchor="start">` + regexp.QuoteMeta(long)).FindStringSubmatch(svg.String())
	if m == nil {
		t.Fatalf("no legend entry for %q", long)
	}
	x, _ := strconv.ParseFloat(m[1], 64)
	if end := x + legendCharW*float64(len(long)); end > float64(width) {
		t.Errorf("legend entry ends at %.0f, beyond the %d px canvas", end, width)
	}
	var pngBuf bytes.Buffer
	if err := p.WritePNG(&pngBuf); err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(&pngBuf)
	if err != nil {
		t.Fatal(err)
	}
	if img.Bounds().Dx() != width {
		t.Errorf("PNG is %d px wide, SVG %d", img.Bounds().Dx(), width)
	}
}

// TestPlotDrawsByteHitRatio checks that results with byte capacities get a
// dashed byte hit ratio line per policy, beside the hit ratio, in the
// policy's colour.
func TestPlotDrawsByteHitRatio(t *testing.T) {
	res := []Result{
		{Policy: "lru", Capacity: 1 << 20, Bytes: true, HitRatio: 0.5, ByteHitRatio: 0.3},
		{Policy: "lru", Capacity: 4 << 20, Bytes: true, HitRatio: 0.7, ByteHitRatio: 0.6},
	}
	p := PlotFromResults("t", res)
	if len(p.Series) != 2 || !p.Series[1].Dashed || p.Series[1].Y[0] != 30 || p.Series[1].Y[1] != 60 || p.Series[1].Key != "lru" {
		t.Fatalf("series %+v, want lru and a dashed lru (bytes) at 30%% and 60%%", p.Series)
	}
	var svg bytes.Buffer
	if err := p.WriteSVG(&svg); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(svg.String(), `stroke-dasharray`) || !strings.Contains(svg.String(), "lru (bytes)") {
		t.Error("the SVG has no dashed byte hit ratio line")
	}
}

// TestPlotColoursFollowThePolicy draws two plots with the policies in
// different orders: each policy keeps its colour.
func TestPlotColoursFollowThePolicy(t *testing.T) {
	colourOf := func(policies ...string) map[string]string {
		var res []Result
		for _, pol := range policies {
			res = append(res, Result{Policy: pol, Capacity: 10, HitRatio: 0.5})
		}
		var svg bytes.Buffer
		if err := PlotFromResults("t", res).WriteSVG(&svg); err != nil {
			t.Fatal(err)
		}
		out := map[string]string{}
		re := regexp.MustCompile(`<circle cx="[\d.]+" cy="[\d.]+" r="3.5" fill="(#[0-9a-f]{6})"/>`)
		fills := re.FindAllStringSubmatch(svg.String(), -1)
		// Each series draws its point's marker, then its legend's.
		for i, pol := range policies {
			out[pol] = fills[2*i+1][1]
		}
		return out
	}
	a := colourOf("lru", "opt", "ristretto")
	b := colourOf("ristretto", "opt", "cellar", "lru")
	for _, pol := range []string{"lru", "opt", "ristretto"} {
		if a[pol] != b[pol] {
			t.Errorf("%s is %s in one plot and %s in the other", pol, a[pol], b[pol])
		}
	}
	if a["lru"] == a["opt"] || a["opt"] == a["ristretto"] {
		t.Errorf("policies share a colour: %v", a)
	}
	if seriesColor("cellar at 10.0.0.2") != seriesColor("cellar at 10.0.0.2") {
		t.Error("a label's colour is not stable")
	}
}
