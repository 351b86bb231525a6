package proxy

import (
	"net/http"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/cellar-cache/cellar/cache"
)

// TestFreshnessLifetimeFollowsTheRFCOrder checks §4.2.1 (s-maxage, then
// max-age, then Expires minus Date), §5.3 (an invalid Expires is already
// stale), §1.2.2 (delta-seconds clamp at 2^31) and the parsing choices
// of cache/doc.go (case-insensitive names, quoted values, the smallest of
// duplicate values), through the proxy: at age 30 s the entry is fresh or
// not.
func TestFreshnessLifetimeFollowsTheRFCOrder(t *testing.T) {
	now := time.Now()
	date := "Date: " + httpDate(now)
	tests := []struct {
		name  string
		hdr   []string
		fresh bool
	}{
		{"SharedCacheUsesSMaxAge", []string{"Cache-Control: max-age=1, s-maxage=60"}, true},
		{"SMaxAgeOverridesLongerMaxAge", []string{"Cache-Control: max-age=600, s-maxage=10"}, false},
		{"MaxAgeOverridesExpires", []string{date, "Cache-Control: max-age=60", "Expires: " + httpDate(now.Add(-time.Hour))}, true},
		{"ShortMaxAgeOverridesLaterExpires", []string{date, "Cache-Control: max-age=10", "Expires: " + httpDate(now.Add(time.Hour))}, false},
		{"ExpiresMinusDate", []string{date, "Expires: " + httpDate(now.Add(60*time.Second))}, true},
		{"ExpiresMinusDateElapsed", []string{date, "Expires: " + httpDate(now.Add(20*time.Second))}, false},
		{"ExpiresInRFC850Form", []string{date, "Expires: " + now.Add(time.Hour).UTC().Format(time.RFC850)}, true},
		{"ExpiresInAsctimeForm", []string{date, "Expires: " + now.Add(time.Hour).UTC().Format(time.ANSIC)}, true},
		{"InvalidExpiresIsStale", []string{date, "Expires: 0"}, false},
		{"DirectiveNamesAreCaseInsensitive", []string{"Cache-Control: MAX-AGE=60"}, true},
		{"QuotedMaxAge", []string{`Cache-Control: max-age="60"`}, true},
		{"DuplicateMaxAgeUsesTheSmallest", []string{"Cache-Control: max-age=60, max-age=10"}, false},
		{"DuplicateFieldLinesAreCombined", []string{"Cache-Control: max-age=60", "Cache-Control: max-age=10"}, false},
		{"InvalidMaxAgeIsStale", []string{"Cache-Control: max-age=soon", "Last-Modified: " + httpDate(now.Add(-1000*time.Hour))}, false},
		{"HugeMaxAgeIsClamped", []string{"Cache-Control: max-age=99999999999999999999"}, true},
		{"UnknownExtensionsAreIgnored", []string{"Cache-Control: max-age=60, community=\"UCI\", x-foo"}, true},
		{"HeuristicFromLastModified", []string{date, "Last-Modified: " + httpDate(now.Add(-1000*time.Second))}, true},
		{"HeuristicTooShort", []string{date, "Last-Modified: " + httpDate(now.Add(-200*time.Second))}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRig(t, reply(200, "f", tt.hdr...))
			r.sget("/f")
			r.clock.advance(30 * time.Second)
			resp, body := r.sget("/f")
			if body != "f" {
				t.Fatalf("body %q", body)
			}
			cs := resp.Header.Get("Cache-Status")
			if isHit(cs) != tt.fresh {
				t.Errorf("at age 30s Cache-Status %q, want hit=%v", cs, tt.fresh)
			}
			want := int64(2)
			if tt.fresh {
				want = 1
			}
			r.wantHits(t, want, "after two requests")
		})
	}
}

// TestHeuristicFreshnessIsAConfigurableCappedFraction checks §4.2.2: the
// heuristic lifetime is a fraction (default 10%) of Date minus
// Last-Modified, capped, and only for heuristically cacheable responses.
func TestHeuristicFreshnessIsAConfigurableCappedFraction(t *testing.T) {
	tests := []struct {
		name      string
		opts      func(*cache.Options)
		since     time.Duration // Date - Last-Modified
		freshAt   time.Duration
		staleAt   time.Duration
		extraHdrs []string
	}{
		{"default 10 percent", nil, 1000 * time.Second, 90 * time.Second, 110 * time.Second, nil},
		{"configured 50 percent", func(o *cache.Options) { o.HeuristicFraction = 0.5 }, 1000 * time.Second, 490 * time.Second, 510 * time.Second, nil},
		{"capped", func(o *cache.Options) { o.HeuristicMax = time.Minute }, 100 * time.Hour, 50 * time.Second, 70 * time.Second, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var opts []rigOption
			if tt.opts != nil {
				opts = append(opts, withCacheOptions(tt.opts))
			}
			now := time.Now()
			r := newRig(t, reply(200, "h", "Date: "+httpDate(now), "Last-Modified: "+httpDate(now.Add(-tt.since))), opts...)
			r.sget("/h")
			r.clock.advance(tt.freshAt)
			if resp, _ := r.sget("/h"); !isHit(resp.Header.Get("Cache-Status")) {
				t.Errorf("at %v: Cache-Status %q, want a hit", tt.freshAt, resp.Header.Get("Cache-Status"))
			}
			r.clock.advance(tt.staleAt - tt.freshAt)
			if resp, _ := r.sget("/h"); !hasParam(resp.Header.Get("Cache-Status"), "fwd=stale") {
				t.Errorf("at %v: Cache-Status %q, want fwd=stale", tt.staleAt, resp.Header.Get("Cache-Status"))
			}
			r.wantHits(t, 2, "")
		})
	}
}

// dateThirtySecondsAgo stands for a Date field 30 seconds before the
// subtest starts.
const dateThirtySecondsAgo = "Date: (30s ago)"

// TestAgeIsCorrectOnEveryCachedResponse checks §4.2.3 and §5.1: the Age of
// a response from cache counts the origin's Age, the apparent age from
// Date, and the time the entry has been resident; the stored Age is used
// up when it reaches the lifetime.
func TestAgeIsCorrectOnEveryCachedResponse(t *testing.T) {
	tests := []struct {
		name    string
		hdr     []string
		initial int // Age expected on the first response, seconds
	}{
		{"OriginAge", []string{"Cache-Control: max-age=60", "Age: 30"}, 30},
		{"ApparentAgeFromDate", []string{"Cache-Control: max-age=60", dateThirtySecondsAgo}, 30},
		{"InvalidAgeIgnored", []string{"Cache-Control: max-age=60", "Age: soon"}, 0},
		{"LargestOfSeveralAges", []string{"Cache-Control: max-age=60", "Age: 5, 30"}, 30},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// The Date is made now, not when the table was built: earlier
			// subtests on a busy machine would otherwise add to its age.
			hdr := slices.Clone(tt.hdr)
			for i, h := range hdr {
				if h == dateThirtySecondsAgo {
					hdr[i] = "Date: " + httpDate(time.Now().Add(-30*time.Second))
				}
			}
			r := newRig(t, reply(200, "a", hdr...))
			age := func(resp *http.Response) int {
				n, err := strconv.Atoi(resp.Header.Get("Age"))
				if err != nil {
					t.Fatalf("Age %q: %v", resp.Header.Get("Age"), err)
				}
				return n
			}
			resp, _ := r.sget("/age")
			if a := age(resp); a < tt.initial || a > tt.initial+1 {
				t.Errorf("first response Age %d, want %d", a, tt.initial)
			}
			r.clock.advance(10 * time.Second)
			resp, _ = r.sget("/age")
			if a := age(resp); !isHit(resp.Header.Get("Cache-Status")) || a < tt.initial+10 || a > tt.initial+11 {
				t.Errorf("hit after 10s: Age %d Cache-Status %q, want Age %d", a, resp.Header.Get("Cache-Status"), tt.initial+10)
			}
			if ttl, _ := strconv.Atoi(param(resp.Header.Get("Cache-Status"), "ttl")); ttl < 60-tt.initial-11 || ttl > 60-tt.initial-10 {
				t.Errorf("hit after 10s: ttl %d, want %d", ttl, 60-tt.initial-10)
			}
			r.clock.advance(time.Duration(60-tt.initial-10+1) * time.Second)
			resp, _ = r.sget("/age")
			if isHit(resp.Header.Get("Cache-Status")) {
				t.Errorf("past its lifetime: Cache-Status %q, want a miss", resp.Header.Get("Cache-Status"))
			}
			r.wantHits(t, 2, "")
		})
	}
}

// TestRequestDirectivesLimitReuse checks §5.2.1: request max-age,
// min-fresh, max-stale and no-cache, and Pragma: no-cache when
// Cache-Control is absent (§5.4), against an entry stored with max-age=60
// and now 30 s old.
func TestRequestDirectivesLimitReuse(t *testing.T) {
	tests := []struct {
		name  string
		hdr   []string
		reuse bool
		fwd   string // Cache-Status fwd when not reused
	}{
		{"MaxAgeOlderThanEntry", []string{"Cache-Control: max-age=10"}, false, "request"},
		{"MaxAgeYoungerThanEntry", []string{"Cache-Control: max-age=40"}, true, ""},
		{"MaxAgeZero", []string{"Cache-Control: max-age=0"}, false, "request"},
		{"MinFreshNotMet", []string{"Cache-Control: min-fresh=40"}, false, "request"},
		{"MinFreshMet", []string{"Cache-Control: min-fresh=20"}, true, ""},
		{"NoCache", []string{"Cache-Control: no-cache"}, false, "request"},
		{"PragmaNoCache", []string{"Pragma: no-cache"}, false, "request"},
		{"PragmaIgnoredWithCacheControl", []string{"Pragma: no-cache", "Cache-Control: max-age=3600"}, true, ""},
		{"RequestNoStoreMayUseStored", []string{"Cache-Control: no-store"}, true, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRig(t, reply(200, "r", "Cache-Control: max-age=60"))
			r.sget("/r")
			r.clock.advance(30 * time.Second)
			resp, body := r.sget("/r", tt.hdr...)
			cs := resp.Header.Get("Cache-Status")
			if body != "r" || isHit(cs) != tt.reuse {
				t.Errorf("Cache-Status %q body %q, want hit=%v", cs, body, tt.reuse)
			}
			if !tt.reuse && !hasParam(cs, "fwd="+tt.fwd) {
				t.Errorf("Cache-Status %q, want fwd=%s", cs, tt.fwd)
			}
			want := int64(2)
			if tt.reuse {
				want = 1
			}
			r.wantHits(t, want, "")
		})
	}
}

// TestMaxStaleAllowsStaleEntries checks §5.2.1.2 (and §4.2.4: a cache may
// serve stale when the client allows it), on an entry that has been stale
// for 20 s.
func TestMaxStaleAllowsStaleEntries(t *testing.T) {
	tests := []struct {
		name  string
		resp  string
		req   string
		reuse bool
	}{
		{"MaxStaleWithoutValue", "max-age=10", "max-stale", true},
		{"MaxStaleLargeEnough", "max-age=10", "max-stale=30", true},
		{"MaxStaleTooSmall", "max-age=10", "max-stale=5", false},
		{"MustRevalidateOverridesMaxStale", "max-age=10, must-revalidate", "max-stale", false},
		{"SMaxAgeOverridesMaxStale", "s-maxage=10", "max-stale", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRig(t, reply(200, "s", "Cache-Control: "+tt.resp))
			r.sget("/s")
			r.clock.advance(30 * time.Second)
			resp, _ := r.sget("/s", "Cache-Control: "+tt.req)
			if cs := resp.Header.Get("Cache-Status"); isHit(cs) != tt.reuse {
				t.Errorf("Cache-Status %q, want hit=%v", cs, tt.reuse)
			}
			if tt.reuse {
				if a, _ := strconv.Atoi(resp.Header.Get("Age")); a < 30 {
					t.Errorf("stale response Age %d, want >= 30", a)
				}
			}
		})
	}
}

// TestOnlyIfCachedNeverContactsTheOrigin checks §5.2.1.7: with a usable
// stored response cellar answers from it; otherwise 504, without asking
// the origin.
func TestOnlyIfCachedNeverContactsTheOrigin(t *testing.T) {
	r := newRig(t, func(w http.ResponseWriter, req *http.Request) {
		switch req.URL.Path {
		case "/private":
			w.Header().Set("Cache-Control", "private")
		default:
			w.Header().Set("Cache-Control", "max-age=60")
		}
		w.Write([]byte("oic"))
	})
	oic := "Cache-Control: only-if-cached"
	if resp, _ := r.sget("/miss", oic); resp.StatusCode != http.StatusGatewayTimeout {
		t.Errorf("miss: status %d, want 504", resp.StatusCode)
	}
	r.wantHits(t, 0, "only-if-cached miss")

	r.sget("/fresh")
	if resp, body := r.sget("/fresh", oic); resp.StatusCode != 200 || body != "oic" || !isHit(resp.Header.Get("Cache-Status")) {
		t.Errorf("fresh: %d %q %q, want a 200 hit", resp.StatusCode, body, resp.Header.Get("Cache-Status"))
	}
	r.clock.advance(61 * time.Second)
	if resp, _ := r.sget("/fresh", oic); resp.StatusCode != http.StatusGatewayTimeout {
		t.Errorf("stale: status %d, want 504", resp.StatusCode)
	}
	r.wantHits(t, 1, "only-if-cached on a fresh then stale entry")

	// A key recently found not shareable (hit-for-miss) is still a miss.
	r.sget("/private")
	if resp, _ := r.sget("/private", oic); resp.StatusCode != http.StatusGatewayTimeout {
		t.Errorf("not shareable: status %d, want 504", resp.StatusCode)
	}
	r.wantHits(t, 2, "only-if-cached on a key that is not shareable")
}
