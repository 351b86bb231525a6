package cache

import (
	"net/http"
	"testing"
	"time"
)

// TestFreshnessLifetime covers §4.2.1 (s-maxage over max-age over Expires
// minus Date), §5.3 (Expires forms, invalid Expires), RFC 9213 targets and
// Surrogate-Control.
func TestFreshnessLifetime(t *testing.T) {
	p := newPolicy(t, Options{})
	tests := []struct {
		name string
		m    *Meta
		want time.Duration
	}{
		{"SharedCacheUsesSMaxAge", stored("Cache-Control: max-age=10, s-maxage=100"), 100 * time.Second},
		{"MaxAgeOverExpires", stored("Cache-Control: max-age=10", "Expires: "+httpDate(t0.Add(time.Hour))), 10 * time.Second},
		{"ExpiresMinusDate", stored("Expires: " + httpDate(t0.Add(time.Hour))), time.Hour},
		{"ExpiresRFC850", stored("Expires: " + t0.Add(time.Hour).Format(time.RFC850)), time.Hour},
		{"ExpiresANSIC", stored("Expires: " + t0.Add(time.Hour).Format(time.ANSIC)), time.Hour},
		{"InvalidExpiresIsStale", stored("Expires: 0"), 0},
		{"ExpiresInThePast", stored("Expires: " + httpDate(t0.Add(-time.Hour))), 0},
		{"ExpiresWithoutDateUsesResponseTime", &Meta{Status: 200, Header: hdr("Expires: " + httpDate(t0.Add(time.Minute))), ResponseTime: t0}, time.Minute},
		{"CDNCacheControlOverCacheControl", stored("CDN-Cache-Control: max-age=300", "Cache-Control: max-age=10"), 300 * time.Second},
		{"CDNCacheControlIgnoresExpires", stored("CDN-Cache-Control: no-transform", "Expires: "+httpDate(t0.Add(time.Hour))), 0},
		{"InvalidTargetFallsBackToCacheControl", stored("CDN-Cache-Control: max-age=x", "Cache-Control: max-age=10"), 10 * time.Second},
		{"SurrogateControlOverCacheControl", stored("Surrogate-Control: max-age=200", "Cache-Control: max-age=10"), 200 * time.Second},
		{"TargetOverSurrogateControl", stored("CDN-Cache-Control: max-age=300", "Surrogate-Control: max-age=200"), 300 * time.Second},
		{"NoFreshnessInfo", &Meta{Status: 302, Header: hdr("Last-Modified: " + httpDate(t0.Add(-10*time.Hour))), ResponseTime: t0}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := p.Lifetime(tt.m); got != tt.want {
				t.Errorf("Lifetime = %v, want %v", got, tt.want)
			}
		})
	}
}

// TestHeuristicFreshness covers §4.2.2.
func TestHeuristicFreshness(t *testing.T) {
	lm := "Last-Modified: " + httpDate(t0.Add(-10*time.Hour))
	tests := []struct {
		name   string
		opts   Options
		status int
		lines  []string
		want   time.Duration
	}{
		{"TenPercentOfAge", Options{}, 200, []string{lm}, time.Hour},
		{"ConfigurableFraction", Options{HeuristicFraction: 0.5}, 200, []string{lm}, 5 * time.Hour},
		{"Capped", Options{HeuristicMax: 30 * time.Minute}, 200, []string{lm}, 30 * time.Minute},
		{"HeuristicStatus404", Options{}, 404, []string{lm}, time.Hour},
		{"NotForStatus302", Options{}, 302, []string{lm}, 0},
		{"PublicAllowsAnyStatus", Options{}, 302, []string{lm, "Cache-Control: public"}, time.Hour},
		{"NotWhenExplicit", Options{}, 200, []string{lm, "Cache-Control: max-age=5"}, 5 * time.Second},
		{"NotWhenExpires", Options{}, 200, []string{lm, "Expires: " + httpDate(t0.Add(time.Minute))}, time.Minute},
		{"LastModifiedInTheFuture", Options{}, 200, []string{"Last-Modified: " + httpDate(t0.Add(time.Hour))}, 0},
		{"DefaultTTLReplacesHeuristic", Options{DefaultTTL: time.Minute}, 200, []string{lm}, time.Minute},
		{"DefaultTTLNotOverExplicit", Options{DefaultTTL: time.Minute}, 200, []string{"Cache-Control: max-age=5"}, 5 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newPolicy(t, tt.opts)
			m := stored(tt.lines...)
			m.Status = tt.status
			if got := p.Lifetime(m); got != tt.want {
				t.Errorf("Lifetime = %v, want %v", got, tt.want)
			}
		})
	}
}

// TestAgeCalculation covers §4.2.3.
func TestAgeCalculation(t *testing.T) {
	tests := []struct {
		name     string
		m        *Meta
		now      time.Time
		wantAge  time.Duration
		wantInit time.Duration
	}{
		{"ResidentTime", stored(), t0.Add(7 * time.Second), 7 * time.Second, 0},
		{"AgeHeaderAdds", stored("Age: 30"), t0.Add(5 * time.Second), 35 * time.Second, 30 * time.Second},
		{"ResponseDelayAdds", &Meta{Header: hdr("Age: 30", "Date: "+httpDate(t0)), RequestTime: t0.Add(-2 * time.Second), ResponseTime: t0}, t0, 32 * time.Second, 32 * time.Second},
		{"ApparentAgeFromDate", stored("Date: " + httpDate(t0.Add(-50*time.Second))), t0, 50 * time.Second, 50 * time.Second},
		{"LargerOfApparentAndCorrected", stored("Date: "+httpDate(t0.Add(-50*time.Second)), "Age: 10"), t0, 50 * time.Second, 50 * time.Second},
		{"DateInTheFutureIsZero", stored("Date: " + httpDate(t0.Add(time.Hour))), t0, 0, 0},
		{"MultipleAgeTakesLargest", stored("Age: 5", "Age: 20, 10"), t0, 20 * time.Second, 20 * time.Second},
		{"InvalidAgeIgnored", stored("Age: abc, 7", "Age: -3"), t0, 7 * time.Second, 7 * time.Second},
		{"OnlyInvalidAge", stored("Age: x"), t0, 0, 0},
		{"NowBeforeResponseTime", stored(), t0.Add(-time.Hour), 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			age, initial := currentAge(tt.m, tt.now)
			if age != tt.wantAge || initial != tt.wantInit {
				t.Errorf("currentAge = %v, %v; want %v, %v", age, initial, tt.wantAge, tt.wantInit)
			}
		})
	}
}

func TestParseAgeClampsAt2To31(t *testing.T) {
	if n, ok := ParseAge(hdr("Age: 99999999999999")); !ok || n != 1<<31 {
		t.Errorf("ParseAge = %d, %v; want 2^31", n, ok)
	}
}

// TestEvaluate covers reuse (§4, §4.2.4), request directives (§5.2.1),
// response directives (§5.2.2), RFC 5861 and RFC 8246.
func TestEvaluate(t *testing.T) {
	type want struct {
		action     Action
		background bool
		sie        bool
		detail     string
	}
	tests := []struct {
		name  string
		opts  Options
		m     *Meta
		req   []string
		url   string
		after time.Duration
		want  want
	}{
		{"FreshIsServed", Options{}, stored("Cache-Control: max-age=60"), nil, "", 10 * time.Second, want{Serve, false, false, "fresh"}},
		{"StaleIsRevalidated", Options{}, stored("Cache-Control: max-age=60"), nil, "", 61 * time.Second, want{Revalidate, false, false, "stale"}},
		{"ExactlyLifetimeIsStale", Options{}, stored("Cache-Control: max-age=60"), nil, "", 60 * time.Second, want{Revalidate, false, false, "stale"}},
		{"ResponseNoCacheAlwaysRevalidates", Options{}, stored("Cache-Control: max-age=60, no-cache"), nil, "", 0, want{Revalidate, false, false, "no-cache"}},
		{"NoCacheWithFieldsServes", Options{}, stored(`Cache-Control: max-age=60, no-cache="x-a"`), nil, "", 0, want{Serve, false, false, "fresh"}},
		{"RequestNoCacheRevalidates", Options{ClientNoCache: NoCacheRevalidate}, stored("Cache-Control: max-age=60"), []string{"Cache-Control: no-cache"}, "", 0, want{Revalidate, false, false, "request-no-cache"}},
		{"PragmaNoCacheRevalidates", Options{ClientNoCache: NoCacheRevalidate}, stored("Cache-Control: max-age=60"), []string{"Pragma: no-cache"}, "", 0, want{Revalidate, false, false, "request-no-cache"}},
		{"PragmaIgnoredWithCacheControl", Options{}, stored("Cache-Control: max-age=60"), []string{"Pragma: no-cache", "Cache-Control: max-stale"}, "", 0, want{Serve, false, true, "fresh"}},
		{"RequestMaxAgeZero", Options{ClientNoCache: NoCacheRevalidate}, stored("Cache-Control: max-age=60"), []string{"Cache-Control: max-age=0"}, "", time.Second, want{Revalidate, false, false, "request-max-age"}},
		{"RequestMaxAgeNotExceeded", Options{}, stored("Cache-Control: max-age=60"), []string{"Cache-Control: max-age=30"}, "", 30 * time.Second, want{Serve, false, false, "fresh"}},
		{"RequestMaxAgeExceeded", Options{ClientNoCache: NoCacheRevalidate}, stored("Cache-Control: max-age=60"), []string{"Cache-Control: max-age=30"}, "", 31 * time.Second, want{Revalidate, false, false, "request-max-age"}},
		{"RequestMinFresh", Options{}, stored("Cache-Control: max-age=60"), []string{"Cache-Control: min-fresh=30"}, "", 40 * time.Second, want{Revalidate, false, false, "request-min-fresh"}},
		{"RequestMinFreshSatisfied", Options{}, stored("Cache-Control: max-age=60"), []string{"Cache-Control: min-fresh=30"}, "", 20 * time.Second, want{Serve, false, false, "fresh"}},
		{"RequestMaxStaleAny", Options{}, stored("Cache-Control: max-age=60"), []string{"Cache-Control: max-stale"}, "", time.Hour, want{ServeStale, false, true, "max-stale"}},
		{"RequestMaxStaleWithin", Options{}, stored("Cache-Control: max-age=60"), []string{"Cache-Control: max-stale=10"}, "", 70 * time.Second, want{ServeStale, false, true, "max-stale"}},
		{"RequestMaxStaleBeyond", Options{}, stored("Cache-Control: max-age=60"), []string{"Cache-Control: max-stale=10"}, "", 71 * time.Second, want{Revalidate, false, false, "stale"}},
		{"MustRevalidateOverridesMaxStale", Options{}, stored("Cache-Control: max-age=60, must-revalidate"), []string{"Cache-Control: max-stale"}, "", 70 * time.Second, want{Revalidate, false, false, "must-revalidate"}},
		{"ProxyRevalidate", Options{}, stored("Cache-Control: max-age=60, proxy-revalidate, stale-if-error=600"), nil, "", 70 * time.Second, want{Revalidate, false, false, "must-revalidate"}},
		{"SMaxAgeImpliesProxyRevalidate", Options{}, stored("Cache-Control: s-maxage=60, stale-while-revalidate=600"), nil, "", 70 * time.Second, want{Revalidate, false, false, "must-revalidate"}},
		{"StaleWhileRevalidateWithin", Options{}, stored("Cache-Control: max-age=60, stale-while-revalidate=30"), nil, "", 80 * time.Second, want{ServeStale, true, false, "stale-while-revalidate"}},
		{"StaleWhileRevalidateBeyond", Options{}, stored("Cache-Control: max-age=60, stale-while-revalidate=30"), nil, "", 91 * time.Second, want{Revalidate, false, false, "stale"}},
		{"OperatorStaleWhileRevalidate", Options{StaleWhileRevalidate: time.Minute}, stored("Cache-Control: max-age=60"), nil, "", 80 * time.Second, want{ServeStale, true, false, "stale-while-revalidate"}},
		{"OriginSWROverOperator", Options{StaleWhileRevalidate: time.Hour}, stored("Cache-Control: max-age=60, stale-while-revalidate=5"), nil, "", 80 * time.Second, want{Revalidate, false, false, "stale"}},
		{"StaleIfErrorWithin", Options{}, stored("Cache-Control: max-age=60, stale-if-error=60"), nil, "", 100 * time.Second, want{Revalidate, false, true, "stale"}},
		{"StaleIfErrorBeyond", Options{}, stored("Cache-Control: max-age=60, stale-if-error=60"), nil, "", 121 * time.Second, want{Revalidate, false, false, "stale"}},
		{"OperatorStaleIfError", Options{StaleIfError: time.Minute}, stored("Cache-Control: max-age=60"), nil, "", 100 * time.Second, want{Revalidate, false, true, "stale"}},
		{"RequestStaleIfError", Options{}, stored("Cache-Control: max-age=60"), []string{"Cache-Control: stale-if-error=100"}, "", 100 * time.Second, want{Revalidate, false, true, "stale"}},
		{"StaleIfErrorNotUnderMustRevalidate", Options{StaleIfError: time.Hour}, stored("Cache-Control: max-age=60, must-revalidate, stale-if-error=600"), nil, "", 100 * time.Second, want{Revalidate, false, false, "must-revalidate"}},
		{"StaleIfErrorNotUnderNoCache", Options{}, stored("Cache-Control: no-cache, stale-if-error=600"), nil, "", 0, want{Revalidate, false, false, "no-cache"}},
		{"ImmutableIgnoresReloadWhenFresh", Options{ClientNoCache: NoCacheRevalidate}, stored("Cache-Control: max-age=60, immutable"), []string{"Cache-Control: no-cache"}, "", 10 * time.Second, want{Serve, false, false, "fresh"}},
		{"ImmutableIgnoresMaxAgeZeroWhenFresh", Options{ClientNoCache: NoCacheRevalidate}, stored("Cache-Control: max-age=60, immutable"), []string{"Cache-Control: max-age=0"}, "", 10 * time.Second, want{Serve, false, false, "fresh"}},
		{"ImmutableStaleRevalidates", Options{ClientNoCache: NoCacheRevalidate}, stored("Cache-Control: max-age=60, immutable"), []string{"Cache-Control: no-cache"}, "", 70 * time.Second, want{Revalidate, false, false, "request-no-cache"}},
		{"InvalidRevalidates", Options{}, func() *Meta { m := stored("Cache-Control: max-age=60"); m.Invalid = true; return m }(), nil, "", 0, want{Revalidate, false, false, "invalid"}},
		{"InvalidWithSWRServesStale", Options{}, func() *Meta {
			m := stored("Cache-Control: max-age=60, stale-while-revalidate=60")
			m.Invalid = true
			return m
		}(), nil, "", 0, want{ServeStale, true, false, "invalid-swr"}},
		{"RuleIgnoresRequestNoCache", Options{Rules: []Rule{{Prefix: "/static/", IgnoreNoCache: true}}}, stored("Cache-Control: max-age=60"), []string{"Cache-Control: no-cache"}, "/static/a.js", 0, want{Serve, false, false, "fresh"}},
		{"RuleIgnoresRequestMaxAgeZero", Options{Rules: []Rule{{Prefix: "/static/", IgnoreNoCache: true}}}, stored("Cache-Control: max-age=60"), []string{"Cache-Control: max-age=0"}, "/static/a.js", time.Second, want{Serve, false, false, "fresh"}},
		{"RuleOnlyForItsPrefix", Options{ClientNoCache: NoCacheRevalidate, Rules: []Rule{{Prefix: "/static/", IgnoreNoCache: true}}}, stored("Cache-Control: max-age=60"), []string{"Cache-Control: no-cache"}, "/other", 0, want{Revalidate, false, false, "request-no-cache"}},
		{"ClientNoCacheIgnoredByDefault", Options{}, stored("Cache-Control: max-age=60"), []string{"Cache-Control: no-cache", "Pragma: no-cache"}, "", 0, want{Serve, false, false, "fresh"}},
		{"ClientMaxAgeIgnoredByDefault", Options{}, stored("Cache-Control: max-age=60"), []string{"Cache-Control: max-age=0"}, "", time.Second, want{Serve, false, false, "fresh"}},
		{"RuleRevalidatesClientNoCache", Options{Rules: []Rule{{Prefix: "/api/", ClientNoCache: NoCacheRevalidate}}}, stored("Cache-Control: max-age=60"), []string{"Cache-Control: no-cache"}, "/api/x", 0, want{Revalidate, false, false, "request-no-cache"}},
		{"HonorRevalidates", Options{ClientNoCache: NoCacheHonor}, stored("Cache-Control: max-age=60"), []string{"Cache-Control: no-cache"}, "", 0, want{Revalidate, false, false, "request-no-cache"}},
		{"TargetedNoCacheWins", Options{}, stored("CDN-Cache-Control: no-cache", "Cache-Control: max-age=60"), nil, "", 0, want{Revalidate, false, false, "no-cache"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newPolicy(t, tt.opts)
			url := tt.url
			if url == "" {
				url = "/x"
			}
			l := p.Evaluate(get("http://example.com"+url, tt.req...), tt.m, t0.Add(tt.after))
			got := want{l.Action, l.Background, l.StaleIfError, l.Detail}
			if got != tt.want {
				t.Errorf("Evaluate = %+v, want %+v", got, tt.want)
			}
			if l.Age != tt.after {
				t.Errorf("Age = %v, want %v", l.Age, tt.after)
			}
		})
	}
}

func TestEvaluateTTLIsLifetimeMinusAge(t *testing.T) {
	p := newPolicy(t, Options{})
	l := p.Evaluate(get("http://example.com/"), stored("Cache-Control: max-age=60", "Age: 10"), t0.Add(5*time.Second))
	if l.Age != 15*time.Second || l.TTL != 45*time.Second {
		t.Errorf("Age, TTL = %v, %v; want 15s, 45s", l.Age, l.TTL)
	}
}

// TestRuleTTLForcesLifetime checks that a rule TTL recorded by NewMeta
// overrides the origin's freshness.
func TestRuleTTLForcesLifetime(t *testing.T) {
	p := newPolicy(t, Options{Rules: []Rule{{Prefix: "/img/", TTL: time.Hour}}})
	h := hdr("Cache-Control: max-age=5", "Date: "+httpDate(t0))
	m := p.NewMeta(get("http://example.com/img/a.png"), 200, h, t0, t0)
	if got := p.Lifetime(&m); got != time.Hour {
		t.Errorf("Lifetime under rule = %v, want 1h", got)
	}
	m2 := p.NewMeta(get("http://example.com/other"), 200, h, t0, t0)
	if got := p.Lifetime(&m2); got != 5*time.Second {
		t.Errorf("Lifetime outside rule = %v, want 5s", got)
	}
	dst := http.Header{}
	p.ServeHeader(dst, &m)
	if _, ok := dst[forcedTTLField]; ok {
		t.Errorf("ServeHeader leaked %s", forcedTTLField)
	}
}

func TestKeepUntil(t *testing.T) {
	tests := []struct {
		name string
		opts Options
		m    *Meta
		keep time.Duration
		want time.Time
	}{
		{"ExpiryPlusKeep", Options{}, stored("Cache-Control: max-age=60"), time.Minute, t0.Add(2 * time.Minute)},
		{"InitialAgeShortensExpiry", Options{}, stored("Cache-Control: max-age=60", "Age: 20"), 0, t0.Add(40 * time.Second)},
		{"SWRWindowLongerThanKeep", Options{}, stored("Cache-Control: max-age=60, stale-while-revalidate=600"), time.Minute, t0.Add(11 * time.Minute)},
		{"SIEWindow", Options{}, stored("Cache-Control: max-age=60, stale-if-error=3600"), time.Minute, t0.Add(61 * time.Minute)},
		{"OperatorSIE", Options{StaleIfError: time.Hour}, stored("Cache-Control: max-age=60"), 0, t0.Add(61 * time.Minute)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newPolicy(t, tt.opts)
			if got := p.KeepUntil(tt.m, tt.keep); !got.Equal(tt.want) {
				t.Errorf("KeepUntil = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestOnlyIfCached(t *testing.T) {
	if !OnlyIfCached(get("http://a/", "Cache-Control: max-age=5, ONLY-IF-CACHED")) {
		t.Error("only-if-cached not seen")
	}
	if OnlyIfCached(get("http://a/", "Pragma: only-if-cached")) {
		t.Error("only-if-cached seen in Pragma")
	}
}

func TestCacheable(t *testing.T) {
	p := newPolicy(t, Options{Rules: []Rule{{Prefix: "/api/", Bypass: true}}})
	tests := []struct {
		method, url string
		want        bool
	}{
		{"GET", "http://a/x", true},
		{"HEAD", "http://a/x", true},
		{"POST", "http://a/x", false},
		{"PURGE", "http://a/x", false},
		{"GET", "http://a/api/x", false},
	}
	for _, tt := range tests {
		r, _ := http.NewRequest(tt.method, tt.url, nil)
		if got := p.Cacheable(r); got != tt.want {
			t.Errorf("Cacheable(%s %s) = %v, want %v", tt.method, tt.url, got, tt.want)
		}
	}
}
