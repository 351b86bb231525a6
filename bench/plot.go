package bench

import (
	"bufio"
	"cmp"
	"fmt"
	"hash/fnv"
	"html"
	"image"
	"image/color"
	"image/png"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/image/font"
	"golang.org/x/image/font/basicfont"
	"golang.org/x/image/math/fixed"
)

// Plot is a line chart: one series per policy, y against x.
type Plot struct {
	Title, XLabel, YLabel string
	// LogX spaces the x axis logarithmically (base 2).
	LogX bool
	// LogY spaces the y axis logarithmically (base 10), from the decade
	// below the smallest positive y to the one above the largest, with
	// ticks at 1, 2 and 5 times powers of ten. Points with y <= 0 are
	// drawn on the bottom axis.
	LogY bool
	// XFormat labels x ticks; nil prints the number.
	XFormat func(x float64) string
	Series  []Series
}

// Series is one line of a Plot. X and Y have the same length.
type Series struct {
	Name string
	X, Y []float64
	// Key chooses the colour: the same key has the same colour in every
	// plot (a policy's name, a target's label); empty means Name.
	Key string
	// Dashed draws the line dashed (a policy's byte hit ratio beside its
	// hit ratio).
	Dashed bool
}

// PlotFromResults draws hit ratio (%) against capacity, one line per policy,
// in the order the policies first appear in results, each policy in its
// own colour. With byte capacities each policy also gets a dashed line of
// its byte hit ratio.
func PlotFromResults(traceName string, results []Result) Plot {
	p := Plot{Title: "Hit ratio on " + traceName, YLabel: "hit ratio (%)", XLabel: "cache size (objects)"}
	bytes := len(results) > 0 && results[0].Bytes
	if bytes {
		p.XLabel = "cache size (bytes)"
		p.YLabel = "hit ratio, dashed: byte hit ratio (%)"
		p.XFormat = func(x float64) string { return FormatCapacity(int64(x), true) }
	}
	index := map[string]int{}
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, r := range results {
		i, ok := index[r.Policy]
		if !ok {
			i = len(p.Series)
			index[r.Policy] = i
			p.Series = append(p.Series, Series{Name: r.Policy, Key: r.Policy})
			if bytes {
				p.Series = append(p.Series, Series{Name: r.Policy + " (bytes)", Key: r.Policy, Dashed: true})
			}
		}
		x := float64(r.Capacity)
		p.Series[i].X = append(p.Series[i].X, x)
		p.Series[i].Y = append(p.Series[i].Y, 100*r.HitRatio)
		if bytes {
			p.Series[i+1].X = append(p.Series[i+1].X, x)
			p.Series[i+1].Y = append(p.Series[i+1].Y, 100*r.ByteHitRatio)
		}
		lo, hi = min(lo, x), max(hi, x)
	}
	p.LogX = lo > 0 && hi/lo >= 16
	return p
}

// WritePlotFile writes p as SVG or PNG, by the file's extension.
func WritePlotFile(path string, p Plot) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	bw := bufio.NewWriter(f)
	switch strings.ToLower(filepath.Ext(path)) {
	case ".png":
		err = p.WritePNG(bw)
	default:
		err = p.WriteSVG(bw)
	}
	if err == nil {
		err = bw.Flush()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("writing plot %s: %w", path, err)
	}
	return nil
}

// Chart geometry in pixels (SVG user units).
const (
	plotW, plotH                       = 860, 500
	marginL, marginR, marginT, marginB = 72, 190, 48, 64
)

var palette = []color.RGBA{
	{0x1f, 0x77, 0xb4, 0xff}, {0xd6, 0x27, 0x28, 0xff}, {0x2c, 0xa0, 0x2c, 0xff},
	{0xff, 0x7f, 0x0e, 0xff}, {0x94, 0x67, 0xbd, 0xff}, {0x8c, 0x56, 0x4b, 0xff},
	{0xe3, 0x77, 0xc2, 0xff}, {0x7f, 0x7f, 0x7f, 0xff}, {0xbc, 0xbd, 0x22, 0xff},
	{0x17, 0xbe, 0xcf, 0xff},
}

// seriesColor is the colour key prefers in every plot: each of
// PolicyNames has its own, and any other key (a proxy's label) one chosen
// by its hash.
func seriesColor(key string) color.RGBA {
	if i := slices.Index(PolicyNames, key); i >= 0 && i < len(palette) {
		return palette[i]
	}
	h := fnv.New32a()
	h.Write([]byte(key))
	return palette[h.Sum32()%uint32(len(palette))]
}

// seriesColors gives each of keys its colour in one plot: the one it
// prefers (seriesColor), unless an earlier key other than a policy took
// it, then the next free one, so that two labels never share a colour.
func seriesColors(keys []string) []color.RGBA {
	out := make([]color.RGBA, len(keys))
	owner := map[color.RGBA]string{}
	for i, k := range keys {
		c := seriesColor(k)
		if o, taken := owner[c]; taken && o != k && !slices.Contains(PolicyNames, k) {
			at := slices.Index(palette, c)
			for j := 1; j < len(palette); j++ {
				if _, taken := owner[palette[(at+j)%len(palette)]]; !taken {
					c = palette[(at+j)%len(palette)]
					break
				}
			}
		}
		owner[c] = k
		out[i] = c
	}
	return out
}

// legendCharW is the width of a legend character: the PNG's 7x13 bitmap
// font, and about that of 13 px Helvetica.
const legendCharW = 7.5

// size is the canvas: the chart area is fixed, and the canvas grows to
// the right as far as the longest legend entry needs.
func (p Plot) size() (w, h int) {
	longest := 0
	for _, s := range p.Series {
		longest = max(longest, len([]rune(s.Name)))
	}
	need := 20 + 36 + legendCharW*float64(longest) + 12 // gap, swatch, text, margin
	return plotW + max(0, int(math.Ceil(need))-marginR), plotH
}

// The drawing primitives a layout produces; SVG and PNG render the same list.
type (
	segment struct {
		x1, y1, x2, y2 float64
		c              color.RGBA
		width          float64
		dashed         bool
	}
	label struct {
		x, y   float64
		text   string
		anchor string // "start", "middle" or "end"
		size   float64
		rotate bool // vertical, reading upwards
	}
	marker struct {
		x, y float64
		c    color.RGBA
	}
	drawing struct {
		segs    []segment
		labels  []label
		markers []marker
	}
)

type tick struct {
	v    float64
	text string
}

// layout maps the plot onto the chart area.
func (p Plot) layout() drawing {
	var d drawing
	x0, x1 := float64(marginL), float64(plotW-marginR)
	y0, y1 := float64(plotH-marginB), float64(marginT) // y0 is the bottom

	var xs []float64
	ymax, yminPos := 0.0, math.Inf(1)
	for _, s := range p.Series {
		xs = append(xs, s.X...)
		for _, y := range s.Y {
			ymax = max(ymax, y)
			if y > 0 {
				yminPos = min(yminPos, y)
			}
		}
	}
	slices.Sort(xs)
	xs = slices.Compact(xs)
	xfmt := p.XFormat
	if xfmt == nil {
		xfmt = func(x float64) string { return strconv.FormatFloat(x, 'g', 6, 64) }
	}

	// y: 0 to the next multiple of the tick step above the data, or
	// decades on a log scale.
	var ymap func(float64) float64
	var yticks []float64
	if p.LogY && ymax > 0 {
		lo := math.Floor(math.Log10(yminPos))
		hi := math.Ceil(math.Log10(ymax))
		if hi <= lo {
			hi = lo + 1
		}
		ymap = func(v float64) float64 {
			if v <= 0 {
				return y0
			}
			return y0 - (y0-y1)*(math.Log10(v)-lo)/(hi-lo)
		}
		mults := []float64{1, 2, 5}
		if hi-lo > 4 {
			mults = []float64{1} // decades only, or the labels crowd
		}
		for e := lo; e <= hi; e++ {
			for _, m := range mults {
				if v := m * math.Pow(10, e); math.Log10(v) <= hi+1e-9 {
					yticks = append(yticks, v)
				}
			}
		}
	} else {
		ystep := niceStep(max(ymax, 1) / 5)
		ytop := math.Ceil(max(ymax, 1)/ystep) * ystep
		ymap = func(v float64) float64 { return y0 - (y0-y1)*v/ytop }
		for v := 0.0; v <= ytop+ystep/2; v += ystep {
			yticks = append(yticks, v)
		}
	}

	// x: linear from 0, or log2 between the smallest and largest values.
	var xmap func(float64) float64
	var xticks []tick
	switch {
	case len(xs) == 0:
		xmap = func(float64) float64 { return x0 }
	case p.LogX:
		lo, hi := math.Log2(xs[0]), math.Log2(xs[len(xs)-1])
		pad := (hi - lo) * 0.04
		lo, hi = lo-pad, hi+pad
		xmap = func(v float64) float64 { return x0 + (x1-x0)*(math.Log2(v)-lo)/(hi-lo) }
		for _, v := range thin(xs, 10) {
			xticks = append(xticks, tick{v, xfmt(v)})
		}
	default:
		hi := xs[len(xs)-1]
		step := niceStep(hi / 6)
		top := math.Ceil(hi/step) * step
		xmap = func(v float64) float64 { return x0 + (x1-x0)*v/top }
		if len(xs) <= 10 {
			for _, v := range xs {
				xticks = append(xticks, tick{v, xfmt(v)})
			}
		} else {
			for v := 0.0; v <= top+step/2; v += step {
				xticks = append(xticks, tick{v, xfmt(v)})
			}
		}
	}

	grid := color.RGBA{0xdd, 0xdd, 0xdd, 0xff}
	black := color.RGBA{0x22, 0x22, 0x22, 0xff}
	for _, v := range yticks {
		y := ymap(v)
		d.segs = append(d.segs, segment{x0, y, x1, y, grid, 1, false}, segment{x0 - 5, y, x0, y, black, 1, false})
		d.labels = append(d.labels, label{x0 - 8, y + 4, strconv.FormatFloat(v, 'g', 4, 64), "end", 12, false})
	}
	for _, t := range xticks {
		x := xmap(t.v)
		d.segs = append(d.segs, segment{x, y0, x, y1, grid, 1, false}, segment{x, y0, x, y0 + 5, black, 1, false})
		d.labels = append(d.labels, label{x, y0 + 20, t.text, "middle", 12, false})
	}
	d.segs = append(d.segs, segment{x0, y0, x1, y0, black, 1.5, false}, segment{x0, y0, x0, y1, black, 1.5, false})
	d.labels = append(d.labels,
		label{(x0 + x1) / 2, 28, p.Title, "middle", 16, false},
		label{(x0 + x1) / 2, y0 + 46, p.XLabel, "middle", 13, false},
		label{20, (y0 + y1) / 2, p.YLabel, "middle", 13, true},
	)

	keys := make([]string, len(p.Series))
	for i, s := range p.Series {
		keys[i] = cmp.Or(s.Key, s.Name)
	}
	colors := seriesColors(keys)
	for i, s := range p.Series {
		c := colors[i]
		idx := make([]int, len(s.X))
		for j := range idx {
			idx[j] = j
		}
		slices.SortFunc(idx, func(a, b int) int { return cmp.Compare(s.X[a], s.X[b]) })
		for j, k := range idx {
			px, py := xmap(s.X[k]), ymap(s.Y[k])
			d.markers = append(d.markers, marker{px, py, c})
			if j > 0 {
				pk := idx[j-1]
				d.segs = append(d.segs, segment{xmap(s.X[pk]), ymap(s.Y[pk]), px, py, c, 2, s.Dashed})
			}
		}
		// Legend entry.
		ly := float64(marginT) + 12 + 22*float64(i)
		lx := x1 + 20
		d.segs = append(d.segs, segment{lx, ly, lx + 28, ly, c, 2.5, s.Dashed})
		d.markers = append(d.markers, marker{lx + 14, ly, c})
		d.labels = append(d.labels, label{lx + 36, ly + 4, s.Name, "start", 13, false})
	}
	return d
}

// thin keeps at most n values of sorted vs, always the first and last.
func thin(vs []float64, n int) []float64 {
	if len(vs) <= n {
		return vs
	}
	out := make([]float64, 0, n)
	for i := range n {
		out = append(out, vs[i*(len(vs)-1)/(n-1)])
	}
	return out
}

// niceStep rounds a raw tick step up to 1, 2 or 5 times a power of ten.
func niceStep(raw float64) float64 {
	if raw <= 0 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(raw)))
	for _, m := range []float64{1, 2, 5, 10} {
		if raw <= m*p {
			return m * p
		}
	}
	return 10 * p
}

func hexColor(c color.RGBA) string { return fmt.Sprintf("#%02x%02x%02x", c.R, c.G, c.B) }

// WriteSVG writes the chart as a standalone SVG document.
func (p Plot) WriteSVG(w io.Writer) error {
	d := p.layout()
	width, height := p.size()
	bw := &errWriter{w: w}
	bw.printf(`<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="Helvetica, Arial, sans-serif">`+"\n", width, height, width, height)
	bw.printf(`<rect width="100%%" height="100%%" fill="white"/>` + "\n")
	for _, s := range d.segs {
		dash := ""
		if s.dashed {
			dash = ` stroke-dasharray="6 4"`
		}
		bw.printf(`<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s" stroke-width="%g" stroke-linecap="round"%s/>`+"\n",
			s.x1, s.y1, s.x2, s.y2, hexColor(s.c), s.width, dash)
	}
	for _, m := range d.markers {
		bw.printf(`<circle cx="%.1f" cy="%.1f" r="3.5" fill="%s"/>`+"\n", m.x, m.y, hexColor(m.c))
	}
	for _, l := range d.labels {
		rot := ""
		if l.rotate {
			rot = fmt.Sprintf(` transform="rotate(-90 %.1f %.1f)"`, l.x, l.y)
		}
		bw.printf(`<text x="%.1f" y="%.1f" font-size="%g" text-anchor="%s"%s>%s</text>`+"\n",
			l.x, l.y, l.size, l.anchor, rot, html.EscapeString(l.text))
	}
	bw.printf("</svg>\n")
	return bw.err
}

type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) printf(format string, args ...any) {
	if e.err == nil {
		_, e.err = fmt.Fprintf(e.w, format, args...)
	}
}

// WritePNG rasterises the chart, with text in the 7x13 bitmap font of
// golang.org/x/image/font/basicfont (one size; the y label is drawn
// horizontally above the axis).
func (p Plot) WritePNG(w io.Writer) error {
	d := p.layout()
	width, height := p.size()
	img := image.NewRGBA(image.Rect(0, 0, width, height))
	for i := range img.Pix {
		img.Pix[i] = 0xff
	}
	for _, s := range d.segs {
		drawLine(img, s)
	}
	for _, m := range d.markers {
		for dy := -3; dy <= 3; dy++ {
			for dx := -3; dx <= 3; dx++ {
				if dx*dx+dy*dy <= 10 {
					img.SetRGBA(int(math.Round(m.x))+dx, int(math.Round(m.y))+dy, m.c)
				}
			}
		}
	}
	face := basicfont.Face7x13
	for _, l := range d.labels {
		x, y := l.x, l.y
		if l.rotate {
			x, y, l.anchor = 8, float64(marginT)-14, "start"
		}
		dr := &font.Drawer{Dst: img, Src: image.NewUniform(color.RGBA{0x22, 0x22, 0x22, 0xff}), Face: face}
		width := dr.MeasureString(l.text).Round()
		switch l.anchor {
		case "middle":
			x -= float64(width) / 2
		case "end":
			x -= float64(width)
		}
		dr.Dot = fixed.P(int(math.Round(x)), int(math.Round(y)))
		dr.DrawString(l.text)
	}
	return png.Encode(w, img)
}

// drawLine draws a segment of the given width by stamping squares along it.
func drawLine(img *image.RGBA, s segment) {
	steps := int(math.Ceil(math.Max(math.Abs(s.x2-s.x1), math.Abs(s.y2-s.y1)))) + 1
	half := int(math.Max(0, math.Round(s.width/2-0.5)))
	for i := 0; i <= steps; i++ {
		if s.dashed && i%10 >= 6 {
			continue // 6 pixels on, 4 off
		}
		t := float64(i) / float64(steps)
		cx := int(math.Round(s.x1 + t*(s.x2-s.x1)))
		cy := int(math.Round(s.y1 + t*(s.y2-s.y1)))
		for dy := -half; dy <= half; dy++ {
			for dx := -half; dx <= half; dx++ {
				img.SetRGBA(cx+dx, cy+dy, s.c)
			}
		}
	}
}
