package cache

import (
	"net/http"
	"reflect"
	"testing"
)

// TestCacheControlCorrections checks each place where cellar corrects
// around cacheobject.ParseResponseCacheControl (RFC 9111 §1.2.2, §4.2.1,
// §5.2, §5.2.3).
func TestCacheControlCorrections(t *testing.T) {
	base := respCC{maxAge: -1, sMaxAge: -1, swr: -1, sie: -1}
	with := func(f func(*respCC)) respCC { c := base; f(&c); return c }
	tests := []struct {
		name, value string
		want        respCC
	}{
		{"plain max-age", "max-age=60", with(func(c *respCC) { c.maxAge = 60 })},
		{"names are case-insensitive", "MAX-AGE=60, No-Store", with(func(c *respCC) { c.maxAge = 60; c.noStore = true })},
		{"duplicate max-age keeps the smallest", "max-age=600, max-age=60", with(func(c *respCC) { c.maxAge = 60 })},
		{"duplicate max-age smallest first", "max-age=60, max-age=600", with(func(c *respCC) { c.maxAge = 60 })},
		{"delta-seconds clamp at 2^31", "max-age=10000000000", with(func(c *respCC) { c.maxAge = 1 << 31 })},
		{"huge value does not overflow", "s-maxage=99999999999999999999999999", with(func(c *respCC) { c.sMaxAge = 1 << 31 })},
		{"quoted value", `max-age="60"`, with(func(c *respCC) { c.maxAge = 60 })},
		{"invalid max-age is stale", "max-age=abc", with(func(c *respCC) { c.maxAge = 0 })},
		{"negative max-age is stale", "max-age=-5", with(func(c *respCC) { c.maxAge = 0 })},
		{"max-age without value is stale", "max-age", with(func(c *respCC) { c.maxAge = 0 })},
		{"parse error keeps no-store", "max-age=abc, no-store", with(func(c *respCC) { c.maxAge = 0; c.noStore = true })},
		{"no-store with argument still no-store", `no-store="x", max-age=60`, with(func(c *respCC) { c.maxAge = 60; c.noStore = true })},
		{"public with argument is not public", `public=1, max-age=60`, with(func(c *respCC) { c.maxAge = 60 })},
		{"must-revalidate with argument still counts", `must-revalidate=1`, with(func(c *respCC) { c.mustRevalidate = true })},
		{"unknown extensions ignored", `foo, bar="a, max-age=1", max-age=60`, with(func(c *respCC) { c.maxAge = 60 })},
		{"unquoted no-cache list split at comma", "no-cache=set-cookie,max-age=5", with(func(c *respCC) { c.maxAge = 5; c.noCacheFields = []string{"Set-Cookie"} })},
		{"quoted private list", `private="x-a, X-B", max-age=5`, with(func(c *respCC) { c.maxAge = 5; c.privateFields = []string{"X-A", "X-B"} })},
		{"bare private", "private", with(func(c *respCC) { c.private = true })},
		{"bare no-cache", "no-cache", with(func(c *respCC) { c.noCache = true })},
		{"immutable", "max-age=60, immutable", with(func(c *respCC) { c.maxAge = 60; c.immutable = true })},
		{"swr and sie", "stale-while-revalidate=30, stale-if-error=600", with(func(c *respCC) { c.swr = 30; c.sie = 600 })},
		{"invalid swr ignored", "stale-while-revalidate=x, max-age=1", with(func(c *respCC) { c.maxAge = 1 })},
		{"must-understand", "must-understand, no-store", with(func(c *respCC) { c.mustUnderstand = true; c.noStore = true })},
		{"s-maxage and proxy-revalidate", "s-maxage=5, proxy-revalidate, public", with(func(c *respCC) { c.sMaxAge = 5; c.proxyRevalidate = true; c.public = true })},
		{"whitespace around equals", "max-age = 60", with(func(c *respCC) { c.maxAge = 60 })},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, _ := parseResponseCC(tt.value, false)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("parseResponseCC(%q) =\n %+v, want\n %+v", tt.value, got, tt.want)
			}
		})
	}
}

// TestSurrogateControlDirectives checks the Edge Architecture subset and
// the ";target" suffix.
func TestSurrogateControlDirectives(t *testing.T) {
	got, valid := parseResponseCC(`max-age=60;cellar, private, no-cache, stale-if-error=9`, true)
	want := respCC{maxAge: 60, sMaxAge: -1, swr: -1, sie: 9}
	if !valid || !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v valid=%v, want %+v", got, valid, want)
	}
}

// TestRequestDirectives checks §5.2.1 parsing, Pragma (§5.4) and the
// corrections around cacheobject.ParseRequestCacheControl.
func TestRequestDirectives(t *testing.T) {
	base := reqCC{maxAge: -1, maxStale: -1, minFresh: -1, sie: -1}
	with := func(f func(*reqCC)) reqCC { c := base; f(&c); return c }
	tests := []struct {
		name string
		h    http.Header
		want reqCC
	}{
		{"none", hdr(), base},
		{"max-age", hdr("Cache-Control: max-age=5"), with(func(c *reqCC) { c.maxAge = 5 })},
		{"max-stale without value", hdr("Cache-Control: max-stale"), with(func(c *reqCC) { c.maxStaleAny = true })},
		{"max-stale with value", hdr("Cache-Control: max-stale=10"), with(func(c *reqCC) { c.maxStale = 10 })},
		{"bounded max-stale wins over unbounded", hdr("Cache-Control: max-stale, max-stale=10"), with(func(c *reqCC) { c.maxStale = 10 })},
		{"min-fresh", hdr("Cache-Control: min-fresh=7"), with(func(c *reqCC) { c.minFresh = 7 })},
		{"no-cache no-store only-if-cached", hdr("Cache-Control: NO-CACHE, no-store", "Cache-Control: only-if-cached"),
			with(func(c *reqCC) { c.noCache, c.noStore, c.onlyIfCached = true, true, true })},
		{"invalid max-age is 0 and keeps flags", hdr("Cache-Control: max-age=x, only-if-cached"), with(func(c *reqCC) { c.maxAge = 0; c.onlyIfCached = true })},
		{"pragma without cache-control", hdr("Pragma: no-cache"), with(func(c *reqCC) { c.noCache = true })},
		{"pragma ignored with cache-control", hdr("Pragma: no-cache", "Cache-Control: max-age=5"), with(func(c *reqCC) { c.maxAge = 5 })},
		{"stale-if-error", hdr("Cache-Control: stale-if-error=30"), with(func(c *reqCC) { c.sie = 30 })},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := parseRequestCC(tt.h); got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestSurrogateControlTargetedNoStore(t *testing.T) {
	got, valid := parseResponseCC(`no-store;cellar`, true)
	if !valid || !got.noStore {
		t.Errorf("got %+v valid=%v, want no-store", got, valid)
	}
}
