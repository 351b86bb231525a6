package compress

import (
	"errors"
	"maps"
	"net/http"
	"strings"
	"testing"
)

func TestEnsureDefaultsFillsZeroFieldsOnly(t *testing.T) {
	var o Options
	o.EnsureDefaults()
	if got := strings.Join(o.Order, ","); got != "br,zstd,gzip" {
		t.Errorf("Order = %s, want br,zstd,gzip", got)
	}
	if o.MinSize != DefaultMinSize || len(o.Types) == 0 {
		t.Errorf("MinSize = %d, Types = %q", o.MinSize, o.Types)
	}
	if !maps.Equal(o.Levels, DefaultLevels()) || !maps.Equal(o.BestLevels, DefaultBestLevels()) {
		t.Errorf("Levels = %v, BestLevels = %v", o.Levels, o.BestLevels)
	}
	if err := o.Validate(); err != nil {
		t.Errorf("defaults do not validate: %v", err)
	}

	given := map[string]int{"GZIP": 3}
	o2 := Options{Order: []string{Gzip}, MinSize: 1, Levels: given}
	o2.EnsureDefaults()
	if o2.Order[0] != Gzip || len(o2.Order) != 1 || o2.MinSize != 1 {
		t.Errorf("EnsureDefaults changed set fields: Order %q MinSize %d", o2.Order, o2.MinSize)
	}
	if o2.Levels[Gzip] != 3 || o2.Levels[Brotli] != DefaultLevels()[Brotli] {
		t.Errorf("Levels = %v, want gzip 3 and the other defaults", o2.Levels)
	}
	if len(given) != 1 {
		t.Errorf("EnsureDefaults modified the caller's map: %v", given)
	}
}

func TestValidateReportsEveryProblemByField(t *testing.T) {
	o := Options{
		Order:      []string{"br", "lz4", "BR"},
		Types:      []string{"text/html", "html", "*/*", "+", "text/*"},
		MinSize:    -1,
		Levels:     map[string]int{Gzip: 0, Brotli: 12, "lz4": 1},
		BestLevels: map[string]int{Zstd: 5},
	}
	o.EnsureDefaults()
	err := o.Validate()
	if !errors.Is(err, ErrInvalidOptions) {
		t.Fatalf("Validate() = %v, want ErrInvalidOptions", err)
	}
	for _, want := range []string{
		`Order: coding "lz4"`, `Order: coding "BR" is listed twice`,
		`Types: "html"`, `Types: "*/*"`, `Types: "+"`,
		"MinSize: -1",
		"Levels: gzip level 0 is outside 1 to 9", "Levels: br level 12 is outside 0 to 11", `Levels: coding "lz4"`,
		"BestLevels: zstd level 5 is outside 1 to 4",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() error lacks %q:\n%v", want, err)
		}
	}
	if n := strings.Count(err.Error(), "\n") + 1; n != 10 {
		t.Errorf("Validate() reported %d problems, want 10:\n%v", n, err)
	}
}

func TestCompressibleChecksTypeSizeNoTransformAndEncoding(t *testing.T) {
	o := Options{}
	o.EnsureDefaults()
	custom := Options{Types: []string{"application/x-custom", "text/*"}, MinSize: 100}
	custom.EnsureDefaults()
	tests := []struct {
		name string
		o    *Options
		h    http.Header
		size int64
		want bool
	}{
		{"html", &o, http.Header{"Content-Type": {"text/html; charset=utf-8"}}, 5000, true},
		{"type is case-insensitive", &o, http.Header{"Content-Type": {"Text/HTML"}}, 5000, true},
		{"json", &o, http.Header{"Content-Type": {"application/json"}}, 5000, true},
		{"+json suffix", &o, http.Header{"Content-Type": {"application/problem+json"}}, 5000, true},
		{"+xml suffix", &o, http.Header{"Content-Type": {"application/vnd.example+XML; q=1"}}, 5000, true},
		{"svg", &o, http.Header{"Content-Type": {"image/svg+xml"}}, 5000, true},
		{"wasm", &o, http.Header{"Content-Type": {"application/wasm"}}, 5000, true},
		{"javascript", &o, http.Header{"Content-Type": {"application/javascript"}}, 5000, true},
		{"unknown size counts as large", &o, http.Header{"Content-Type": {"text/css"}}, -1, true},
		{"exactly MinSize", &o, http.Header{"Content-Type": {"text/css"}}, 1024, true},
		{"below MinSize", &o, http.Header{"Content-Type": {"text/css"}}, 1023, false},
		{"png", &o, http.Header{"Content-Type": {"image/png"}}, 5000, false},
		{"woff2", &o, http.Header{"Content-Type": {"font/woff2"}}, 5000, false},
		{"json prefix is not json", &o, http.Header{"Content-Type": {"application/jsonx"}}, 5000, false},
		{"suffix needs a plus", &o, http.Header{"Content-Type": {"application/notjson"}}, 5000, false},
		{"bare suffix is not a type", &o, http.Header{"Content-Type": {"application/+json"}}, 5000, false},
		{"no content type", &o, http.Header{}, 5000, false},
		{"malformed content type", &o, http.Header{"Content-Type": {"text"}}, 5000, false},
		{"no-transform", &o, http.Header{"Content-Type": {"text/html"}, "Cache-Control": {"max-age=60, No-Transform"}}, 5000, false},
		{"no-transform on a second line", &o, http.Header{"Content-Type": {"text/html"}, "Cache-Control": {"public", "no-transform"}}, 5000, false},
		{"no-transform inside a quoted value does not count", &o, http.Header{"Content-Type": {"text/html"}, "Cache-Control": {`private="x, no-transform", max-age=1`}}, 5000, true},
		{"already gzip", &o, http.Header{"Content-Type": {"text/html"}, "Content-Encoding": {"gzip"}}, 5000, false},
		{"already br after identity", &o, http.Header{"Content-Type": {"text/html"}, "Content-Encoding": {"identity, br"}}, 5000, false},
		{"identity encoding", &o, http.Header{"Content-Type": {"text/html"}, "Content-Encoding": {"identity"}}, 5000, true},
		{"partial content", &o, http.Header{"Content-Type": {"text/html"}, "Content-Range": {"bytes 0-99/5000"}}, 100, false},
		{"custom exact type", &custom, http.Header{"Content-Type": {"application/x-custom"}}, 100, true},
		{"custom list drops json", &custom, http.Header{"Content-Type": {"application/json"}}, 5000, false},
		{"custom MinSize", &custom, http.Header{"Content-Type": {"text/plain"}}, 99, false},
		{"zero Options use defaults", &Options{}, http.Header{"Content-Type": {"text/plain"}}, 1023, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.o.Compressible(tt.h, tt.size); got != tt.want {
				t.Errorf("Compressible(%v, %d) = %v, want %v", tt.h, tt.size, got, tt.want)
			}
		})
	}
}

// FuzzCompressible checks properties of Compressible's header parsing on
// arbitrary field values. As a plain test it runs the seeds only.
func FuzzCompressible(f *testing.F) {
	f.Add("text/html; charset=utf-8", "max-age=60", "", int64(5000))
	f.Add("application/problem+json", `private="a, no-transform"`, "identity", int64(-1))
	f.Add("image/svg+xml", "no-transform", "", int64(2000))
	f.Add("text/plain", "", "gzip", int64(1<<20))
	f.Add("TEXT/*", `a="\"", no-transform`, ",", int64(1024))
	o := Options{}
	o.EnsureDefaults()
	f.Fuzz(func(t *testing.T, ct, cc, ce string, size int64) {
		h := http.Header{"Content-Type": {ct}, "Cache-Control": {cc}, "Content-Encoding": {ce}}
		got := o.Compressible(h, size)
		upper := http.Header{"Content-Type": {strings.ToUpper(ct)}, "Cache-Control": {strings.ToUpper(cc)}, "Content-Encoding": {strings.ToUpper(ce)}}
		if o.Compressible(upper, size) != got {
			t.Fatalf("Compressible depends on case: %v", h)
		}
		if !got {
			return
		}
		forbid := []http.Header{
			{"Content-Type": {ct}, "Cache-Control": {cc, "no-transform"}, "Content-Encoding": {ce}},
			{"Content-Type": {ct}, "Cache-Control": {cc}, "Content-Encoding": {ce, "br"}},
			{"Content-Type": {ct}, "Cache-Control": {cc}, "Content-Encoding": {ce}, "Content-Range": {"bytes 0-1/2"}},
		}
		for _, h2 := range forbid {
			if o.Compressible(h2, size) {
				t.Errorf("Compressible(%v) = true, want false", h2)
			}
		}
		if o.Compressible(h, o.MinSize-1) {
			t.Errorf("Compressible(%v, MinSize-1) = true", h)
		}
	})
}

// FuzzCompiledTypesMatchTheScan checks that the compiled type set that
// Compressible uses after EnsureDefaults answers exactly as the plain scan
// of the patterns does, for the default and a custom list.
func FuzzCompiledTypesMatchTheScan(f *testing.F) {
	for _, s := range []string{"text/html", "Text/HTML; charset=utf-8", "application/problem+json", "application/+json",
		"image/svg+xml", "image/png", "application/jsonx", "text", "", " text/css ", "APPLICATION/WASM", "a/b+JSON", "text/*"} {
		f.Add(s)
	}
	custom := []string{"application/x-custom", "Text/*", "+YAML"}
	def, cus := newTypeSet(DefaultTypes()), newTypeSet(custom)
	f.Fuzz(func(t *testing.T, ct string) {
		if got, want := def.match(ct), matchType(ct, DefaultTypes()); got != want {
			t.Errorf("default types, %q: compiled %v, scan %v", ct, got, want)
		}
		if got, want := cus.match(ct), matchType(ct, custom); got != want {
			t.Errorf("custom types, %q: compiled %v, scan %v", ct, got, want)
		}
	})
}

// TestTypesChangedAfterEnsureDefaultsAreHonoured: the compiled set belongs
// to the slice it was made from; a new Types slice is scanned as given.
func TestTypesChangedAfterEnsureDefaultsAreHonoured(t *testing.T) {
	o := Options{}
	o.EnsureDefaults()
	h := http.Header{"Content-Type": {"image/png"}}
	if o.Compressible(h, 5000) {
		t.Fatal("image/png compressible by default")
	}
	o.Types = []string{"image/png"}
	if !o.Compressible(h, 5000) {
		t.Error("Types replaced after EnsureDefaults were ignored")
	}
}
