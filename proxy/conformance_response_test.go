package proxy

import (
	"strconv"
	"testing"

	"github.com/cellar-cache/cellar/cache"
)

// TestConformanceStatus is the suite's status.mjs: a fresh response of
// any final status but 206 and 304 may be stored and reused (RFC 9111
// §3), a stale one is not reused; must-understand (§5.2.2.3) stores only
// the statuses cellar understands.
func TestConformanceStatus(t *testing.T) {
	var tests []ctest
	for _, code := range []int{200, 203, 204, 299, 301, 302, 303, 307, 308, 400, 404, 410, 499, 500, 502, 503, 504, 599} {
		body := sp("content-" + strconv.Itoa(code))
		if code == 204 {
			body = sp("")
		}
		c := strconv.Itoa(code)
		tests = append(tests,
			ctest{"status-" + c + "-fresh", "optimal", []cstep{
				{status: code, respHdr: fresh("Cache-Control: max-age=100000"), body: body},
				{status: code, body: body, expect: "cached"},
			}},
			ctest{"status-" + c + "-stale", "required", []cstep{
				{status: code, respHdr: stale(), body: body},
				{body: body, expect: "not_cached"},
			}})
	}
	tests = append(tests,
		ctest{"status-599-must-understand", "required", []cstep{
			{status: 599, respHdr: []string{"Cache-Control: max-age=3600, no-store, must-understand"}},
			{status: 599, expect: "not_cached"},
		}},
		ctest{"status-200-must-understand", "optimal", reuseNow("cached", "Cache-Control: max-age=3600, no-store, must-understand")},
	)
	runConformance(t, tests)
}

// TestConformanceCCResponse is the suite's cc-response.mjs (shared cache;
// the browser_only immutable tests do not apply). cc-resp-private-shared
// and cc-resp-no-store are covered by TestPrivateResponseIsNotStored and
// TestNoStoreIsNeverStored.
func TestConformanceCCResponse(t *testing.T) {
	a1 := []string{"Cache-Control: max-age=10000", "Expires: @10000", "Date: @0", "A: 1"}
	runConformance(t, []ctest{
		{"cc-resp-no-store-case-insensitive", "required", reuseNow("not_cached", "Cache-Control: No-StOrE")},
		{"cc-resp-no-store-fresh", "required", reuseNow("not_cached", "Cache-Control: max-age=10000, no-store", "Expires: @10000", "Date: @0")},
		{"cc-resp-no-store-old-new", "required", []cstep{
			{respHdr: a1, pause: true},
			{respHdr: []string{"Cache-Control: no-store", "Date: @0", "A: 2"}, pause: true},
			{expect: "cached", wantHdr: []string{"A: 1"}},
		}},
		{"cc-resp-no-store-old-max-age", "required", []cstep{
			{respHdr: a1, pause: true},
			{respHdr: []string{"Cache-Control: no-store, max-age=0", "Date: @0", "A: 2"}, pause: true},
			{expect: "cached", wantHdr: []string{"A: 1"}},
		}},
		{"cc-resp-no-cache", "required", reuseNow("not_cached", "Cache-Control: max-age=10000, no-cache", "Expires: @10000", "Date: @0")},
		{"cc-resp-no-cache-case-insensitive", "required", reuseNow("not_cached", "Cache-Control: max-age=10000, No-CaChE", "Expires: @10000", "Date: @0")},
		{"cc-resp-no-cache-revalidate", "optimal", reuseNow("etag_validated", "Cache-Control: no-cache", `ETag: "abcd"`)},
		{"cc-resp-no-cache-revalidate-fresh", "optimal", reuseNow("etag_validated", "Cache-Control: max-age=10000, no-cache", "Expires: @10000", "Date: @0", `ETag: "abcd"`)},
		{"headers-omit-headers-listed-in-Cache-Control-no-cache-single", "check", []cstep{
			{respHdr: []string{`Cache-Control: no-cache="a"`, "a: 1", "b: 2", "Cache-Control: max-age=3600", "Date: @0"}, pause: true},
			{expect: "cached", wantHdr: []string{"b: 2"}, wantGone: []string{"a"}},
		}},
		{"headers-omit-headers-listed-in-Cache-Control-no-cache", "check", []cstep{
			{respHdr: []string{`Cache-Control: no-cache="a, b"`, "a: 1", "b: 2", "c: 3", "Cache-Control: max-age=3600", "Date: @0"}, pause: true},
			{expect: "cached", wantHdr: []string{"c: 3"}, wantGone: []string{"a", "b"}},
		}},
		{"cc-resp-must-revalidate-fresh", "optimal", reuseNow("cached", "Cache-Control: max-age=10000, must-revalidate", `ETag: "abcd"`)},
		{"cc-resp-must-revalidate-stale", "required", []cstep{
			{respHdr: []string{"Cache-Control: max-age=2, must-revalidate", `ETag: "abcd"`}},
			{respHdr: []string{"Cache-Control: max-age=2, must-revalidate", `ETag: "abcd"`}, expect: "cached", pause: true},
			{expect: "etag_validated"},
		}},
	})
}

// TestConformanceCCRequest is the suite's cc-request.mjs, all check tests
// of request directives (RFC 9111 §5.2.1), which cellar honours.
func TestConformanceCCRequest(t *testing.T) {
	cc := func(v string) []string { return []string{"Cache-Control: " + v} }
	runConformance(t, []ctest{
		{"ccreq-ma0", "check", []cstep{{respHdr: fresh(), pause: true}, {reqHdr: cc("max-age=0"), expect: "not_cached"}}},
		{"ccreq-ma1", "check", []cstep{{respHdr: fresh(), pause: true}, {reqHdr: cc("max-age=1"), expect: "not_cached"}}},
		{"ccreq-magreaterage", "check", []cstep{{respHdr: []string{"Cache-Control: max-age=3600", "Age: 1800"}}, {reqHdr: cc("max-age=600"), expect: "not_cached"}}},
		{"ccreq-max-stale", "check", []cstep{{respHdr: []string{"Cache-Control: max-age=1"}, pause: true}, {reqHdr: cc("max-stale=1000"), expect: "cached"}}},
		{"ccreq-max-stale-age", "check", []cstep{{respHdr: []string{"Cache-Control: max-age=1500", "Age: 2000"}}, {reqHdr: cc("max-stale=1000"), expect: "cached"}}},
		{"ccreq-min-fresh", "check", []cstep{{respHdr: []string{"Cache-Control: max-age=1500"}}, {reqHdr: cc("min-fresh=2000"), expect: "not_cached"}}},
		{"ccreq-min-fresh-age", "check", []cstep{{respHdr: []string{"Cache-Control: max-age=1500", "Age: 1000"}}, {reqHdr: cc("min-fresh=1000"), expect: "not_cached"}}},
		{"ccreq-no-cache", "check", []cstep{{respHdr: []string{"Cache-Control: max-age=3600"}}, {reqHdr: cc("no-cache"), expect: "not_cached"}}},
		{"ccreq-no-cache-lm", "check", []cstep{{respHdr: []string{"Cache-Control: max-age=3600", "Last-Modified: @-10000", "Date: @0"}}, {reqHdr: cc("no-cache"), expect: "lm_validated"}}},
		{"ccreq-no-cache-etag", "check", []cstep{{respHdr: []string{"Cache-Control: max-age=3600", `ETag: "abc"`}}, {reqHdr: cc("no-cache"), expect: "etag_validated"}}},
		// The suite asks whether request no-store bypasses a fresh
		// stored response. §5.2.1.5 only forbids storing the response to
		// this request; cellar answers from the stored one.
		{"ccreq-no-store", "check", []cstep{{respHdr: []string{"Cache-Control: max-age=3600"}}, {reqHdr: cc("no-store"), expect: "cached"}}},
		{"ccreq-oic", "check", []cstep{{reqHdr: cc("only-if-cached"), wantStatus: 504, noBody: true}}},
	})
}

// TestConformancePragma is the suite's pragma.mjs, all check tests.
func TestConformancePragma(t *testing.T) {
	runConformance(t, []ctest{
		// The suite asks whether Pragma: no-cache in a request is
		// ignored. cellar treats it as Cache-Control: no-cache when the
		// request has no Cache-Control (RFC 9111 §5.4, HTTP/1.0 clients),
		// so the stored response is validated first.
		{"pragma-request-no-cache", "check", []cstep{{respHdr: []string{"Cache-Control: max-age=3600"}}, {reqHdr: []string{"Pragma: no-cache"}, expect: "not_cached"}}},
		{"pragma-request-extension", "check", []cstep{{respHdr: []string{"Cache-Control: max-age=3600"}}, {reqHdr: []string{"Pragma: unrecognised-extension"}, expect: "cached"}}},
		{"pragma-response-no-cache", "check", reuseNow("cached", "Cache-Control: max-age=3600", "Pragma: no-cache")},
		// The suite asks whether response Pragma: no-cache is ignored.
		// net/http's client, cellar's upstream transport, turns it into
		// Cache-Control: no-cache when the response has no Cache-Control
		// (RFC 7234 §5.4), so cellar revalidates it, and clients see that
		// added Cache-Control too.
		{"pragma-response-no-cache-heuristic", "check", reuseNow("not_cached", "Last-Modified: @-10000", "Pragma: no-cache")},
		{"pragma-response-extension", "check", reuseNow("cached", "Cache-Control: max-age=3600", "Pragma: unrecognised-extension")},
	})
}

// TestConformanceConditional is the suite's conditional-etag.mjs and
// conditional-lm.mjs: cellar answers a client's conditional request from
// a fresh entry (RFC 9111 §4.3.2) and validates a stale one with its
// stored validators (§4.3.1).
func TestConformanceConditional(t *testing.T) {
	inm := func(tag string, stored ...string) []cstep {
		return []cstep{{respHdr: fresh(stored...)}, {reqHdr: []string{"If-None-Match: " + tag}, expect: "cached", wantStatus: 304}}
	}
	strong := `ETag: "abcdef"`
	runConformance(t, []ctest{
		// The suite's fresh template is replaced by these tests' own
		// fields (no explicit freshness); the tests mean a fresh entry.
		{"conditional-etag-strong-respond", "optimal", inm(`"abcdef"`, strong)},
		{"conditional-304-etag", "required", []cstep{{respHdr: fresh(strong)}, {reqHdr: []string{`If-None-Match: "abcdef"`}, expect: "cached", wantStatus: 304, wantHdr: []string{`ETag: "abcdef"`}}}},
		{"conditional-etag-precedence", "required", []cstep{
			{respHdr: []string{"Expires: @100000", "Date: @0", "Last-Modified: @-5000", strong}},
			{reqHdr: []string{`If-None-Match: "abcdef"`, "If-Modified-Since: @-1"}, expect: "cached", wantStatus: 304},
		}},
		// check: entity-tags outside the grammar (RFC 9110 §8.8.3).
		// cellar compares entity-tags as the grammar defines them, so a
		// missing quote or a malformed weakness prefix never matches and
		// the full response is sent.
		{"conditional-etag-quoted-respond-unquoted", "check", []cstep{{respHdr: fresh(strong)}, {reqHdr: []string{"If-None-Match: abcdef"}, expect: "cached", wantStatus: 200}}},
		{"conditional-etag-unquoted-respond-unquoted", "check", []cstep{{respHdr: fresh("ETag: abcdef")}, {reqHdr: []string{"If-None-Match: abcdef"}, expect: "cached", wantStatus: 200}}},
		{"conditional-etag-unquoted-respond-quoted", "check", []cstep{{respHdr: fresh("ETag: abcdef")}, {reqHdr: []string{`If-None-Match: "abcdef"`}, expect: "cached", wantStatus: 200}}},
		{"conditional-etag-weak-respond", "optimal", inm(`W/"abcdef"`, `ETag: W/"abcdef"`)},
		{"conditional-etag-weak-respond-lowercase", "check", []cstep{{respHdr: fresh(`ETag: w/"abcdef"`)}, {reqHdr: []string{`If-None-Match: w/"abcdef"`}, expect: "cached", wantStatus: 200}}},
		{"conditional-etag-weak-respond-backslash", "check", []cstep{{respHdr: fresh(`ETag: W\"abcdef"`)}, {reqHdr: []string{`If-None-Match: W\"abcdef"`}, expect: "cached", wantStatus: 200}}},
		{"conditional-etag-weak-respond-omit-slash", "check", []cstep{{respHdr: fresh(`ETag: W"abcdef"`)}, {reqHdr: []string{`If-None-Match: W"abcdef"`}, expect: "cached", wantStatus: 200}}},
		{"conditional-etag-strong-respond-multiple-first", "optimal", inm(`"abcdef", "1234", "5678"`, strong)},
		{"conditional-etag-strong-respond-multiple-second", "optimal", inm(`"1234", "abcdef", "5678"`, strong)},
		{"conditional-etag-strong-respond-multiple-last", "optimal", inm(`"1234", "5678", "abcdef"`, strong)},
		{"conditional-etag-vary-headers", "required", []cstep{
			{reqHdr: []string{"Abc: 123"}, respHdr: []string{"Expires: @1", strong, "Date: @0", "Vary: Abc"}, pause: true},
			{reqHdr: []string{"Abc: 123"}, expect: "etag_validated", wantReqHdr: []string{"Abc: 123"}},
		}},
		{"conditional-etag-vary-headers-mismatch", "check", []cstep{
			{reqHdr: []string{"Abc: 123"}, respHdr: []string{"Expires: @10000", strong, "Date: @0", "Vary: Abc"}, pause: true},
			{reqHdr: []string{"Abc: 456"}, wantReqHdr: []string{`If-None-Match: "abcdef"`}},
		}},
		{"conditional-etag-strong-generate", "optimal", []cstep{becomeStale(strong), {expect: "etag_validated", wantReqHdr: []string{`If-None-Match: "abcdef"`}}}},
		{"conditional-etag-weak-generate-weak", "optimal", []cstep{becomeStale(`ETag: W/"abcdef"`), {expect: "etag_validated", wantReqHdr: []string{`If-None-Match: W/"abcdef"`}}}},
		// check: cellar sends the stored ETag as it came, unquoted too.
		{"conditional-etag-strong-generate-unquoted", "check", []cstep{becomeStale("ETag: abcdef"), {expect: "etag_validated", wantReqHdr: []string{"If-None-Match: abcdef"}}}},
		// check: cellar fills a miss with an unconditional GET (the
		// stored response must be complete, cache/doc.go), so the
		// client's If-None-Match is not forwarded; the client's condition
		// is then evaluated against the response.
		{"conditional-etag-forward", "check", []cstep{{reqHdr: []string{`If-None-Match: "abcdef"`}}}},
		{"conditional-lm-fresh", "optimal", []cstep{
			{respHdr: []string{"Cache-Control: max-age=100000", "Last-Modified: @-3000", "Date: @0"}, pause: true},
			{reqHdr: []string{"If-Modified-Since: @-3000"}, expect: "cached", wantStatus: 304},
		}},
		{"conditional-lm-fresh-earlier", "optimal", []cstep{
			{respHdr: []string{"Cache-Control: max-age=100000", "Last-Modified: @-3000", "Date: @0"}, pause: true},
			{reqHdr: []string{"If-Modified-Since: @-2000"}, expect: "cached", wantStatus: 304},
		}},
		{"conditional-lm-stale", "optimal", []cstep{
			{respHdr: []string{"Cache-Control: max-age=2", "Last-Modified: @-3000", "Date: @0"}, pause: true},
			{reqHdr: []string{"If-Modified-Since: @-3000"}, expect: "lm_validated", wantStatus: 304},
		}},
	})
}

// headerCase is one entry of the suite's header list (tests/header-list):
// a field, the values of two responses, and whether a cache must not store
// it, must not update it from a 304, or must update it.
type headerCase struct {
	name, a, b                   string
	noStore, noUpdate, reqUpdate bool
	body                         string // a body that fits the field, else the default
}

var headerList = []headerCase{
	{name: "Test-Header", reqUpdate: true},
	{name: "X-Test-Header", reqUpdate: true},
	{name: "Content-Foo", reqUpdate: true},
	{name: "X-Content-Foo", reqUpdate: true},
	{name: "Cache-Control", a: "max-age=1", b: "max-age=3600", reqUpdate: true},
	{name: "Connection", noStore: true},
	{name: "Content-Encoding"},
	{name: "Content-Length", a: "5", b: "10", noUpdate: true, body: "01234"},
	{name: "Content-Location", a: "/foo", b: "/bar"},
	{name: "Content-MD5", a: "rL0Y20zC+Fzt72VPzMSk2A==", b: "N7UdGUp1E+RbVvZSTy1R8g=="},
	{name: "Content-Range"},
	{name: "Content-Security-Policy", a: "default-src 'self'", b: "default-src 'self' cdn.example.com"},
	{name: "Content-Type", a: "text/plain", b: "text/plain;charset=utf-8"},
	{name: "Clear-Site-Data", a: "cache", b: "cookies"},
	{name: "ETag", a: `"abcdef"`, b: `"ghijkl"`},
	{name: "Expires", a: "Fri, 01 Jan 2038 01:01:01 GMT", b: "Mon, 11 Jan 2038 11:11:11 GMT"},
	{name: "Keep-Alive", noStore: true},
	{name: "Proxy-Authenticate", noStore: true},
	{name: "Proxy-Authentication-Info", noStore: true},
	{name: "Proxy-Authorization", noStore: true},
	{name: "Proxy-Connection", noStore: true},
	{name: "Public-Key-Pins"},
	{name: "Set-Cookie", a: "a=b", b: "a=c"},
	{name: "Set-Cookie2", a: "a=b", b: "a=c"},
	{name: "TE", noStore: true},
	// Transfer-Encoding is in the suite's list too; an origin cannot send
	// an arbitrary value of it through net/http, so it is left out here.
	{name: "Upgrade", noStore: true},
	{name: "X-Frame-Options", a: "deny", b: "sameorigin"},
	{name: "X-XSS-Protection", a: "1", b: "1; mode=block"},
}

func (c headerCase) values() (a, b string) {
	a, b = c.a, c.b
	if a == "" {
		a = c.name + "-value-A"
	}
	if b == "" {
		b = c.name + "-value-B"
	}
	return a, b
}

// headersCellarChanges documents where cellar, with its default options,
// deliberately differs from the suite's expectation for a listed field:
// Set-Cookie is stored but never served from cache unless
// cache.Options.Cookies says so (the default; README,
// cache/doc.go), so one client's cookie never reaches another. With
// Cookies = CookiesExplicit the suite's expectation holds: see
// TestConformanceSetCookieWhenShared.
var headersCellarChanges = map[string]bool{"Set-Cookie": true}

// TestConformanceHeaders is the suite's headers.mjs: which fields a cache
// stores (RFC 9111 §3.1).
func TestConformanceHeaders(t *testing.T) {
	tests := []ctest{{"headers-omit-headers-listed-in-Connection", "required", []cstep{
		{respHdr: fresh("~Connection: a, b", "~a: 1", "~b: 2", "~c: 3")},
		{expect: "cached", wantHdr: []string{"c: 3"}, wantGone: []string{"a", "b"}},
	}}}
	for _, c := range headerList {
		_, b := c.values()
		line := c.name + ": " + b
		hdr := []string{"Date: @0"}
		if c.noStore {
			hdr = append(hdr, "~"+line)
		} else {
			hdr = append(hdr, line)
		}
		if c.name != "Cache-Control" {
			hdr = append(hdr, "Cache-Control: max-age=3600")
		}
		first := cstep{respHdr: hdr, pause: true}
		second := cstep{expect: "cached"}
		if c.body != "" {
			// A Content-Length must describe the body.
			first.respHdr = []string{"Date: @0", "Cache-Control: max-age=3600", "Content-Length: 5"}
			first.body, second.body = sp(c.body), sp(c.body)
			line = "Content-Length: 5"
		}
		switch {
		case c.noStore:
			second.wantGone = []string{c.name}
		case headersCellarChanges[c.name]:
			second.wantGone = []string{c.name}
		default:
			second.wantHdr = []string{line}
		}
		tests = append(tests, ctest{"headers-store-" + c.name, "required", []cstep{first, second}})
	}
	runConformance(t, tests)
}

// TestConformanceUpdate304 is the suite's update304.mjs: a 304 updates
// the stored fields (RFC 9111 §3.2, §4.3.4), except Content-Length.
func TestConformanceUpdate304(t *testing.T) {
	lm1 := "Wed, 01 Jan 2020 00:00:00 GMT"
	tests := []ctest{{"304-lm-use-stored-Test-Header", "required", []cstep{
		{respHdr: []string{"Cache-Control: max-age=2", "Last-Modified: " + lm1, "Date: @0", "Test-Header: A"}, pause: true},
		{respHdr: []string{"Last-Modified: " + lm1, "Date: @0"}, expect: "lm_validated", wantHdr: []string{"Test-Header: A"}},
	}}}
	for _, c := range headerList {
		if c.noStore {
			continue
		}
		a, b := c.values()
		kind, want := "check", b
		switch {
		case c.noUpdate:
			kind, want = "required", a
		case c.reqUpdate:
			kind = "required"
		}
		etag := `"` + c.name + `-etag-1"`
		resp := func(v string, validator bool) []string {
			l := c.name + ": " + v
			if c.noUpdate {
				l = "~" + l
			}
			h := []string{"Date: @0", l}
			if c.name != "Cache-Control" {
				h = append(h, "Cache-Control: max-age=2")
			}
			if validator && c.name != "ETag" {
				h = append(h, "ETag: "+etag)
			}
			return h
		}
		steps := []cstep{
			{respHdr: resp(a, true), pause: true},
			{respHdr: resp(b, true), expect: "etag_validated", wantHdr: []string{c.name + ": " + want}},
			{respHdr: resp(want, false), expect: "cached", wantHdr: []string{c.name + ": " + want}},
		}
		if c.body != "" {
			for i := range steps {
				steps[i].body = sp(c.body)
			}
			steps[0].respHdr = []string{"Date: @0", "Content-Length: 5", "Cache-Control: max-age=2", "ETag: " + etag}
			steps[1].respHdr = []string{"Date: @0", "~Content-Length: 10", "Cache-Control: max-age=2", "ETag: " + etag}
		}
		switch c.name {
		case "Set-Cookie":
			// Served from cache without Set-Cookie (headersCellarChanges).
			steps[1].respHdr[1] = "~" + steps[1].respHdr[1]
			steps[1].wantHdr, steps[1].wantGone = nil, []string{c.name}
			steps[2].wantHdr, steps[2].wantGone = nil, []string{c.name}
		case "Content-Type":
			// net/http removes Content-Type from a 304 (the origin here
			// cannot send it), so the stored one stays; untestable here.
			continue
		case "ETag":
			// check: a 304 whose ETag selects no stored response
			// updates nothing (§4.3.4) and is never sent to a client
			// that did not ask for it: cellar forwards the client's
			// request instead.
			// This origin answers that full request with its 200.
			steps = steps[:2]
			steps[1].expect, steps[1].wantHdr = "not_cached", []string{"ETag: " + b}
		}
		tests = append(tests, ctest{"304-etag-update-response-" + c.name, kind, steps})
	}
	runConformance(t, tests)
}

// TestConformanceSetCookieWhenShared runs the suite's Set-Cookie cases
// (headers-store-Set-Cookie, required; other-set-cookie, optimal) with
// cache.Options.Cookies = CookiesExplicit, the setting under which cellar
// meets the suite's expectation: the stored Set-Cookie is served from cache
// with a response the origin made explicitly fresh.
func TestConformanceSetCookieWhenShared(t *testing.T) {
	explicit := withCacheOptions(func(o *cache.Options) { o.Cookies = cache.CookiesExplicit })
	runConformance(t, []ctest{
		{"headers-store-Set-Cookie", "required", []cstep{
			{respHdr: []string{"Date: @0", "Set-Cookie: a=c", "Cache-Control: max-age=3600"}, pause: true},
			{expect: "cached", wantHdr: []string{"Set-Cookie: a=c"}},
		}},
		{"other-set-cookie", "optimal", reuseNow("cached", fresh("Set-Cookie: a=b")...)},
	}, explicit)
}
