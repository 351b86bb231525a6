package compress

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

var allCodings = []string{Gzip, Brotli, Zstd}

// TestNegotiateFollowsRFC9110AcceptEncoding checks Negotiate against the rules
// and examples of RFC 9110 §12.5.3.
func TestNegotiateFollowsRFC9110AcceptEncoding(t *testing.T) {
	tests := []struct {
		name      string
		accept    []string // nil: field absent
		available []string
		order     []string
		want      string
		wantOK    bool
	}{
		// The examples of §12.5.3.
		{"example compress, gzip", []string{"compress, gzip"}, allCodings, nil, Gzip, true},
		{"example empty value means identity only", []string{""}, allCodings, nil, Identity, true},
		{"example star picks first in order", []string{"*"}, allCodings, nil, Brotli, true},
		{"example compress;q=0.5, gzip;q=1.0", []string{"compress;q=0.5, gzip;q=1.0"}, allCodings, nil, Gzip, true},
		{"example gzip, identity;q=0.5, *;q=0", []string{"gzip;q=1.0, identity; q=0.5, *;q=0"}, allCodings, nil, Gzip, true},
		{"example gzip, identity;q=0.5, *;q=0 without gzip", []string{"gzip;q=1.0, identity; q=0.5, *;q=0"}, []string{Brotli}, nil, Identity, true},

		// Absent field: anything acceptable, identity preferred.
		{"absent field prefers identity", nil, allCodings, nil, Identity, true},
		{"absent field with nothing available", nil, nil, nil, Identity, true},

		// Weights.
		{"higher q wins over order", []string{"br;q=0.5, gzip;q=0.8"}, allCodings, nil, Gzip, true},
		{"three decimals count", []string{"br;q=0.501, zstd;q=0.5"}, allCodings, nil, Brotli, true},
		{"q=0 excludes a coding", []string{"br;q=0, gzip"}, allCodings, nil, Gzip, true},
		{"q=0.000 excludes a coding", []string{"br;q=0.000, gzip;q=0.1"}, allCodings, nil, Gzip, true},
		{"q=1.000 is valid", []string{"gzip;q=1.000"}, allCodings, nil, Gzip, true},
		{"Q is case-insensitive", []string{"br;Q=0.1, gzip;Q=0.2"}, allCodings, nil, Gzip, true},
		{"whitespace around semicolon", []string{"br \t; q=0.1 ,gzip ;q=0.2"}, allCodings, nil, Gzip, true},
		{"tie broken by default order", []string{"gzip, zstd, br"}, allCodings, nil, Brotli, true},
		{"tie broken by given order", []string{"gzip, zstd, br"}, allCodings, []string{Gzip, Zstd, Brotli}, Gzip, true},
		{"tie with coding missing from order ranks after order", []string{"gzip, br"}, allCodings, []string{Gzip}, Gzip, true},
		{"codings missing from order rank by available", []string{"gzip, br"}, []string{Gzip, Brotli}, []string{Zstd}, Gzip, true},

		// Malformed members are ignored, the rest still counts.
		{"q above 1 ignores member", []string{"br;q=1.5, gzip;q=0.1"}, allCodings, nil, Gzip, true},
		{"q=1.001 ignores member", []string{"br;q=1.001, gzip;q=0.1"}, allCodings, nil, Gzip, true},
		{"four decimals ignores member", []string{"br;q=0.5000, gzip;q=0.1"}, allCodings, nil, Gzip, true},
		{"empty q ignores member", []string{"br;q=, gzip;q=0.1"}, allCodings, nil, Gzip, true},
		{"negative q ignores member", []string{"br;q=-1, gzip;q=0.1"}, allCodings, nil, Gzip, true},
		{"non-numeric q ignores member", []string{"br;q=high, gzip;q=0.1"}, allCodings, nil, Gzip, true},
		{"two q params ignore member", []string{"br;q=0.9;q=0.9, gzip;q=0.1"}, allCodings, nil, Gzip, true},
		{"malformed q=0 does not exclude", []string{"gzip;q=0.0.0"}, []string{Gzip}, nil, Identity, true},
		{"unknown parameter is ignored", []string{`gzip;level=9;q=0.5, br;foo="a,b";q=0.4`}, allCodings, nil, Gzip, true},
		{"comma inside quoted parameter does not split", []string{`br;x="gzip, zstd";q=0.2, zstd;q=0.1`}, []string{Brotli, Zstd}, nil, Brotli, true},
		{"name that is not a token is ignored", []string{"g(zip), zstd;q=0.1"}, allCodings, nil, Zstd, true},
		{"empty members are ignored", []string{",, gzip ,,"}, allCodings, nil, Gzip, true},
		{"only malformed members means identity", []string{"br;q=2"}, allCodings, nil, Identity, true},

		// Names.
		{"names are case-insensitive", []string{"GZIP"}, allCodings, nil, Gzip, true},
		{"available names are case-insensitive", []string{"gzip"}, []string{"GZip"}, nil, Gzip, true},
		{"x-gzip means gzip", []string{"x-gzip"}, allCodings, nil, Gzip, true},
		{"x-gzip available is gzip", []string{"gzip"}, []string{"x-gzip"}, nil, Gzip, true},
		{"unknown codings are ignored", []string{"compress, lz4, gzip;q=0.1"}, allCodings, nil, Gzip, true},
		{"unavailable coding falls back to identity", []string{"br"}, []string{Gzip}, nil, Identity, true},
		{"coding listed twice takes highest q", []string{"gzip;q=0, gzip;q=0.5, br;q=0.4"}, allCodings, nil, Gzip, true},
		{"gzip and x-gzip take highest q", []string{"x-gzip;q=0.9, gzip;q=0.1, br;q=0.5"}, allCodings, nil, Gzip, true},
		{"several field lines combine", []string{"br;q=0.1", "gzip;q=0.2"}, allCodings, nil, Gzip, true},

		// Wildcard.
		{"star gives its q to unlisted codings", []string{"gzip;q=0.2, *;q=0.3"}, allCodings, nil, Brotli, true},
		{"explicit entry beats star", []string{"br;q=0, *"}, allCodings, nil, Zstd, true},
		{"star q=0 excludes unlisted codings", []string{"*;q=0, gzip;q=0.1"}, allCodings, nil, Gzip, true},
		{"star covers identity", []string{"*;q=0.5, gzip;q=0.4"}, []string{Gzip}, nil, Identity, true},

		// Identity.
		{"identity acceptable by default ranks below listed codings", []string{"gzip;q=0.001"}, allCodings, nil, Gzip, true},
		{"identity ranks last on ties", []string{"identity, gzip"}, allCodings, nil, Gzip, true},
		{"identity in order ranks by order", []string{"identity, gzip"}, allCodings, []string{Identity, Gzip}, Identity, true},
		{"identity with higher q wins", []string{"identity;q=1, gzip;q=0.5"}, allCodings, nil, Identity, true},
		{"identity;q=0 with nothing else acceptable fails", []string{"identity;q=0, br"}, []string{Gzip}, nil, Identity, false},
		{"star;q=0 excludes identity", []string{"*;q=0"}, allCodings, nil, Identity, false},
		{"star;q=0 with identity listed keeps identity", []string{"*;q=0, identity;q=0.1"}, allCodings, nil, Identity, true},
		{"identity;q=0 but gzip acceptable", []string{"identity;q=0, gzip;q=0.1"}, allCodings, nil, Gzip, true},
		{"star or junk in available is ignored", []string{"*"}, []string{"*", "a b", ""}, nil, Identity, true},
		{"deflate available from origin", []string{"deflate, gzip;q=0.5"}, []string{"deflate"}, nil, "deflate", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := Negotiate(tt.accept, tt.available, tt.order)
			if got != tt.want || ok != tt.wantOK {
				t.Errorf("Negotiate(%q, %q, %q) = %q, %v; want %q, %v", tt.accept, tt.available, tt.order, got, ok, tt.want, tt.wantOK)
			}
		})
	}
}

func TestParseQValueFollowsRFC9110Grammar(t *testing.T) {
	tests := []struct {
		in   string
		want int
		ok   bool
	}{
		{"0", 0, true}, {"1", 1000, true}, {"0.", 0, true}, {"1.", 1000, true},
		{"0.5", 500, true}, {"0.05", 50, true}, {"0.005", 5, true}, {"0.999", 999, true},
		{"1.0", 1000, true}, {"1.000", 1000, true},
		{"", 0, false}, {".5", 0, false}, {"1.5", 0, false}, {"1.0001", 0, false},
		{"0.0001", 0, false}, {"2", 0, false}, {"01", 0, false}, {"0,5", 0, false},
		{"0.5 ", 0, false}, {"+0.5", 0, false}, {"1e0", 0, false},
	}
	for _, tt := range tests {
		got, ok := parseQValue(tt.in)
		if got != tt.want || ok != tt.ok {
			t.Errorf("parseQValue(%q) = %d, %v; want %d, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}

func TestNegotiateDoesNotAllocate(t *testing.T) {
	accept := []string{"gzip, deflate, br;q=0.9, zstd;q=0.8, *;q=0.1"}
	allocs := testing.AllocsPerRun(100, func() {
		Negotiate(accept, allCodings, nil)
	})
	if allocs != 0 {
		t.Errorf("Negotiate allocates %v times per call, want 0", allocs)
	}
}

// FuzzNegotiate checks properties of Negotiate on arbitrary field values. As
// a plain test it runs the seeds only.
func FuzzNegotiate(f *testing.F) {
	for _, s := range []string{
		"", "*", "gzip", "compress, gzip", "compress;q=0.5, gzip;q=1.0",
		"gzip;q=1.0, identity; q=0.5, *;q=0", "br;q=1.001", "identity;q=0",
		"*;q=0", `br;x="a,b\"c";q=0.3, zstd`, "GZIP;Q=0.5,,, x-gzip", "\"", ";q=1",
		"gzip, deflate, br, zstd", "br;q=0.5;q=0.6", "\t gzip \t;\tq=0.100",
	} {
		f.Add(s, "gzip,br")
		f.Add(s, "zstd")
	}
	for _, c := range clientAcceptEncodings(f) {
		f.Add(c[0], "br,zstd,gzip")
	}
	f.Fuzz(func(t *testing.T, accept, avail string) {
		available := strings.Split(avail, ",")
		got, ok := Negotiate([]string{accept}, available, nil)
		if !ok && got != Identity {
			t.Fatalf("Negotiate(%q) = %q, false; want identity when not ok", accept, got)
		}
		if got != Identity && !slices.ContainsFunc(available, func(a string) bool { return canonical(a) == got }) {
			t.Fatalf("Negotiate(%q, %q) = %q, which is not available", accept, available, got)
		}
		// The result does not depend on the order of available when the
		// tie-break order covers every coding.
		rev := slices.Clone(available)
		slices.Reverse(rev)
		order := []string{Brotli, Zstd, Gzip, "deflate"}
		for _, a := range available {
			order = append(order, canonical(a))
		}
		g1, ok1 := Negotiate([]string{accept}, available, order)
		g2, ok2 := Negotiate([]string{accept}, rev, order)
		if g1 != g2 || ok1 != ok2 {
			t.Fatalf("Negotiate(%q) depends on the order of available: %q, %v vs %q, %v", accept, g1, ok1, g2, ok2)
		}
		// Field lines combine like a comma-separated list (RFC 9110 §5.3),
		// outside quoted strings.
		if !strings.Contains(accept, `"`) {
			if a, b, found := strings.Cut(accept, ","); found {
				g3, ok3 := Negotiate([]string{a, b}, available, nil)
				if g3 != got || ok3 != ok {
					t.Fatalf("Negotiate(%q) = %q, %v but split into lines = %q, %v", accept, got, ok, g3, ok3)
				}
			}
		}
	})
}

// clientAcceptEncodings reads testdata/accept-encoding.txt.
func clientAcceptEncodings(tb testing.TB) (lines [][3]string) {
	tb.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", "accept-encoding.txt"))
	if err != nil {
		tb.Fatal(err)
	}
	for l := range strings.Lines(string(data)) {
		l = strings.TrimSuffix(l, "\n")
		if strings.HasPrefix(l, "#") || l == "" {
			continue
		}
		f := strings.Split(l, "\t")
		if len(f) != 3 {
			tb.Fatalf("accept-encoding.txt: %q has %d tab-separated fields, want 3", l, len(f))
		}
		lines = append(lines, [3]string(f))
	}
	return lines
}

func TestNegotiateRealClients(t *testing.T) {
	for _, c := range clientAcceptEncodings(t) {
		got, ok := Negotiate([]string{c[0]}, allCodings, nil)
		if got != c[1] || !ok {
			t.Errorf("%s: Negotiate(%q) = %q, %v; want %q, true", c[2], c[0], got, ok, c[1])
		}
	}
}
