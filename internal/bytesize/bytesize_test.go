package bytesize

import (
	"errors"
	"testing"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
		err  bool
	}{
		{"0", 0, false},
		{"1024", 1024, false},
		{"1KiB", 1024, false},
		{"256MiB", 256 << 20, false},
		{"2 GiB", 2 << 30, false},
		{"1TiB", 1 << 40, false},
		{"10B", 10, false},
		{"", 0, true},
		{"-1MiB", 0, true},
		{"1.5GiB", 0, true},
		{"12XB", 0, true},
		{"1mib", 1 << 20, false},
		{"2G", 2 << 30, false},
		{"512M", 512 << 20, false},
		{"2gib", 2 << 30, false},
		{"2GB", 2 << 30, false},
		{"64k", 64 << 10, false},
		{"64 kb", 64 << 10, false},
		{"3t", 3 << 40, false},
		{"7b", 7, false},
		{"+5", 0, true},
		{"G", 0, true},
		{"2iB", 0, true},
		{"1.5G", 0, true},
		{"99999999999TiB", 0, true},
	} {
		got, err := Parse(tc.in)
		if (err != nil) != tc.err || got != tc.want {
			t.Errorf("Parse(%q) = %d, %v; want %d, error %v", tc.in, got, err, tc.want, tc.err)
		}
	}
	if _, err := Parse("x"); !errors.Is(err, ErrSyntax) {
		t.Errorf("Parse(x) error %v is not ErrSyntax", err)
	}
}

func TestFormatRoundTrips(t *testing.T) {
	for _, n := range []int64{0, 1, 1000, 1024, 3 << 20, 256 << 20, 2 << 30, 5 << 40, 1<<20 + 1} {
		s := Format(n)
		got, err := Parse(s)
		if err != nil || got != n {
			t.Errorf("Parse(Format(%d)=%q) = %d, %v", n, s, got, err)
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"1", "256MiB", "2 GiB", "-1", "9223372036854775807", "1TiB"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := Parse(s)
		if err == nil && n < 0 {
			t.Fatalf("Parse(%q) = %d: negative", s, n)
		}
	})
}
