package proxy

import (
	"net/http"
	"strings"
	"testing"
)

// varyOrigin answers with a body naming the request's values of fields,
// and Vary lines vary.
func varyOrigin(fields []string, vary ...string) http.HandlerFunc {
	return func(w http.ResponseWriter, req *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		for _, v := range vary {
			w.Header().Add("Vary", v)
		}
		var parts []string
		for _, f := range fields {
			parts = append(parts, f+"="+strings.Join(req.Header.Values(f), ","))
		}
		w.Write([]byte(strings.Join(parts, ";")))
	}
}

// TestVariantsAreStoredSideBySide checks §4.1: responses that vary are
// stored per secondary key, chosen by the request's field values, and a
// request selecting a variant not yet stored is fwd=vary-miss.
func TestVariantsAreStoredSideBySide(t *testing.T) {
	r := newRig(t, varyOrigin([]string{"Accept-Language"}, "Accept-Language"))
	steps := []struct {
		lang, body string
		hit        bool
		fwd        string
	}{
		{"en", "Accept-Language=en", false, "uri-miss"},
		{"fr", "Accept-Language=fr", false, "vary-miss"},
		{"en", "Accept-Language=en", true, ""},
		{"fr", "Accept-Language=fr", true, ""},
		{"", "Accept-Language=", false, "vary-miss"}, // absent differs from any value
		{"", "Accept-Language=", true, ""},
	}
	for i, s := range steps {
		var hdr []string
		if s.lang != "" {
			hdr = []string{"Accept-Language: " + s.lang}
		}
		resp, body := r.sget("/v", hdr...)
		cs := resp.Header.Get("Cache-Status")
		if body != s.body || isHit(cs) != s.hit || (s.fwd != "" && !hasParam(cs, "fwd="+s.fwd)) {
			t.Errorf("step %d (%q): %q Cache-Status %q, want %q hit=%v fwd=%s", i, s.lang, body, cs, s.body, s.hit, s.fwd)
		}
	}
	r.wantHits(t, 3, "three variants")
}

// TestSecondaryKeyCombinesSeveralVaryFieldsCaseInsensitively checks §4.1:
// several Vary lines and lists are combined, field names match whatever
// their case, and values are compared after whitespace normalization.
func TestSecondaryKeyCombinesSeveralVaryFieldsCaseInsensitively(t *testing.T) {
	r := newRig(t, varyOrigin([]string{"Accept-Language", "X-Device"}, "accept-LANGUAGE", "x-device, Accept-Language"))
	steps := []struct {
		hdr []string
		hit bool
	}{
		{[]string{"Accept-Language: en, fr", "X-Device: mobile"}, false},
		{[]string{"Accept-Language: en,   fr", "X-Device: mobile"}, true},
		{[]string{"Accept-Language: en, fr", "X-Device: desktop"}, false},
		{[]string{"Accept-Language: en", "Accept-Language: fr", "X-Device: desktop"}, true},
		{[]string{"Accept-Language: EN, FR", "X-Device: desktop"}, false},
	}
	for i, s := range steps {
		resp, _ := r.sget("/v2", s.hdr...)
		if isHit(resp.Header.Get("Cache-Status")) != s.hit {
			t.Errorf("step %d %v: Cache-Status %q, want hit=%v", i, s.hdr, resp.Header.Get("Cache-Status"), s.hit)
		}
	}
	r.wantHits(t, 3, "")
}

// TestVaryStarNeverMatches checks §4.1: a response with Vary: * never
// answers a later request.
func TestVaryStarNeverMatches(t *testing.T) {
	for _, vary := range [][]string{{"*"}, {"Accept-Language, *"}, {"Accept-Language", "*"}} {
		t.Run(strings.Join(vary, "|"), func(t *testing.T) {
			r := newRig(t, varyOrigin(nil, vary...))
			for i := 0; i < 2; i++ {
				if resp, _ := r.sget("/star", "Accept-Language: en"); isHit(resp.Header.Get("Cache-Status")) {
					t.Errorf("request %d: Cache-Status %q", i, resp.Header.Get("Cache-Status"))
				}
			}
			r.wantHits(t, 2, "")
		})
	}
}
