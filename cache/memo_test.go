package cache

import (
	"maps"
	"net/http"
	"slices"
	"testing"
	"time"
)

// TestMemoGivesWhatEvaluatingAfreshGives checks that a Meta built by
// NewMeta or Freshen, which carries what the policy derived from it,
// evaluates exactly like the same Meta without it (as read back from
// disk), and that a Meta whose Header or times were replaced afterwards is
// derived again rather than answered from the stale memo.
func TestMemoGivesWhatEvaluatingAfreshGives(t *testing.T) {
	p := newPolicy(t, Options{Rules: []Rule{{Prefix: "/forced/", TTL: time.Hour}}})
	t0 := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	date := t0.Format(http.TimeFormat)
	cases := [][]string{
		{"Cache-Control: max-age=60", "Date: " + date},
		{"Cache-Control: s-maxage=30, max-age=60, must-revalidate", "Date: " + date, "Age: 10"},
		{"Expires: " + t0.Add(time.Hour).Format(http.TimeFormat), "Date: " + date},
		{"Last-Modified: " + t0.Add(-100*time.Hour).Format(http.TimeFormat), "Date: " + date},
		{"CDN-Cache-Control: max-age=600", "Cache-Control: no-store", "Date: " + date},
		{"Cache-Control: max-age=60, stale-while-revalidate=30, stale-if-error=300", "Date: " + t0.Add(-20*time.Second).Format(http.TimeFormat)},
		{"Cache-Control: no-cache, max-age=60"},
	}
	for _, path := range []string{"/a", "/forced/a"} {
		for _, c := range cases {
			r := get("http://example.com" + path)
			m := p.NewMeta(r, 200, hdr(c...), t0, t0.Add(time.Second))
			if m.memo == nil {
				t.Fatal("NewMeta attached no memo")
			}
			bare := m
			bare.memo = nil
			for _, dt := range []time.Duration{0, 30 * time.Second, 70 * time.Second, 2 * time.Hour} {
				for _, req := range []*http.Request{r, withHeader(r, "Cache-Control", "max-age=5"), withHeader(r, "Cache-Control", "max-stale")} {
					if got, want := p.Evaluate(req, &m, t0.Add(dt)), p.Evaluate(req, &bare, t0.Add(dt)); got != want {
						t.Errorf("%s %v at +%v: with memo %+v, afresh %+v", path, c, dt, got, want)
					}
				}
			}
			f := p.Freshen(&m, hdr("Cache-Control: max-age=5", "Date: "+t0.Add(time.Minute).Format(http.TimeFormat)), t0.Add(time.Minute), t0.Add(time.Minute))
			fb := f
			fb.memo = nil
			if got, want := p.Evaluate(r, &f, t0.Add(2*time.Minute)), p.Evaluate(r, &fb, t0.Add(2*time.Minute)); got != want {
				t.Errorf("%s %v freshened: with memo %+v, afresh %+v", path, c, got, want)
			}
		}
	}

	// A Meta changed after it was built is derived again.
	r := get("http://example.com/a")
	m := p.NewMeta(r, 200, hdr("Cache-Control: max-age=60", "Date: "+date), t0, t0)
	changed := m
	changed.Header = maps.Clone(m.Header)
	changed.Header["Cache-Control"] = []string{"max-age=10"}
	if l := p.Evaluate(r, &changed, t0); l.TTL != 10*time.Second {
		t.Errorf("new Header: TTL %v, want 10s from the new Cache-Control", l.TTL)
	}
	later := m
	later.ResponseTime = t0.Add(50 * time.Second)
	later.RequestTime = later.ResponseTime
	if l, want := p.Evaluate(r, &later, later.ResponseTime), func() Lookup { b := later; b.memo = nil; return p.Evaluate(r, &b, later.ResponseTime) }(); l != want {
		t.Errorf("new times: %+v, want %+v", l, want)
	}
	other := newPolicy(t, Options{DefaultTTL: time.Minute})
	h := hdr("Date: " + date)
	mm := p.NewMeta(r, 200, h, t0, t0)
	if l := other.Evaluate(r, &mm, t0); l.TTL != time.Minute {
		t.Errorf("another policy used this one's memo: TTL %v, want its default 1m", l.TTL)
	}
}

func withHeader(r *http.Request, k, v string) *http.Request {
	r2 := r.Clone(r.Context())
	r2.Header.Set(k, v)
	return r2
}

// TestMemoizedKeepsItsOwnMemo: a Meta that already carries this policy's
// memo is returned as it is (a hit's prepared copy shares the memo instead
// of keeping a second one per stored object); another policy's memo, or a
// Meta whose Header was replaced, gets a new one.
func TestMemoizedKeepsItsOwnMemo(t *testing.T) {
	p := newPolicy(t, Options{})
	t0 := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	r := get("http://example.com/a")
	m := p.NewMeta(r, 200, hdr("Cache-Control: max-age=60", "Date: "+t0.Format(http.TimeFormat)), t0, t0)
	if got := p.Memoized(m); got.memo != m.memo {
		t.Error("Memoized made a second memo for a Meta that has this policy's")
	}
	other := newPolicy(t, Options{})
	if got := other.Memoized(m); got.memo == m.memo || got.memo.p != other {
		t.Error("another policy kept the first policy's memo")
	}
	changed := m
	changed.Header = maps.Clone(m.Header)
	if got := p.Memoized(changed); got.memo == m.memo {
		t.Error("a Meta with a new Header kept the memo of the old one")
	}
}

// TestNewMetaValuesAreIndependent: NewMeta keeps every field's values in
// one array, and their bytes in one string; appending to one field's
// values must leave the others alone.
func TestNewMetaValuesAreIndependent(t *testing.T) {
	p := newPolicy(t, Options{})
	t0 := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	h := hdr("Cache-Control: max-age=60", "Etag: \"x\"", "Vary: Accept", "Vary: Origin", "Content-Type: text/plain")
	m := p.NewMeta(get("http://example.com/a"), 200, h, t0, t0)
	before := maps.Clone(m.Header)
	for k := range m.Header {
		_ = append(m.Header[k], "appended")
	}
	for k, v := range before {
		if !slices.Equal(m.Header[k], v) {
			t.Errorf("%s: %q after appending to every field, want %q", k, m.Header[k], v)
		}
	}
	if got := m.Header["Vary"]; !slices.Equal(got, []string{"Accept", "Origin"}) {
		t.Errorf("Vary %q, want both values", got)
	}
	// The origin's header is not shared: changing it leaves the stored one.
	h["Etag"][0] = `"y"`
	if got := m.Header.Get("Etag"); got != `"x"` {
		t.Errorf("stored Etag %s after the origin's header changed, want \"x\"", got)
	}
	r := get("http://example.com/a")
	allocs := testing.AllocsPerRun(100, func() { p.NewMeta(r, 200, h, t0, t0) })
	// The map, one array for the values, one string for their bytes, the
	// memo and what deriving the directives takes: 7. A copy of each
	// field's values would add one per field.
	if allocs > 7 {
		t.Errorf("NewMeta: %.0f allocations, want at most 7", allocs)
	}
}
