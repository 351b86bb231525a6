package proxy

import (
	"strconv"
	"testing"

	"github.com/cellar-cache/cellar/cache"
)

// TestConformanceMovesUnderSafeCookies runs, under cellar's default
// (cache.PersonalSafe), the four suite tests whose outcome it changes on
// purpose: a response with Set-Cookie, or to a request with
// Authorization, shared on max-age alone (or must-revalidate) is not
// stored. They pass (as "cached") under PersonalRFC in their own suites.
func TestConformanceMovesUnderSafeCookies(t *testing.T) {
	auth := cstep{reqHdr: []string{"Authorization: FOO"}, wantReqHdr: []string{"Authorization: FOO"}, respHdr: []string{"Cache-Control: max-age=3600, must-revalidate", "Date: @0"}, pause: true}
	for _, tt := range []ctest{
		{"other-set-cookie", "optimal", reuseNow("not_cached", fresh("Set-Cookie: a=b")...)},
		{"other-authorization-must-revalidate", "optimal", []cstep{auth, {expect: "not_cached"}}},
		{"headers-store-Set-Cookie", "required", []cstep{
			{respHdr: []string{"Date: @0", "Set-Cookie: a=c", "Cache-Control: max-age=3600"}, pause: true},
			{expect: "not_cached"},
		}},
		{"304-etag-update-response-Set-Cookie", "optimal", []cstep{
			{respHdr: []string{"Date: @0", "Set-Cookie: a=b", "Cache-Control: max-age=2", `ETag: "Set-Cookie-etag-1"`}, pause: true},
			{expect: "not_cached"}, // the suite: etag_validated

		}},
	} {
		t.Run(tt.id, func(t *testing.T) { conformance(t, tt.steps) })
	}
}

// ctest is one conformance suite test: its id (the subtest name), its
// kind in the suite ("required", "optimal", "check") and its requests.
type ctest struct {
	id    string
	kind  string
	steps []cstep
}

// reuse is the commonest shape in the suite: one response with the given
// fields, a 3 s pause, then a plain request with the expected outcome.
func reuse(expect string, hdr ...string) []cstep {
	return []cstep{{respHdr: hdr, pause: true}, {expect: expect}}
}

// reuseNow is reuse without the pause.
func reuseNow(expect string, hdr ...string) []cstep {
	return []cstep{{respHdr: hdr}, {expect: expect}}
}

// runConformance runs the suite's tests on a cache with the RFC's
// treatment of personalised exchanges (cache.PersonalRFC), which the suite
// measures; TestConformanceMovesUnderSafeCookies runs the tests whose
// outcome cellar's default (cache.PersonalSafe) changes.
func runConformance(t *testing.T, tests []ctest, opts ...rigOption) {
	rfc := withCacheOptions(func(o *cache.Options) { o.Personal = cache.PersonalRFC })
	opts = append([]rigOption{rfc}, opts...)
	for _, tt := range tests {
		t.Run(tt.id, func(t *testing.T) {
			conformance(t, tt.steps, opts...)
		})
	}
}

// TestConformanceCCFreshness is the suite's cc-freshness.mjs (shared-cache
// tests; browser_only ones do not apply). Already covered elsewhere, so not
// repeated here: freshness-max-age-s-maxage-shared-shorter,
// freshness-max-age-s-maxage-shared-longer, freshness-max-age-expires and
// freshness-max-age-case-insenstive (TestFreshnessLifetimeFollowsTheRFCOrder).
func TestConformanceCCFreshness(t *testing.T) {
	runConformance(t, []ctest{
		{"freshness-none", "check", reuse("not_cached")},
		{"freshness-max-age", "optimal", reuse("cached", "Cache-Control: max-age=3600")},
		{"freshness-max-age-stale", "required", []cstep{becomeStale(), {expect: "not_cached"}}},
		{"freshness-max-age-0", "required", reuse("not_cached", "Cache-Control: max-age=0")},
		{"freshness-max-age-max-minus-1", "optimal", reuse("cached", "Cache-Control: max-age=2147483647")},
		{"freshness-max-age-max", "optimal", reuse("cached", "Cache-Control: max-age=2147483648")},
		{"freshness-max-age-max-plus-1", "optimal", reuse("cached", "Cache-Control: max-age=2147483649")},
		{"freshness-max-age-max-plus", "optimal", reuse("cached", "Cache-Control: max-age=99999999999")},
		{"freshness-max-age-age", "required", reuse("not_cached", "Date: @0", "Cache-Control: max-age=3600", "Age: 7200")},
		{"freshness-max-age-date", "check", reuse("not_cached", "Date: @-7200", "Cache-Control: max-age=3600")},
		{"freshness-max-age-expires-invalid", "optimal", reuse("cached", "Cache-Control: max-age=3600", "~Expires: 0", "Date: @0")},
		{"freshness-max-age-0-expires", "required", reuse("not_cached", "Expires: @3600", "Cache-Control: max-age=0", "Date: @0")},
		{"freshness-max-age-extension", "optimal", reuse("cached", "Cache-Control: foobar, max-age=3600")},
		{"freshness-max-age-negative", "required", reuse("not_cached", "Cache-Control: max-age=-3600")},
		{"freshness-s-maxage-shared", "required", reuse("cached", "Cache-Control: s-maxage=3600")},
		{"freshness-max-age-s-maxage-shared-longer-reversed", "required", reuse("not_cached", "Cache-Control: s-maxage=1, max-age=3600")},
		{"freshness-max-age-s-maxage-shared-longer-multiple", "required", reuse("not_cached", "Cache-Control: max-age=3600", "Cache-Control: s-maxage=1")},
		{"freshness-max-age-s-maxage-shared-shorter-expires", "optimal", reuse("cached", "Expires: @-10", "Cache-Control: max-age=0, s-maxage=3600")},
	})
}

// TestConformanceCCParse is the suite's cc-parse.mjs.
// freshness-max-age-quoted is covered by TestFreshnessLifetimeFollowsTheRFCOrder.
func TestConformanceCCParse(t *testing.T) {
	runConformance(t, []ctest{
		// check: the suite asks whether the fresh value wins. cellar's
		// documented choice (cache/doc.go) is the smallest of duplicate
		// freshness directives, the conservative reading (§4.2.1), so
		// these four are not reused.
		{"freshness-max-age-two-fresh-stale-sameline", "check", reuse("not_cached", "~Cache-Control: max-age=1800, max-age=1")},
		{"freshness-max-age-two-fresh-stale-sepline", "check", reuse("not_cached", "~Cache-Control: max-age=1800", "~Cache-Control: max-age=1")},
		{"freshness-max-age-two-stale-fresh-sameline", "check", reuse("not_cached", "~Cache-Control: max-age=1, max-age=1800")},
		{"freshness-max-age-two-stale-fresh-sepline", "check", reuse("not_cached", "~Cache-Control: max-age=1", "~Cache-Control: max-age=1800")},
		{"freshness-max-age-ignore-quoted", "required", reuse("not_cached", `~Cache-Control: extension="max-age=3600", max-age=1`)},
		{"freshness-max-age-ignore-quoted-rev", "required", reuse("not_cached", `~Cache-Control: max-age=1, extension="max-age=3600"`)},
		// check: the suite asks whether white space around "=" makes
		// max-age ignored. cellar's deliberate correction (see
		// TestCacheControlCorrections in cache) reads it as max-age=3600.
		{"freshness-max-age-space-before-equals", "check", reuse("cached", "~Cache-Control: max-age =3600")},
		{"freshness-max-age-space-after-equals", "check", reuse("cached", "~Cache-Control: max-age= 3600")},
		{"freshness-max-age-leading-zero", "required", reuse("cached", "~Cache-Control: max-age=003600")},
		{"freshness-max-age-single-quoted", "required", reuse("not_cached", "~Cache-Control: max-age='3600'")},
		// check: the suite asks whether these invalid values are reused.
		// cellar's documented choice: an invalid max-age counts as 0
		// (stale), which §4.2.1 encourages.
		{"freshness-max-age-decimal-zero", "check", reuse("not_cached", "~Cache-Control: max-age=3600.0")},
		{"freshness-max-age-decimal-five", "check", reuse("not_cached", "~Cache-Control: max-age=3600.5")},
		{"freshness-max-age-a100", "check", reuse("not_cached", "~Cache-Control: max-age=a3600")},
		{"freshness-max-age-100a", "check", reuse("not_cached", "~Cache-Control: max-age=3600a")},
	})
}

// TestConformanceAgeParse is the suite's age-parse.mjs, all check tests.
// The suite expects every one to be reused. cellar's documented choice
// (cache.ParseAge) is the largest valid delta-seconds among all Age lines
// and list members, the conservative reading; so an Age list carrying 7200
// anywhere makes the max-age=3600 response stale, and those cases are not
// reused. The suite also expects the origin's Age to reach the first client
// unchanged; cellar sends its own current_age (§5.1, §4.2.3) instead, a
// valid value, so the suite counts all eleven as setup failures.
func TestConformanceAgeParse(t *testing.T) {
	h := func(age ...string) []string {
		out := []string{"Date: @0", "Cache-Control: max-age=3600"}
		for _, a := range age {
			out = append(out, "~Age: "+a)
		}
		return out
	}
	runConformance(t, []ctest{
		{"age-parse-nonnumeric", "check", reuse("cached", h("abc")...)},
		{"age-parse-negative", "check", reuse("cached", h("-7200")...)},
		{"age-parse-float", "check", reuse("cached", h("7200.0")...)},
		{"age-parse-suffix", "check", reuse("not_cached", h("7200,0")...)},
		{"age-parse-suffix-twoline", "check", reuse("not_cached", h("7200", "0")...)},
		{"age-parse-prefix", "check", reuse("not_cached", h("0,7200")...)},
		{"age-parse-prefix-twoline", "check", reuse("not_cached", h("0", "7200")...)},
		{"age-parse-dup-0", "check", reuse("cached", h("0, 0")...)},
		{"age-parse-dup-0-twoline", "check", reuse("cached", h("0", "0")...)},
		{"age-parse-dup-old", "check", reuse("not_cached", h("7200, 7200")...)},
		{"age-parse-dup-old-twoline", "check", reuse("not_cached", h("7200", "7200")...)},
	})
}

// TestConformanceExpires is the suite's expires-freshness.mjs.
// freshness-expires-invalid is covered by TestFreshnessLifetimeFollowsTheRFCOrder.
func TestConformanceExpires(t *testing.T) {
	runConformance(t, []ctest{
		{"freshness-expires-future", "optimal", reuse("cached", "Expires: @2592000", "Date: @0")},
		{"freshness-expires-past", "required", reuse("not_cached", "Expires: @-2592000", "Date: @0")},
		{"freshness-expires-present", "required", reuseNow("not_cached", "Expires: @0", "Date: @0")},
		{"freshness-expires-old-date", "required", reuse("not_cached", "Expires: @300", "Date: @400")},
		{"freshness-expires-invalid-date", "optimal", reuseNow("cached", "~Date: foo", "Expires: @10")},
		{"freshness-expires-age-slow-date", "required", reuseNow("not_cached", "Date: @-10", "Expires: @10", "Age: 25")},
		{"freshness-expires-age-fast-date", "required", reuseNow("not_cached", "Date: @10", "Expires: @20", "Age: 15")},
	})
}

// TestConformanceExpiresParse is the suite's expires-parse.mjs: an Expires
// that is not a valid HTTP-date (RFC 9110 §5.6.7) means already expired
// (RFC 9111 §5.3).
func TestConformanceExpiresParse(t *testing.T) {
	e := func(expect string, ex ...string) []cstep {
		h := []string{"Date: @0"}
		for _, v := range ex {
			h = append(h, "~Expires: "+v)
		}
		return reuse(expect, h...)
	}
	runConformance(t, []ctest{
		{"freshness-expires-32bit", "optimal", e("cached", "Tue, 19 Jan 2038 14:14:08 GMT")},
		{"freshness-expires-far-future", "optimal", e("cached", "Sun, 21 Nov 2286 04:46:39 GMT")},
		{"freshness-expires-rfc850", "optimal", e("cached", "Thursday, 18-Aug-50 02:01:18 GMT")},
		{"freshness-expires-ansi-c", "optimal", e("cached", "Thu Aug  8 02:01:18 2050")},
		{"freshness-expires-wrong-case-weekday", "optimal", e("cached", "THU, 18 Aug 2050 02:01:18 GMT")},
		{"freshness-expires-wrong-case-month", "optimal", e("cached", "Thu, 18 AUG 2050 02:01:18 GMT")},
		{"freshness-expires-wrong-case-tz", "optimal", e("cached", "Thu, 18 Aug 2050 02:01:18 gMT")},
		{"freshness-expires-invalid-utc", "required", e("not_cached", "Thu, 18 Aug 2050 02:01:18 UTC")},
		{"freshness-expires-invalid-aest", "required", e("not_cached", "Thu, 18 Aug 2050 02:01:18 AEST")},
		{"freshness-expires-invalid-2-digit-year", "required", e("not_cached", "Thu, 18 Aug 50 02:01:18 GMT")},
		{"freshness-expires-invalid-no-comma", "required", e("not_cached", "Thu 18 Aug 2050 02:01:18 GMT")},
		{"freshness-expires-invalid-multiple-spaces", "required", e("not_cached", "Thu, 18  Aug  2050 02:01:18 GMT")},
		{"freshness-expires-invalid-date-dashes", "required", e("not_cached", "Thu, 18-Aug-2050 02:01:18 GMT")},
		{"freshness-expires-invalid-time-periods", "required", e("not_cached", "Thu, 18 Aug 2050 02.01.18 GMT")},
		{"freshness-expires-invalid-1-digit-hour", "required", e("not_cached", "Thu, 18 Aug 2050 2:01:18 GMT")},
		{"freshness-expires-invalid-multiple-lines", "required", e("not_cached", "Thu, 18 Aug 2050 2:01:18 GMT", "Thu, 18 Aug 2050 2:01:19 GMT")},
	})
}

// TestConformanceHeuristic is the suite's heuristic-freshness.mjs: a
// response with Last-Modified a day old and no explicit freshness is
// reused only for the heuristically cacheable statuses (RFC 9110 §15.1) or
// with public (RFC 9111 §4.2.2, §3).
func TestConformanceHeuristic(t *testing.T) {
	var tests []ctest
	for _, c := range []struct {
		ok     bool
		code   int
		public bool
	}{
		{true, 200, false}, {false, 201, false}, {false, 202, false}, {true, 203, false},
		{true, 204, false}, {false, 403, false}, {true, 404, false}, {true, 405, false},
		{true, 410, false}, {true, 414, false}, {true, 501, false}, {false, 502, false},
		{false, 503, false}, {false, 504, false}, {false, 599, false}, {true, 599, true},
	} {
		expect, kind := "not_cached", "required"
		if c.ok {
			expect, kind = "cached", "optimal"
		}
		hdr := []string{"Last-Modified: @-86400", "Date: @0"}
		if c.public {
			hdr = append(hdr, "Cache-Control: public")
		}
		body := sp("content-" + strconv.Itoa(c.code))
		if c.code == 204 {
			body = sp("")
		}
		id := "heuristic-" + strconv.Itoa(c.code) + "-" + expect
		tests = append(tests, ctest{id, kind, []cstep{
			{status: c.code, respHdr: hdr, body: body},
			{status: c.code, body: body, expect: expect},
		}})
	}
	// check: how long a Last-Modified ago is heuristically fresh after
	// the suite's 3 s pause. cellar uses 10% of it (RFC 9111 §4.2.2's
	// typical setting), in whole seconds, so 5, 10 and 30 s are not.
	for _, d := range []int{5, 10, 30, 60, 300, 600, 1200, 1800, 3600, 3600 * 12, 3600 * 24} {
		expect := "cached"
		if d <= 30 {
			expect = "not_cached"
		}
		tests = append(tests, ctest{"heuristic-delta-" + strconv.Itoa(d), "check",
			reuse(expect, "Last-Modified: @-"+strconv.Itoa(d), "Date: @0")})
	}
	runConformance(t, tests)
}
