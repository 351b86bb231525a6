package compress

import (
	"bytes"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the generated files in testdata/corpus")

// corpusFile is one input of the compression corpus.
type corpusFile struct {
	name, contentType string
	data              []byte
}

// loadCorpus reads every file of testdata/corpus except its README.
func loadCorpus(tb testing.TB) []corpusFile {
	tb.Helper()
	types := map[string]string{
		".html": "text/html; charset=utf-8",
		".json": "application/json",
		".js":   "text/javascript",
		".css":  "text/css",
		".svg":  "image/svg+xml",
	}
	paths, err := filepath.Glob(filepath.Join("testdata", "corpus", "*"))
	if err != nil {
		tb.Fatal(err)
	}
	var files []corpusFile
	for _, p := range paths {
		ct, ok := types[filepath.Ext(p)]
		if !ok {
			continue
		}
		data, err := os.ReadFile(p)
		if err != nil {
			tb.Fatal(err)
		}
		files = append(files, corpusFile{filepath.Base(p), ct, data})
	}
	if len(files) < 5 {
		tb.Fatalf("corpus has %d files, want at least 5", len(files))
	}
	return files
}

// TestCorpusGeneratedFilesAreCurrent checks the generated corpus files against
// their generators; run with -update to rewrite them.
func TestCorpusGeneratedFilesAreCurrent(t *testing.T) {
	for name, gen := range map[string]func() []byte{
		"style.css": generateCSS,
		"chart.svg": generateSVG,
	} {
		path := filepath.Join("testdata", "corpus", name)
		want := gen()
		if *update {
			if err := os.WriteFile(path, want, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		got, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s differs from its generator; run go test -run TestCorpus -update", path)
		}
	}
}

// generateCSS writes a stylesheet in the shape of a site's main CSS: many
// component rules with repeated property names and varied values.
func generateCSS() []byte {
	r := rand.New(rand.NewPCG(1, 2))
	var b bytes.Buffer
	b.WriteString(":root {\n  --fg: #1d1d1f;\n  --bg: #ffffff;\n  --accent: #0071e3;\n  --radius: 8px;\n}\n\n")
	components := []string{"button", "card", "nav", "header", "footer", "modal", "tooltip", "badge", "alert", "table", "form", "input", "tabs", "menu", "avatar", "list", "grid", "hero", "sidebar", "pager"}
	states := []string{"", ":hover", ":focus-visible", ".is-active", ".is-disabled", "::before", " > .icon", " + ."}
	props := []string{"display", "margin", "padding", "color", "background-color", "border", "border-radius", "font-size", "line-height", "box-shadow", "transition", "gap"}
	values := map[string][]string{
		"display":          {"flex", "grid", "block", "inline-flex", "none"},
		"color":            {"var(--fg)", "var(--accent)", "#6e6e73", "inherit", "#ffffff"},
		"background-color": {"var(--bg)", "transparent", "#f5f5f7", "rgba(0, 0, 0, 0.04)"},
		"border":           {"1px solid #d2d2d7", "none", "2px solid var(--accent)"},
		"border-radius":    {"var(--radius)", "50%", "4px", "999px"},
		"line-height":      {"1.2", "1.47059", "1.5", "normal"},
		"box-shadow":       {"0 1px 2px rgba(0, 0, 0, 0.08)", "none", "0 8px 24px rgba(0, 0, 0, 0.16)"},
		"transition":       {"all 0.2s ease", "opacity 150ms linear", "transform 0.3s cubic-bezier(0.4, 0, 0.2, 1)"},
	}
	for i := 0; i < 420; i++ {
		c := components[r.IntN(len(components))]
		s := states[r.IntN(len(states))]
		if s == " + ." {
			s += components[r.IntN(len(components))]
		}
		fmt.Fprintf(&b, ".%s--%s-%d%s {\n", c, []string{"primary", "secondary", "compact", "large", "muted"}[r.IntN(5)], r.IntN(12), s)
		for _, p := range props {
			if r.IntN(3) != 0 {
				continue
			}
			var v string
			if vs, ok := values[p]; ok {
				v = vs[r.IntN(len(vs))]
			} else {
				v = fmt.Sprintf("%dpx %dpx", 2*r.IntN(16), 2*r.IntN(16))
				if p == "font-size" {
					v = fmt.Sprintf("%.4frem", 0.75+float64(r.IntN(40))/32)
				}
			}
			fmt.Fprintf(&b, "  %s: %s;\n", p, v)
		}
		b.WriteString("}\n")
		if i%60 == 59 {
			fmt.Fprintf(&b, "\n@media (max-width: %dpx) {\n  .%s { display: none; }\n}\n\n", 480+r.IntN(800), c)
		}
	}
	return b.Bytes()
}

// generateSVG writes a line chart with axes, grid, labels and a long path of
// numeric coordinates, the typical shape of an SVG served by a dashboard.
func generateSVG() []byte {
	r := rand.New(rand.NewPCG(3, 4))
	var b bytes.Buffer
	b.WriteString(`<?xml version="1.0" encoding="UTF-8"?>` + "\n")
	b.WriteString(`<svg xmlns="http://www.w3.org/2000/svg" width="1200" height="600" viewBox="0 0 1200 600">` + "\n")
	b.WriteString(`<style>.grid{stroke:#e5e5e5;stroke-width:1}.axis{font:12px sans-serif;fill:#555}.s0{stroke:#1f77b4}.s1{stroke:#ff7f0e}.s2{stroke:#2ca02c}</style>` + "\n")
	for x := 50; x <= 1150; x += 50 {
		fmt.Fprintf(&b, `<line class="grid" x1="%d" y1="20" x2="%d" y2="560"/>`+"\n", x, x)
		fmt.Fprintf(&b, `<text class="axis" x="%d" y="580" text-anchor="middle">%02d:%02d</text>`+"\n", x, (x/50)%24, (x*7)%60)
	}
	for y := 20; y <= 560; y += 40 {
		fmt.Fprintf(&b, `<line class="grid" x1="50" y1="%d" x2="1150" y2="%d"/>`+"\n", y, y)
		fmt.Fprintf(&b, `<text class="axis" x="40" y="%d" text-anchor="end">%d</text>`+"\n", y+4, (560-y)*5)
	}
	for s := 0; s < 3; s++ {
		fmt.Fprintf(&b, `<path class="s%d" fill="none" stroke-width="1.5" d="M50,300`, s)
		y := 300.0
		for x := 50.0; x <= 1150; x += 1.25 {
			y += (r.Float64() - 0.5) * 12
			y = min(max(y, 25), 555)
			fmt.Fprintf(&b, " L%.2f,%.2f", x, y)
		}
		b.WriteString(`"/>` + "\n")
		for i := 0; i < 40; i++ {
			fmt.Fprintf(&b, `<circle class="s%d" cx="%.1f" cy="%.1f" r="3" fill="white" stroke-width="1.5"><title>series %d point %d: %.3f</title></circle>`+"\n",
				s, 50+r.Float64()*1100, 25+r.Float64()*530, s, i, r.Float64()*2700)
		}
	}
	b.WriteString("</svg>\n")
	return b.Bytes()
}
