package h1

import (
	"net/http"
	"strings"
	"testing"
)

// TestFieldsAreWrittenAsNetHTTPWritesThem: the engine writes a header
// field as net/http's Header.Write does (trimmed, CR and LF made spaces,
// a name that is not a token skipped), whether the value takes the fast
// path or not.
func TestFieldsAreWrittenAsNetHTTPWritesThem(t *testing.T) {
	for _, tc := range []struct{ k, v string }{
		{"Cache-Status", "cellar; hit; ttl=3594"},
		{"Etag", `"6b0f1e86-400"`},
		{"X-Empty", ""},
		{"X-One", "a"},
		{"X-Tab", "a\tb"},
		{"X-Padded", "  a b \t"},
		{"X-Split", "a\r\nSet-Cookie: x=1"},
		{"X-Lf", "a\nb"},
		{"X-End-Cr", "ab\r"},
		{"X-Nbsp", "\u00a0a\u00a0"},
		{"X-Nel", "a\u0085"},
		{"X-Utf8", "é€"},
		{"X-Vt", "\va\f"},
		{"Bad Name", "x"},
		{"Bad:Name", "x"},
	} {
		var want strings.Builder
		http.Header{tc.k: {tc.v}}.Write(&want)
		if got := string(appendField(nil, tc.k, []string{tc.v})); got != want.String() {
			t.Errorf("%q: %q: wrote %q; net/http writes %q", tc.k, tc.v, got, want.String())
		}
	}
}
