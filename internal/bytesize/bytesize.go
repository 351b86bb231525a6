// Package bytesize parses and formats byte counts with binary units (K, M,
// G, T, however written: 2G, 2gb and 2GiB are all 2 GiB), as cellar's
// flags and config file take them.
package bytesize

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

var units = []struct {
	suffix string
	mult   int64
}{
	{"TiB", 1 << 40},
	{"GiB", 1 << 30},
	{"MiB", 1 << 20},
	{"KiB", 1 << 10},
	{"B", 1},
}

// ErrSyntax is returned for a value that is not a byte size.
var ErrSyntax = errors.New("bytesize: want a whole number of bytes with an optional unit K, M, G or T (binary: 1K = 1024 bytes; KiB, KB and k mean the same), e.g. 256M or 2GiB")

// Parse reads a size such as "1024", "64k", "256M", "256MiB", "2 GB" or
// "2gib". Units are case-insensitive and binary whichever way they are
// written, as nginx and Varnish read them: K, KB and KiB are 1024 bytes,
// M 1024 K, G 1024 M, T 1024 G; B or no unit is bytes. A space before the
// unit is allowed. Negative values, fractions and overflow are errors.
func Parse(s string) (int64, error) {
	t := strings.ToLower(strings.TrimSpace(s))
	mult := int64(1)
	for _, u := range units[:4] {
		letter := strings.ToLower(u.suffix[:1])
		if num, ok := cutAnySuffix(t, letter+"ib", letter+"b", letter); ok {
			t, mult = strings.TrimSpace(num), u.mult
			break
		}
	}
	if mult == 1 {
		t = strings.TrimSpace(strings.TrimSuffix(t, "b"))
	}
	n, err := strconv.ParseInt(t, 10, 64)
	if err != nil || n < 0 || strings.HasPrefix(t, "+") {
		return 0, fmt.Errorf("%q: %w", s, ErrSyntax)
	}
	if n > (1<<63-1)/mult {
		return 0, fmt.Errorf("%q: too large", s)
	}
	return n * mult, nil
}

// cutAnySuffix cuts the first of suffixes that s ends with.
func cutAnySuffix(s string, suffixes ...string) (string, bool) {
	for _, suf := range suffixes {
		if num, ok := strings.CutSuffix(s, suf); ok {
			return num, true
		}
	}
	return s, false
}

// Format writes n with the largest binary unit that divides it exactly.
func Format(n int64) string {
	for _, u := range units[:4] {
		if n != 0 && n%u.mult == 0 {
			return strconv.FormatInt(n/u.mult, 10) + u.suffix
		}
	}
	return strconv.FormatInt(n, 10) + "B"
}
