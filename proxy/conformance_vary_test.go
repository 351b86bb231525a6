package proxy

import (
	"testing"

	"github.com/cellar-cache/cellar/cache"
)

// TestConformanceVary is the suite's vary.mjs (RFC 9111 §4.1). vary-star
// is covered by TestVaryStarNeverMatches.
func TestConformanceVary(t *testing.T) {
	setup := func(req []string, vary string, extra ...string) cstep {
		return cstep{reqHdr: req, respHdr: append([]string{"Cache-Control: max-age=5000", "Last-Modified: @-3000", "Date: @0", vary}, extra...)}
	}
	foo1 := []string{"Foo: 1"}
	two := []string{"Foo: 1", "Bar: abc"}
	three := []string{"Foo: 1", "Bar: abc", "Baz: 789"}
	lang := func(id, second string, extra ...string) ctest {
		return ctest{id, "optimal", []cstep{
			setup([]string{"Accept-Language: en, de"}, "Vary: Accept-Language", extra...),
			{reqHdr: []string{"Accept-Language: " + second}, expect: "cached"},
		}}
	}
	runConformance(t, []ctest{
		{"vary-match", "optimal", []cstep{setup(foo1, "Vary: Foo"), {reqHdr: foo1, expect: "cached"}}},
		{"vary-no-match", "required", []cstep{setup(foo1, "Vary: Foo"), {reqHdr: []string{"Foo: 2"}, expect: "not_cached"}}},
		{"vary-omit-stored", "required", []cstep{setup(nil, "Vary: Foo"), {reqHdr: foo1, expect: "not_cached"}}},
		{"vary-omit", "required", []cstep{setup(foo1, "Vary: Foo"), {expect: "not_cached"}}},
		{"vary-invalidate", "optimal", []cstep{
			func() cstep { s := setup(foo1, "Vary: Foo"); s.body = sp("foo_1"); return s }(),
			func() cstep {
				s := setup([]string{"Foo: 2"}, "Vary: Foo")
				s.body, s.expect = sp("foo_2"), "not_cached"
				return s
			}(),
			{reqHdr: foo1, wantBody: sp("foo_1"), expect: "cached"},
		}},
		{"vary-cache-key", "optimal", []cstep{setup([]string{"Foo: 1", "Other: 2"}, "Vary: Foo"), {reqHdr: []string{"Foo: 1", "Other: 3"}, expect: "cached"}}},
		{"vary-2-match", "optimal", []cstep{setup(two, "~Vary: Foo, Bar"), {reqHdr: two, expect: "cached"}}},
		{"vary-2-no-match", "required", []cstep{setup(two, "~Vary: Foo, Bar"), {reqHdr: []string{"Foo: 2", "Bar: abc"}, expect: "not_cached"}}},
		{"vary-2-match-omit", "required", []cstep{setup(two, "~Vary: Foo, Bar"), {expect: "not_cached"}}},
		{"vary-3-match", "optimal", []cstep{setup(three, "~Vary: Foo, Bar, Baz"), {reqHdr: three, expect: "cached"}}},
		{"vary-3-no-match", "required", []cstep{setup(three, "~Vary: Foo, Bar, Baz"), {reqHdr: []string{"Foo: 2", "Bar: abc", "Baz: 789"}, expect: "not_cached"}}},
		{"vary-3-order", "required", []cstep{setup(three, "~Vary: Foo, Bar, Baz"), {reqHdr: []string{"Foo: 1", "Baz: 789", "Bar: abcde"}, expect: "not_cached"}}},
		{"vary-3-omit", "optimal", []cstep{setup([]string{"Foo: 1", "Baz: 789"}, "~Vary: Foo, Bar, Baz"), {reqHdr: []string{"Foo: 1", "Baz: 789"}, expect: "cached"}}},
		{"vary-normalise-combine", "optimal", []cstep{setup([]string{"Foo: 1, 2"}, "Vary: Foo"), {reqHdr: []string{"Foo: 1", "Foo: 2"}, expect: "cached"}}},
		// Not cached, deliberately: cellar's secondary key normalizes
		// white space only and keeps case and order (cache.SecondaryKey,
		// TestSecondaryKeyCombinesSeveralVaryFieldsCaseInsensitively),
		// since an origin may break ties between equal weights by order
		// and cellar knows no field's value syntax.
		{"vary-normalise-lang-order", "optimal", []cstep{
			setup([]string{"Accept-Language: en, de"}, "Vary: Accept-Language"),
			{reqHdr: []string{"Accept-Language: de, en"}, expect: "not_cached"},
		}},
		{"vary-normalise-lang-case", "optimal", []cstep{
			setup([]string{"Accept-Language: en, de"}, "Vary: Accept-Language"),
			{reqHdr: []string{"Accept-Language: eN, De"}, expect: "not_cached"},
		}},
		lang("vary-normalise-lang-space", " en ,   de"),
		// The suite asks a cache to choose the stored variant by its
		// Content-Language against the new request's q-values. cellar
		// keys variants by the normalized request fields only (RFC 9111
		// §4.1), so a differently weighted Accept-Language is a new
		// variant.
		{"vary-normalise-lang-select", "optimal", []cstep{
			setup([]string{"Accept-Language: en, de"}, "Vary: Accept-Language", "Content-Language: de"),
			{reqHdr: []string{"Accept-Language: fr;q=0.5, de;q=1.0"}, expect: "not_cached"},
		}},
		{"vary-normalise-space", "optimal", []cstep{setup([]string{"Foo: 1,2"}, "Vary: Foo"), {reqHdr: []string{"Foo:  1, 2 "}, expect: "cached"}}},
	})
}

// TestConformanceVaryNormalised runs the suite's Accept-Language
// normalisation tests with cache.vary.accept_language set to the
// languages the origin serves: order, case and white space then select one
// variant. vary-normalise-lang-select still is not cached: the first
// request is keyed "en" (its preference among the served languages), the
// second "de"; the suite would select by the stored Content-Language.
func TestConformanceVaryNormalised(t *testing.T) {
	setup := cstep{reqHdr: []string{"Accept-Language: en, de"}, respHdr: []string{"Cache-Control: max-age=5000", "Last-Modified: @-3000", "Date: @0", "Vary: Accept-Language", "Content-Language: de"}}
	second := func(lang, expect string) []cstep {
		return []cstep{setup, {reqHdr: []string{"Accept-Language: " + lang}, expect: expect}}
	}
	runConformance(t, []ctest{
		{"vary-normalise-lang-order", "optimal", second("de, en", "cached")},
		{"vary-normalise-lang-case", "optimal", second("eN, De", "cached")},
		{"vary-normalise-lang-space", "optimal", second(" en ,   de", "cached")},
		{"vary-normalise-lang-select", "optimal", second("fr;q=0.5, de;q=1.0", "not_cached")},
	}, withCacheOptions(func(o *cache.Options) {
		o.VaryNormalize.AcceptLanguage = []string{"en", "de"}
	}))
}

// TestConformanceVaryParse is the suite's vary-parse.mjs: "*" anywhere in
// Vary means the response never matches (RFC 9111 §4.1).
func TestConformanceVaryParse(t *testing.T) {
	req := []string{"Foo: 1", "Baz: 789"}
	star := func(vary ...string) []cstep {
		h := []string{"Cache-Control: max-age=5000", "Last-Modified: @-3000", "Date: @0"}
		for _, v := range vary {
			h = append(h, "~Vary: "+v)
		}
		return []cstep{{reqHdr: req, respHdr: h}, {reqHdr: req, expect: "not_cached"}}
	}
	runConformance(t, []ctest{
		{"vary-syntax-star", "required", star("*")},
		{"vary-syntax-star-star", "required", star("*, *")},
		{"vary-syntax-star-star-lines", "required", star("*", "*")},
		{"vary-syntax-empty-star", "required", star(", *")},
		{"vary-syntax-empty-star-lines", "required", star("", "*")},
		{"vary-syntax-star-foo", "required", star("*, Foo")},
		{"vary-syntax-foo-star", "required", star("Foo, *")},
	})
}
