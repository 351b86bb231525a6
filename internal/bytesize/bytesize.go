// Package bytesize parses and formats byte counts with binary suffixes
// (KiB, MiB, GiB, TiB), as cellar's flags and config file write them.
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
var ErrSyntax = errors.New("bytesize: want a whole number of bytes with an optional KiB, MiB, GiB or TiB suffix, e.g. 256MiB")

// Parse reads a size such as "1024", "64KiB", "256MiB" or "2GiB". Suffixes
// are case-sensitive binary units; a space before the suffix is allowed.
// Negative values and overflow are errors.
func Parse(s string) (int64, error) {
	t := strings.TrimSpace(s)
	mult := int64(1)
	for _, u := range units {
		if strings.HasSuffix(t, u.suffix) {
			t, mult = strings.TrimSpace(strings.TrimSuffix(t, u.suffix)), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(t, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%q: %w", s, ErrSyntax)
	}
	if n > (1<<63-1)/mult {
		return 0, fmt.Errorf("%q: too large", s)
	}
	return n * mult, nil
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
