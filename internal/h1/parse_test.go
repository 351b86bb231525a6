package h1

import (
	"net/http"
	"strings"
	"testing"
)

// TestCommonFieldsAreFound: each of commonFields is found by its
// canonical name (and key gives it for any spelling), other names are not.
func TestCommonFieldsAreFound(t *testing.T) {
	var p requestParser
	for i, k := range commonFields {
		if k != http.CanonicalHeaderKey(k) {
			t.Errorf("%q is not canonical", k)
		}
		if got := commonField([]byte(k)); got != i {
			t.Errorf("commonField(%q) = %d, want %d", k, got, i)
		}
		for _, spelling := range []string{k, strings.ToLower(k), strings.ToUpper(k)} {
			if got, j := p.key([]byte(spelling)); got != k || j != i {
				t.Errorf("key(%q) = %q, %d; want %q, %d", spelling, got, j, k, i)
			}
		}
	}
	for _, k := range []string{"X-Custom", "Hosts", "Hos", "A", "Accept-Encodings", "X-Forwarded-Fo"} {
		if i := commonField([]byte(k)); i >= 0 {
			t.Errorf("commonField(%q) = %d (%q)", k, i, commonFields[i])
		}
	}
}
