package cache

import (
	"net/http"
	"testing"
)

// TestPurgeTagsRemovedFromClientResponses checks that Surrogate-Key and
// Cache-Tag, which origins send for the cache's purge index, are removed
// from responses served from cache and forwarded, unless ExposeTags.
func TestPurgeTagsRemovedFromClientResponses(t *testing.T) {
	for _, expose := range []bool{false, true} {
		p, err := New(Options{ExposeTags: expose})
		if err != nil {
			t.Fatal(err)
		}
		m := &Meta{Status: 200, Header: http.Header{
			"Surrogate-Key": {"a b"},
			"Cache-Tag":     {"c,d"},
			"Content-Type":  {"text/plain"},
		}}
		served := http.Header{}
		p.ServeHeader(served, m)
		forwarded := m.Header.Clone()
		p.StripForClient(forwarded)
		for name, h := range map[string]http.Header{"ServeHeader": served, "StripForClient": forwarded} {
			for _, f := range []string{"Surrogate-Key", "Cache-Tag"} {
				if _, ok := h[f]; ok != expose {
					t.Errorf("ExposeTags=%v: %s: %s present = %v", expose, name, f, ok)
				}
			}
			if h.Get("Content-Type") != "text/plain" {
				t.Errorf("ExposeTags=%v: %s dropped Content-Type", expose, name)
			}
		}
		if got := Tags(m.Header); len(got) != 4 {
			t.Errorf("Tags = %q, want the 4 tags still readable from the stored header", got)
		}
	}
}
