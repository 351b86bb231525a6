// Package compress negotiates content codings and encodes and decodes them, per
// RFC 9110 §8.4 (Content-Encoding) and §12.5.3 (Accept-Encoding).
//
// cellar compresses a response once, when it is stored, and serves the stored
// variant that a client prefers on every hit. This package holds the pieces that
// decision needs and nothing of the proxy or the store: [Negotiate] picks a
// coding, [Options.Compressible] says whether a response is worth compressing,
// and [Options.NewWriter] (fast levels, for the fill path),
// [Options.NewBestWriter] (dense levels, for a background pass) and
// [NewReader] run the codecs: gzip (RFC 1952) and zstd (RFC 8878, RFC 9659)
// from github.com/klauspost/compress, brotli (RFC 7932) from
// github.com/andybalholm/brotli.
//
// Decoding is not bounded here: a small compressed body can expand to many
// gigabytes (a decode bomb). Callers that decode untrusted input must limit
// what they read from a [NewReader] result, for example with [io.LimitReader]
// and a size cap, and treat reaching the cap as an error.
package compress

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/cellar-cache/cellar/internal/httpheader"
)

// Codings cellar produces itself. Their order here is the default preference
// order for ties in [Negotiate] (see [DefaultOrder]); identity is the absence of
// any coding.
const (
	Identity = "identity"
	Gzip     = "gzip"
	Brotli   = "br"
	Zstd     = "zstd"
)

// deflate is the "deflate" coding (RFC 9110 §8.4.1.2: a zlib stream). cellar
// decodes it when an origin sends it but never produces it.
const deflate = "deflate"

// ErrUnsupported is returned, wrapped with the coding's name, by [NewReader]
// and [Options.NewWriter] for a coding this package cannot handle. Test for it
// with errors.Is.
var ErrUnsupported = errors.New("compress: unsupported coding")

// ErrInvalidOptions is returned, wrapped with every problem found, by
// [Options.Validate]. Test for it with errors.Is.
var ErrInvalidOptions = errors.New("compress: invalid options")

// DefaultOrder is the default tie-break order of [Options.Order]: brotli first
// (smallest output on text), then zstd (fastest to decode), then gzip (understood
// by every client).
func DefaultOrder() []string { return []string{Brotli, Zstd, Gzip} }

// DefaultTypes is the default of [Options.Types]: text, the structured text
// formats of the web, and WebAssembly, which also shrinks by half or more with
// these codings. Already-compressed formats (JPEG, PNG, WebP, WOFF2, video,
// archives) are left out on purpose.
func DefaultTypes() []string {
	return []string{
		"text/*",
		"application/json",
		"application/javascript",
		"application/ecmascript",
		"application/x-javascript",
		"application/xml",
		"application/xhtml+xml",
		"application/rss+xml",
		"application/atom+xml",
		"application/manifest+json",
		"application/ld+json",
		"application/wasm",
		"image/svg+xml",
		"image/x-icon",
		"image/vnd.microsoft.icon",
		"image/bmp",
		"font/ttf",
		"font/otf",
		"application/vnd.ms-fontobject",
		"+json",
		"+xml",
	}
}

const (
	// DefaultMinSize is the default of [Options.MinSize], in bytes: below about
	// 1 KiB the coding's framing and the extra Vary handling outweigh the saving.
	DefaultMinSize = 1024
)

// DefaultLevels is the default of [Options.Levels]: levels cheap enough to run
// on the fill path, once, when an object is stored.
//
// Measured with BenchmarkLevels (bench_test.go) on testdata/corpus (HTML,
// JSON, JavaScript, CSS, SVG; 330 KB), each file compressed on its own, on a
// shared and busy 2-core machine (medians of 3; ratio = input / output):
//
//	coding/level  ratio  MB/s     coding/level  ratio  MB/s
//	gzip/1        3.49   64       br/0          3.37   97
//	gzip/3        3.61   67       br/1          3.71   62
//	gzip/4        3.69   39       br/3          4.05   31
//	gzip/5        3.90   16-32    br/4          4.18   23
//	gzip/6        3.97   35       br/5          4.51   18
//	gzip/7        4.03   24       br/6          4.55   13
//	gzip/8        4.11   17       br/7          4.58   12
//	gzip/9        4.16   7        br/9          4.61   7
//	zstd/1        3.92   149      br/10         4.98   0.8
//	zstd/2        4.04   113      br/11         5.16   0.3
//	zstd/3        4.19   73
//	zstd/4        4.41   14
//
// So: gzip 6 (4% larger than gzip 9 at five times its speed), br 5 (the
// step from 4.18 to 4.51 is brotli's largest below 10; levels 6 to 9 save at
// most 2.3% more for 40% to 150% more time), zstd 3 (SpeedBetterCompression:
// 4% smaller than the default at two thirds of its speed, still over 70 MB/s).
func DefaultLevels() map[string]int {
	return map[string]int{Gzip: 6, Brotli: 5, Zstd: 3}
}

// DefaultBestLevels is the default of [Options.BestLevels]: the densest
// levels, meant to run once per object in the background and replace the
// variant made with [DefaultLevels]: gzip 9, br 11, zstd 4. Brotli 11 is 13%
// smaller than brotli 5 but runs at about 0.3 MB/s (see the table at
// DefaultLevels), so the caller must bound how much of it runs at once.
func DefaultBestLevels() map[string]int {
	return map[string]int{Gzip: 9, Brotli: 11, Zstd: 4}
}

// Level ranges accepted per coding (inclusive).
var levelRange = map[string][2]int{
	Gzip:   {1, 9},  // klauspost/compress/gzip: BestSpeed 1 … BestCompression 9
	Brotli: {0, 11}, // andybalholm/brotli quality: BestSpeed 0 … BestCompression 11
	Zstd:   {1, 4},  // klauspost/compress/zstd EncoderLevel: SpeedFastest 1 … SpeedBestCompression 4
}

// Options configures which responses are compressed and how. Call
// EnsureDefaults, then Validate, before use; after that an Options is safe for
// concurrent use by many goroutines as long as nobody modifies it.
type Options struct {
	// Order is the preference among codings that a client weights equally
	// (RFC 9110 §12.5.3 leaves ties to the server). Entries are coding names
	// (br, zstd, gzip, identity); codings not listed rank after listed ones, and
	// identity ranks last unless listed. Nil or empty means [DefaultOrder].
	Order []string

	// Types are the compressible media types, matched case-insensitively and
	// with parameters ignored. An entry "type/subtype" matches exactly, an entry
	// "type/*" matches the whole top-level type, and an entry "+suffix" matches
	// any type with that structured syntax suffix (RFC 6838 §4.2.8), such as
	// "+json" for application/problem+json. Nil or empty means [DefaultTypes].
	Types []string

	// MinSize is the smallest body, in bytes, worth compressing. Zero means
	// [DefaultMinSize]; negative is invalid. Use 1 to compress everything.
	MinSize int64

	// Levels are the fast levels used by NewWriter, per coding: gzip 1-9,
	// br 0-11, zstd 1-4 (klauspost/compress/zstd's SpeedFastest to
	// SpeedBestCompression, roughly zstd -1, -3, -7 and -11). A coding missing
	// from the map gets its [DefaultLevels] value. EnsureDefaults replaces the
	// map with a filled-in copy and never modifies the caller's map.
	Levels map[string]int

	// BestLevels are the dense levels used by NewBestWriter, which is meant to
	// run in the background and replace the variant made with Levels. Same
	// ranges and defaulting as Levels, with [DefaultBestLevels].
	BestLevels map[string]int

	// pools reuses encoders per (coding, level, window); set by
	// EnsureDefaults. Nil means no reuse: every writer is created fresh.
	pools *encoderPools
	// types is Types compiled for lookups on every hit; set by
	// EnsureDefaults. Nil, or compiled from another slice, means scan Types.
	types *typeSet
}

// EnsureDefaults fills every zero field with its documented default and sets up
// the encoder pools. It does not modify slices or maps it was given.
func (o *Options) EnsureDefaults() {
	if len(o.Order) == 0 {
		o.Order = DefaultOrder()
	}
	if len(o.Types) == 0 {
		o.Types = DefaultTypes()
	}
	if o.MinSize == 0 {
		o.MinSize = DefaultMinSize
	}
	o.Levels = withDefaults(o.Levels, DefaultLevels())
	o.BestLevels = withDefaults(o.BestLevels, DefaultBestLevels())
	if o.pools == nil {
		o.pools = newEncoderPools()
	}
	o.types = newTypeSet(o.Types)
}

// withDefaults returns a new map holding defaults overridden by given.
func withDefaults(given, defaults map[string]int) map[string]int {
	m := make(map[string]int, len(defaults)+len(given))
	for k, v := range defaults {
		m[k] = v
	}
	for k, v := range given {
		m[strings.ToLower(k)] = v
	}
	return m
}

// Validate reports every problem with o at once, wrapped in
// [ErrInvalidOptions]. Call it after EnsureDefaults.
func (o *Options) Validate() error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf(format, args...))
	}
	seen := map[string]bool{}
	for _, c := range o.Order {
		n := canonical(c)
		switch {
		case n != Identity && levelRange[n] == [2]int{}:
			bad("Order: coding %q is not one of br, zstd, gzip, identity", c)
		case seen[n]:
			bad("Order: coding %q is listed twice", c)
		}
		seen[n] = true
	}
	for _, t := range o.Types {
		if !validTypePattern(t) {
			bad(`Types: %q is not "type/subtype", "type/*" or "+suffix"`, t)
		}
	}
	if o.MinSize < 0 {
		bad("MinSize: %d is negative; use 1 to compress every size", o.MinSize)
	}
	for _, f := range []struct {
		name   string
		levels map[string]int
	}{{"Levels", o.Levels}, {"BestLevels", o.BestLevels}} {
		for _, c := range sortedKeys(f.levels) {
			l := f.levels[c]
			r, ok := levelRange[c]
			if !ok {
				bad("%s: coding %q is not one of br, zstd, gzip", f.name, c)
				continue
			}
			if l < r[0] || l > r[1] {
				bad("%s: %s level %d is outside %d to %d", f.name, c, l, r[0], r[1])
			}
		}
	}
	if len(errs) == 0 {
		return nil
	}
	return fmt.Errorf("%w: %w", ErrInvalidOptions, errors.Join(errs...))
}

func sortedKeys(m map[string]int) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// validTypePattern reports whether t is "type/subtype", "type/*" or "+suffix",
// each part an RFC 9110 §5.6.2 token.
func validTypePattern(t string) bool {
	if suffix, ok := strings.CutPrefix(t, "+"); ok {
		return httpheader.IsToken(suffix)
	}
	typ, sub, ok := strings.Cut(t, "/")
	return ok && httpheader.IsToken(typ) && typ != "*" && (sub == "*" || httpheader.IsToken(sub))
}

// canonical lower-cases a coding name and maps the aliases RFC 9110 §8.4.1
// tells recipients to treat as equivalent (x-gzip, x-compress).
func canonical(c string) string {
	c = strings.ToLower(strings.TrimSpace(c))
	switch c {
	case "x-gzip":
		return Gzip
	case "x-compress":
		return "compress"
	}
	return c
}
