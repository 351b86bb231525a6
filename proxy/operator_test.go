package proxy

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/cellar-cache/cellar/cache"
	"github.com/cellar-cache/cellar/store"
)

// The knobs operators tune (issue 17), end to end through the proxy with a
// counting origin: cache keys, client directives, negative caching and
// per-rule overrides.

// withDebug turns on Cache-Status key=.
func withDebug() rigOption { return withProxyOptions(func(o *Options) { o.Debug = true }) }

// purgeURL hard-purges what the purge API would purge for the URL raw.
func (r *rig) purgeURL(raw string) int {
	r.t.Helper()
	key, err := r.server.policy.KeyFromURL(raw)
	if err != nil {
		r.t.Fatal(err)
	}
	n, err := r.store.Purge(r.t.Context(), store.Selector{URL: key}, false)
	if err != nil {
		r.t.Fatal(err)
	}
	return n
}

func TestCacheKeySortsAndFiltersTheQuery(t *testing.T) {
	r := newRig(t, reply(200, "page", "Cache-Control: max-age=60"), withDebug(), withCacheOptions(func(o *cache.Options) {
		o.Key = cache.KeyOptions{Query: cache.QuerySort, IgnoreParams: []string{"utm_*", "fbclid"}}
	}))
	for _, q := range []string{"?a=1&b=2", "?b=2&a=1", "?a=1&b=2&utm_source=x", "?fbclid=9&b=2&utm_medium=y&a=1"} {
		resp, _ := r.sget("/p" + q)
		if got := param(resp.Header.Get("Cache-Status"), "key"); got != `"http://cellar.test/p?a=1&b=2"` {
			t.Errorf("GET /p%s: key=%s, want the sorted query without utm_* and fbclid", q, got)
		}
	}
	r.wantHits(t, 1, "four spellings of one query")
	if q := r.origin.lastRequest().URL.RawQuery; q != "a=1&b=2" {
		t.Errorf("origin got query %q: the key must not change what is sent", q)
	}
	r.sget("/p?a=2&b=2")
	r.wantHits(t, 2, "another value")

	// inspect and purges key the URL the same way.
	rep, err := r.server.Inspect(httptestRequest(t), "http://cellar.test/p?utm_campaign=z&b=2&a=1")
	if err != nil || len(rep.Objects) != 1 {
		t.Fatalf("Inspect = %+v, %v; want the one object", rep, err)
	}
	if n := r.purgeURL("http://cellar.test/p?b=2&a=1&fbclid=1"); n != 1 {
		t.Errorf("purge of another spelling removed %d objects, want 1", n)
	}
	r.sget("/p?a=1&b=2")
	r.wantHits(t, 3, "after the purge")
}

func TestCacheKeyQueryDropOnlyAndCase(t *testing.T) {
	tests := []struct {
		name  string
		key   cache.KeyOptions
		paths []string // all one object
		other string   // another object
	}{
		{"drop", cache.KeyOptions{Query: cache.QueryDrop}, []string{"/p?a=1", "/p", "/p?b=2"}, "/q"},
		{"only", cache.KeyOptions{OnlyParams: []string{"id", "v*"}}, []string{"/p?id=1&x=2", "/p?session=3&id=1"}, "/p?id=1&ver=2"},
		{"fold-case", cache.KeyOptions{FoldCase: true}, []string{"/Img/A.PNG", "/img/a.png"}, "/img/b.png"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRig(t, reply(200, "x", "Cache-Control: max-age=60"), withCacheOptions(func(o *cache.Options) { o.Key = tt.key }))
			for _, p := range tt.paths {
				r.sget(p)
			}
			r.wantHits(t, 1, "one object")
			r.sget(tt.other)
			r.wantHits(t, 2, "another object")
		})
	}
}

func TestCacheKeyHeadersAndCookiesPerRule(t *testing.T) {
	r := newRig(t, func(w http.ResponseWriter, req *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		w.Write([]byte("for " + req.Header.Get("X-Device")))
	}, withDebug(), withCacheOptions(func(o *cache.Options) {
		o.Rules = []cache.Rule{{Prefix: "/app/", Key: &cache.KeyOptions{Headers: []string{"x-device"}, Cookies: []string{"ab"}}}}
	}))
	_, b := r.sget("/app/x", "X-Device: mobile", "Cookie: ab=1; session=a")
	_, b2 := r.sget("/app/x", "X-Device: mobile", "Cookie: session=b; ab=1")
	r.wantHits(t, 1, "same device and ab cookie, other cookies differ")
	if b != "for mobile" || b2 != b {
		t.Errorf("bodies %q, %q", b, b2)
	}
	_, b = r.sget("/app/x", "X-Device: desktop", "Cookie: ab=1")
	r.wantHits(t, 2, "another device")
	if b != "for desktop" {
		t.Errorf("desktop got %q", b)
	}
	r.sget("/app/x", "X-Device: desktop", "Cookie: ab=2")
	r.wantHits(t, 3, "another ab cookie")
	resp, _ := r.sget("/app/x", "X-Device: desktop", "Cookie: ab=2")
	if k := param(resp.Header.Get("Cache-Status"), "key"); !strings.HasPrefix(k, `"http://cellar.test/app/x`) || !strings.Contains(k, "X-Device") {
		t.Errorf("key=%s, want the URL and the X-Device value", k)
	}
	// Outside the rule, the header is not part of the key.
	r.sget("/other", "X-Device: a")
	r.sget("/other", "X-Device: b")
	r.wantHits(t, 4, "outside the rule")
	// A purge of the URL removes every header and cookie variant.
	if n := r.purgeURL("http://cellar.test/app/x"); n != 3 {
		t.Errorf("purge removed %d objects, want 3", n)
	}
	r.sget("/app/x", "X-Device: mobile", "Cookie: ab=1")
	r.wantHits(t, 5, "after the purge")
}

func TestClientNoCache(t *testing.T) {
	tests := []struct {
		name       string
		mode       cache.ClientNoCache
		rule       cache.ClientNoCache // on /r/, when set
		path       string
		wantHits   int64
		wantINM    bool // the origin saw the stored validator
		wantCached bool
	}{
		{"default-ignores", cache.NoCacheInherit, 0, "/x", 1, false, true},
		{"revalidate", cache.NoCacheRevalidate, 0, "/x", 2, true, false},
		{"honor-reloads", cache.NoCacheHonor, 0, "/x", 2, false, false},
		{"rule-revalidates", cache.NoCacheIgnore, cache.NoCacheRevalidate, "/r/x", 2, true, false},
		{"rule-ignores", cache.NoCacheHonor, cache.NoCacheIgnore, "/r/x", 1, false, true},
	}
	for _, tt := range tests {
		for _, directive := range []string{"Cache-Control: no-cache", "Pragma: no-cache", "Cache-Control: max-age=0"} {
			t.Run(tt.name+"/"+directive, func(t *testing.T) {
				r := newRig(t, func(w http.ResponseWriter, req *http.Request) {
					w.Header().Set("Cache-Control", "max-age=600")
					w.Header().Set("ETag", `"v1"`)
					if req.Header.Get("If-None-Match") == `"v1"` {
						w.WriteHeader(http.StatusNotModified)
						return
					}
					w.Write([]byte("body"))
				}, withCacheOptions(func(o *cache.Options) {
					o.ClientNoCache = tt.mode
					if tt.rule != 0 {
						o.Rules = []cache.Rule{{Prefix: "/r/", ClientNoCache: tt.rule}}
					}
				}))
				r.sget(tt.path)
				r.clock.advance(time.Second)
				resp, body := r.sget(tt.path, directive)
				r.wantHits(t, tt.wantHits, "after the reload")
				if body != "body" {
					t.Errorf("body %q", body)
				}
				if got := isHit(resp.Header.Get("Cache-Status")); got != tt.wantCached {
					t.Errorf("hit = %v, want %v (%s)", got, tt.wantCached, resp.Header.Get("Cache-Status"))
				}
				if tt.wantHits > 1 {
					if inm := r.origin.lastRequest().Header.Get("If-None-Match") != ""; inm != tt.wantINM {
						t.Errorf("origin saw If-None-Match: %v, want %v", inm, tt.wantINM)
					}
				}
			})
		}
	}
}

func TestStatusTTLCachesErrorsWithoutFreshness(t *testing.T) {
	status := http.StatusNotFound
	var cc string
	r := newRig(t, func(w http.ResponseWriter, _ *http.Request) {
		if cc != "" {
			w.Header().Set("Cache-Control", cc)
		}
		w.WriteHeader(status)
		w.Write([]byte("nope"))
	}, withDebug(), withCacheOptions(func(o *cache.Options) {
		o.DefaultTTL = time.Hour
		o.StatusTTL = map[string]time.Duration{"404": time.Minute, "410": time.Hour, "5xx": 0}
		o.Rules = []cache.Rule{{Prefix: "/gone/", StatusTTL: map[string]time.Duration{"410": 10 * time.Second}}}
	}))
	r.sget("/missing")
	r.clock.advance(30 * time.Second)
	resp, _ := r.sget("/missing")
	r.wantHits(t, 1, "a 404 within its status TTL")
	if cs := resp.Header.Get("Cache-Status"); !isHit(cs) || resp.StatusCode != 404 {
		t.Errorf("second 404: %d %s, want a hit", resp.StatusCode, cs)
	}
	// Visible in inspect, with its TTL.
	rep, err := r.server.Inspect(httptestRequest(t), "http://cellar.test/missing")
	if err != nil || len(rep.Objects) != 1 || rep.Objects[0].Status != 404 || rep.Objects[0].TTLSeconds < 29 || rep.Objects[0].TTLSeconds > 30 {
		t.Errorf("Inspect = %+v, %v; want the 404 with 30s left", rep, err)
	}
	r.clock.advance(31 * time.Second)
	r.sget("/missing")
	r.wantHits(t, 2, "past the status TTL")
	// Purgeable.
	if n := r.purgeURL("http://cellar.test/missing"); n != 1 {
		t.Errorf("purge removed %d", n)
	}
	r.sget("/missing")
	r.wantHits(t, 3, "after the purge")

	// The origin's own freshness wins over the status TTL.
	cc = "max-age=5"
	r.sget("/explicit")
	r.clock.advance(6 * time.Second)
	r.sget("/explicit")
	r.wantHits(t, 5, "an explicit max-age=5 past 5s")
	cc = ""

	// 5xx: 0s keeps errors out, even with default_ttl.
	status = http.StatusServiceUnavailable
	r.sget("/down")
	r.sget("/down")
	r.wantHits(t, 7, "a 503 with 5xx: 0s")

	// A rule's entry replaces the global one for its paths.
	status = http.StatusGone
	r.sget("/gone/a")
	r.clock.advance(11 * time.Second)
	r.sget("/gone/a")
	r.wantHits(t, 9, "a 410 past the rule's 10s")
	r.sget("/g")
	r.clock.advance(11 * time.Second)
	r.sget("/g")
	r.wantHits(t, 10, "a 410 within the global 1h")
}

func TestRuleOverrides(t *testing.T) {
	t.Run("grace", func(t *testing.T) {
		r := newRig(t, reply(200, "x", "Cache-Control: max-age=10"), withCacheOptions(func(o *cache.Options) {
			o.Rules = []cache.Rule{{Prefix: "/", Grace: time.Minute}}
		}))
		r.sget("/a")
		r.clock.advance(30 * time.Second)
		resp, _ := r.sget("/a")
		if cs := resp.Header.Get("Cache-Status"); !isHit(cs) || param(cs, "detail") != "stale-while-revalidate" {
			t.Errorf("within grace: %s, want a stale-while-revalidate hit", cs)
		}
	})
	t.Run("keep", func(t *testing.T) {
		r := newRig(t, reply(200, "x", "Cache-Control: max-age=10"), withCacheOptions(func(o *cache.Options) {
			o.Rules = []cache.Rule{{Prefix: "/", Keep: time.Hour}}
		}))
		r.sget("/a")
		r.origin.setHandler(reply(503, "down"))
		r.clock.advance(10 * time.Minute)
		resp, body := r.sget("/a")
		if resp.StatusCode != 200 || body != "x" || param(resp.Header.Get("Cache-Status"), "detail") != "stale-if-error" {
			t.Errorf("origin down within keep: %d %q %s, want the stale copy", resp.StatusCode, body, resp.Header.Get("Cache-Status"))
		}
	})
	t.Run("ignore-origin-no-cache-and-private", func(t *testing.T) {
		r := newRig(t, func(w http.ResponseWriter, req *http.Request) {
			if strings.HasPrefix(req.URL.Path, "/nc/") {
				w.Header().Set("Cache-Control", "no-cache, max-age=60")
			} else {
				w.Header().Set("Cache-Control", "private, max-age=60")
			}
			w.Write([]byte("x"))
		}, withCacheOptions(func(o *cache.Options) {
			o.Rules = []cache.Rule{{Prefix: "/nc/", IgnoreOriginNoCache: true}, {Prefix: "/pv/", IgnorePrivate: true}}
		}))
		for _, p := range []string{"/nc/a", "/pv/a"} {
			r.sget(p)
			resp, _ := r.sget(p)
			if !isHit(resp.Header.Get("Cache-Status")) {
				t.Errorf("%s: %s, want a hit", p, resp.Header.Get("Cache-Status"))
			}
		}
		r.wantHits(t, 2, "one fetch each")
		r.sget("/other")
		r.sget("/other")
		r.wantHits(t, 4, "private outside the rule")
	})
	t.Run("strip-set-cookie", func(t *testing.T) {
		r := newRig(t, reply(200, "x", "Cache-Control: max-age=60", "Set-Cookie: s=1"), withCacheOptions(func(o *cache.Options) {
			o.Cookies = cache.CookiesAlways
			o.Rules = []cache.Rule{{Prefix: "/s/", StripSetCookie: true}}
		}))
		for range 2 {
			resp, _ := r.sget("/s/a")
			if c := resp.Header.Get("Set-Cookie"); c != "" {
				t.Errorf("Set-Cookie %q reached the client (%s)", c, resp.Header.Get("Cache-Status"))
			}
		}
		resp, _ := r.sget("/kept")
		resp, _ = r.sget("/kept")
		if resp.Header.Get("Set-Cookie") == "" {
			t.Error("outside the rule the stored Set-Cookie (share_cookies: always) is gone")
		}
	})
	t.Run("ttl", func(t *testing.T) {
		r := newRig(t, reply(200, "x", "Cache-Control: max-age=5"), withCacheOptions(func(o *cache.Options) {
			o.Rules = []cache.Rule{{Prefix: "/", Hosts: []string{"*.example.com"}, TTL: time.Hour}}
		}))
		r.send("GET", "www.example.com", "/a")
		r.send("GET", "other.test", "/a")
		r.clock.advance(time.Minute)
		r.send("GET", "www.example.com", "/a")
		r.send("GET", "other.test", "/a")
		r.wantHits(t, 3, "the rule's TTL for its site only")
	})
}

// httptestRequest is a request whose context is the test's, for Inspect.
func httptestRequest(t *testing.T) *http.Request {
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, "http://admin/inspect", nil)
	if err != nil {
		t.Fatal(err)
	}
	return req
}

func TestVaryNormalisation(t *testing.T) {
	r := newRig(t, func(w http.ResponseWriter, req *http.Request) {
		w.Header().Set("Cache-Control", "max-age=600")
		w.Header().Set("Vary", "Accept-Language, Accept")
		w.Write([]byte("lang=" + req.Header.Get("Accept-Language") + " type=" + req.Header.Get("Accept")))
	}, withCacheOptions(func(o *cache.Options) {
		o.VaryNormalize = cache.VaryNormalize{AcceptLanguage: []string{"en", "fr", "pt-BR"}, Accept: []string{"image/avif", "image/webp", "image/jpeg"}}
	}))
	tests := []struct {
		lang, accept, want string
		hits               int64
	}{
		{"en-US,en;q=0.9", "image/avif,image/webp,*/*;q=0.8", "lang=en type=image/avif", 1},
		{"en", "image/avif,*/*", "lang=en type=image/avif", 1},
		{"de;q=1, en-GB;q=0.5", "image/avif;q=0.9, image/*;q=0.5", "lang=en type=image/avif", 1},
		{"fr-CA,fr;q=0.8", "image/avif,image/webp,*/*;q=0.8", "lang=fr type=image/avif", 2},
		{"en", "image/webp,image/*;q=0.8", "lang=en type=image/webp", 3},
		{"en", "image/jpeg", "lang=en type=image/jpeg", 4},
		{"pt-br", "*/*", "lang=pt-BR type=image/avif", 5},
		{"ja", "image/avif", "lang= type=image/avif", 6},
		{"ja, ko;q=0.5", "image/avif", "lang= type=image/avif", 6},
	}
	for _, tt := range tests {
		resp, body := r.sget("/pic", "Accept-Language: "+tt.lang, "Accept: "+tt.accept)
		if body != tt.want {
			t.Errorf("Accept-Language %q, Accept %q: body %q, want %q (%s)", tt.lang, tt.accept, body, tt.want, resp.Header.Get("Cache-Status"))
		}
		r.wantHits(t, tt.hits, fmt.Sprintf("after %q %q", tt.lang, tt.accept))
	}
}
