package proxy

import (
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cellar-cache/cellar/cache"
)

// TestTargetedCacheControlTakesPrecedence checks RFC 9213 §2.2 (the first
// configured target field with a valid value governs, Cache-Control is
// ignored), Surrogate-Control (Edge Architecture 1.0) after the targets,
// and that cellar removes the fields aimed at itself alone (its own target
// fields, Surrogate-Control) from every response, from the origin and from
// cache, while CDN-Cache-Control, aimed at every CDN (RFC 9213 §3), is
// passed on unless StripCDNCacheControl.
func TestTargetedCacheControlTakesPrecedence(t *testing.T) {
	two := withCacheOptions(func(o *cache.Options) { o.Targets = []string{"Cellar-Cache-Control", "CDN-Cache-Control"} })
	tests := []struct {
		name   string
		opts   []rigOption
		hdr    []string
		reused bool
	}{
		{"CDNCacheControlOverridesNoStore", nil, []string{"Cache-Control: no-store", "CDN-Cache-Control: max-age=60"}, true},
		{"CDNCacheControlNoStoreOverridesMaxAge", nil, []string{"Cache-Control: max-age=60", "CDN-Cache-Control: no-store"}, false},
		{"CDNCacheControlOverridesExpires", nil, []string{"Expires: " + httpDate(time.Now().Add(time.Hour)), "CDN-Cache-Control: max-age=10"}, false},
		{"InvalidCDNCacheControlIsIgnored", nil, []string{"Cache-Control: max-age=60", "CDN-Cache-Control: max-age=\"x"}, true},
		{"FirstConfiguredTargetWins", []rigOption{two}, []string{"Cache-Control: no-store", "CDN-Cache-Control: no-store", "Cellar-Cache-Control: max-age=60"}, true},
		{"FirstConfiguredTargetNoStore", []rigOption{two}, []string{"Cache-Control: max-age=60", "CDN-Cache-Control: max-age=60", "Cellar-Cache-Control: no-store"}, false},
		{"UnconfiguredTargetIsIgnored", nil, []string{"Cache-Control: no-store", "Cellar-Cache-Control: max-age=60"}, false},
		{"SurrogateControlOverridesCacheControl", nil, []string{"Cache-Control: no-store", "Surrogate-Control: max-age=60"}, true},
		{"TargetOverridesSurrogateControl", nil, []string{"Surrogate-Control: max-age=60", "CDN-Cache-Control: no-store"}, false},
		{"StrippedCDNCacheControl", []rigOption{withCacheOptions(func(o *cache.Options) { o.StripCDNCacheControl = true })}, []string{"Cache-Control: no-store", "CDN-Cache-Control: max-age=60"}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRig(t, reply(200, "t", tt.hdr...), tt.opts...)
			p := r.server.policy.Options()
			var aimed, passed []string
			for _, f := range append([]string{"Surrogate-Control"}, p.Targets...) {
				if strings.EqualFold(f, "CDN-Cache-Control") && !p.StripCDNCacheControl {
					passed = append(passed, f)
				} else {
					aimed = append(aimed, f)
				}
			}
			for i := 0; i < 2; i++ {
				r.clock.advance(20 * time.Second)
				resp, _ := r.sget("/t")
				if i == 1 && isHit(resp.Header.Get("Cache-Status")) != tt.reused {
					t.Errorf("at 40s: Cache-Status %q, want hit=%v", resp.Header.Get("Cache-Status"), tt.reused)
				}
				for _, f := range aimed {
					if v := resp.Header.Get(f); v != "" {
						t.Errorf("response %d carries %s: %q", i, f, v)
					}
				}
				for _, l := range tt.hdr {
					k, v, _ := strings.Cut(l, ": ")
					if (k == "Cache-Control" || slices.Contains(passed, k)) && resp.Header.Get(k) != v {
						t.Errorf("response %d %s %q, want the origin's %q", i, k, resp.Header.Get(k), v)
					}
				}
			}
		})
	}
}

// TestCacheStatusReportsWhatHappened checks RFC 9211 §2: hit, fwd
// (uri-miss, vary-miss, stale, request, method, bypass, miss), fwd-status,
// stored, ttl, detail, and key only in debug mode.
func TestCacheStatusReportsWhatHappened(t *testing.T) {
	r := newRig(t, func(w http.ResponseWriter, req *http.Request) {
		switch {
		case strings.HasPrefix(req.URL.Path, "/vary"):
			w.Header().Set("Vary", "Accept-Language")
		case req.URL.Path == "/private":
			w.Header().Set("Cache-Control", "private")
			return
		}
		w.Header().Set("Cache-Control", "max-age=60")
		w.Header().Set("ETag", `"1"`)
		if req.Header.Get("If-None-Match") == `"1"` {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		w.Write([]byte("s"))
	}, withCacheOptions(func(o *cache.Options) { o.Rules = []cache.Rule{{Prefix: "/api/", Bypass: true}} }))
	steps := []struct {
		method, path string
		hdr          []string
		want         []string
		not          []string
	}{
		{"GET", "/a", nil, []string{"fwd=uri-miss", "fwd-status=200", "stored", "ttl=60"}, []string{"hit", "key"}},
		{"GET", "/a", nil, []string{"hit", "ttl=60"}, []string{"fwd", "stored"}},
		{"GET", "/a", []string{"Cache-Control: no-cache"}, []string{"fwd=request", "fwd-status=304"}, []string{"hit"}},
		{"GET", "/vary", []string{"Accept-Language: en"}, []string{"fwd=uri-miss", "stored"}, nil},
		// fr is not stored, but the validation request carries en's ETag
		// (§4.3.1) and the origin's 304 selects it: answered from en's body.
		{"GET", "/vary", []string{"Accept-Language: fr"}, []string{"fwd=vary-miss", "fwd-status=304"}, []string{"stored"}},
		{"POST", "/post", nil, []string{"fwd=method", "fwd-status=200"}, []string{"stored"}},
		{"GET", "/api/x", nil, []string{"fwd=bypass", "fwd-status=200"}, []string{"stored"}},
		{"GET", "/private", nil, []string{"fwd=uri-miss", "fwd-status=200"}, []string{"stored"}},
		{"GET", "/private", nil, []string{"fwd=miss", "detail=hit-for-miss"}, []string{"stored"}},
		{"GET", "/nothing", []string{"Cache-Control: only-if-cached"}, []string{"fwd=uri-miss", "detail=only-if-cached"}, nil},
	}
	for i, s := range steps {
		resp, _ := r.send(s.method, "", s.path, s.hdr...)
		cs := resp.Header.Get("Cache-Status")
		if !strings.HasPrefix(cs, "cellar") {
			t.Errorf("step %d %s %s: Cache-Status %q does not name cellar", i, s.method, s.path, cs)
		}
		for _, p := range s.want {
			ok := hasParam(cs, p)
			if name, val, isTTL := strings.Cut(p, "="); isTTL && name == "ttl" {
				want, _ := strconv.Atoi(val)
				got, err := strconv.Atoi(param(cs, "ttl"))
				ok = err == nil && got <= want && got >= want-1
			}
			if !ok {
				t.Errorf("step %d %s %s %v: Cache-Status %q lacks %s", i, s.method, s.path, s.hdr, cs, p)
			}
		}
		for _, p := range s.not {
			if hasParam(cs, p) || param(cs, p) != "" {
				t.Errorf("step %d %s %s: Cache-Status %q has %s", i, s.method, s.path, cs, p)
			}
		}
	}
	r.clock.advance(61 * time.Second)
	if cs := r.mustGet("/a").Header.Get("Cache-Status"); !hasParam(cs, "fwd=stale") || !hasParam(cs, "fwd-status=304") {
		t.Errorf("stale: Cache-Status %q, want fwd=stale and fwd-status=304", cs)
	}
}

// mustGet is sget returning only the response.
func (r *rig) mustGet(path string, hdr ...string) *http.Response {
	r.t.Helper()
	resp, _ := r.sget(path, hdr...)
	return resp
}

// TestCacheStatusKeyOnlyInDebugMode checks RFC 9211 §2.7 with cellar's
// privacy choice: the key parameter appears only when Debug is set.
func TestCacheStatusKeyOnlyInDebugMode(t *testing.T) {
	for _, debug := range []bool{false, true} {
		t.Run(strconv.FormatBool(debug), func(t *testing.T) {
			r := newRig(t, reply(200, "k", "Cache-Control: max-age=60"), withProxyOptions(func(o *Options) { o.Debug = debug }))
			for _, s := range []struct{ method, path string }{{"GET", "/k"}, {"GET", "/k"}, {"POST", "/k"}} {
				resp, _ := r.send(s.method, "", s.path)
				key := param(resp.Header.Get("Cache-Status"), "key")
				if debug && key != `"http://`+testHost+`/k"` {
					t.Errorf("%s: key %q, want the primary key", s.method, key)
				}
				if !debug && key != "" {
					t.Errorf("%s: key %q without debug", s.method, key)
				}
			}
		})
	}
}

// TestSetCookieIsNeverServedFromCacheByDefault checks cache.Options
// Cookies: the client whose request fetched a response always gets its
// Set-Cookie; by default a hit never carries it. With CookiesExplicit a
// hit carries it only when the origin gave an explicit shared lifetime
// (RFC 9111 reuses every end-to-end field), never for a response cached
// heuristically, by a rule or by the default TTL, and never when the
// origin said no-cache="Set-Cookie" (§5.2.2.4); CookiesAlways always.
func TestSetCookieIsNeverServedFromCacheByDefault(t *testing.T) {
	old := httpDate(time.Now().Add(-100 * 24 * time.Hour))
	tests := []struct {
		name   string
		policy cache.CookiePolicy
		hdr    []string
		rule   bool
		shared bool
	}{
		{"explicit/max-age", cache.CookiesExplicit, []string{"Cache-Control: max-age=60"}, false, true},
		{"explicit/s-maxage", cache.CookiesExplicit, []string{"Cache-Control: s-maxage=60"}, false, true},
		{"explicit/Expires", cache.CookiesExplicit, []string{"Expires: " + httpDate(time.Now().Add(time.Hour))}, false, true},
		{"explicit/heuristic", cache.CookiesExplicit, []string{"Last-Modified: " + old}, false, false},
		{"explicit/rule", cache.CookiesExplicit, []string{"Cache-Control: max-age=0"}, true, false},
		{"explicit/no-cache=Set-Cookie", cache.CookiesExplicit, []string{`Cache-Control: max-age=60, no-cache="Set-Cookie"`}, false, false},
		{"default/max-age", cache.CookiesNever, []string{"Cache-Control: max-age=60"}, false, false},
		{"default/s-maxage", cache.CookiesNever, []string{"Cache-Control: public, s-maxage=60"}, false, false},
		{"always/heuristic", cache.CookiesAlways, []string{"Last-Modified: " + old}, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var r *rig
			r = newRig(t, func(w http.ResponseWriter, _ *http.Request) {
				w.Header().Set("Date", httpDate(r.clock.now()))
				for _, l := range tt.hdr {
					k, v, _ := strings.Cut(l, ":")
					w.Header().Set(k, strings.TrimSpace(v))
				}
				w.Header().Set("Set-Cookie", "session=alice")
				io.WriteString(w, "page")
			}, withCacheOptions(func(o *cache.Options) {
				// Under the default PersonalSafe most of these responses
				// are not stored at all (TestPersonalResponses); this is
				// the serve-time filter of those that are.
				o.Personal = cache.PersonalRFC
				o.Cookies = tt.policy
				if tt.rule {
					o.Rules = []cache.Rule{{Prefix: "/", TTL: time.Hour}}
				}
			}))
			resp, _ := r.sget("/c")
			if resp.Header.Get("Set-Cookie") != "session=alice" {
				t.Errorf("fetching client: Set-Cookie %q, want its cookie", resp.Header.Get("Set-Cookie"))
			}
			resp, body := r.sget("/c")
			if !isHit(resp.Header.Get("Cache-Status")) || body != "page" {
				t.Fatalf("second: %q %q, want a hit", body, resp.Header.Get("Cache-Status"))
			}
			if got := resp.Header.Get("Set-Cookie"); (got != "") != tt.shared {
				t.Errorf("hit: Set-Cookie %q, want shared=%v", got, tt.shared)
			}
		})
	}
}

// TestOperatorOverrides checks the configured overrides of cache.Options:
// DefaultTTL for responses without explicit freshness, and per-prefix
// rules that force a TTL, bypass the cache or ignore request no-cache.
func TestOperatorOverrides(t *testing.T) {
	opts := withCacheOptions(func(o *cache.Options) {
		o.DefaultTTL = 60 * time.Second
		o.Rules = []cache.Rule{
			{Prefix: "/static/", TTL: time.Hour},
			{Prefix: "/api/", Bypass: true},
			{Prefix: "/img/", IgnoreNoCache: true},
		}
	})
	var r *rig
	r = newRig(t, func(w http.ResponseWriter, req *http.Request) {
		w.Header().Set("Date", httpDate(r.clock.now())) // the origin shares the proxy's clock
		switch {
		case strings.HasPrefix(req.URL.Path, "/static/"):
			w.Header().Set("Cache-Control", "max-age=0")
		case strings.HasPrefix(req.URL.Path, "/api/"), strings.HasPrefix(req.URL.Path, "/img/"):
			w.Header().Set("Cache-Control", "max-age=600")
		case req.URL.Path == "/explicit":
			w.Header().Set("Cache-Control", "max-age=10")
		}
		w.Write([]byte("o"))
	}, opts)
	steps := []struct {
		path  string
		hdr   []string
		after time.Duration // clock advance before the second request
		hit   bool
	}{
		{"/plain", nil, 30 * time.Second, true},     // DefaultTTL
		{"/plain2", nil, 61 * time.Second, false},   // DefaultTTL elapsed
		{"/explicit", nil, 30 * time.Second, false}, // DefaultTTL never overrides explicit freshness
		{"/static/a", nil, 30 * time.Minute, true},  // rule TTL overrides max-age=0
		{"/api/x", nil, time.Second, false},         // bypass
		{"/img/a", []string{"Cache-Control: no-cache"}, time.Second, true},
		{"/img/b", []string{"Pragma: no-cache"}, time.Second, true},
	}
	for _, s := range steps {
		before := r.hits()
		r.sget(s.path)
		r.clock.advance(s.after)
		resp, _ := r.sget(s.path, s.hdr...)
		cs := resp.Header.Get("Cache-Status")
		if isHit(cs) != s.hit {
			t.Errorf("%s %v after %v: Cache-Status %q, want hit=%v", s.path, s.hdr, s.after, cs, s.hit)
		}
		if strings.HasPrefix(s.path, "/api/") && (!hasParam(cs, "fwd=bypass") || r.hits()-before != 2) {
			t.Errorf("bypass: Cache-Status %q, origin requests %d", cs, r.hits()-before)
		}
		if resp.Header.Get("Cellar-Forced-Ttl") != "" {
			t.Errorf("%s: internal field reached the client", s.path)
		}
	}
}
