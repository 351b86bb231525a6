package cache

import (
	"errors"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestStorable covers §3 (method, status, no-store, private, freshness),
// §3.5 (Authorization), §5.2.1.5 (request no-store), §5.2.2.3
// (must-understand), rules and RFC 9213 targets.
func TestStorable(t *testing.T) {
	lm := "Last-Modified: " + httpDate(t0.Add(-time.Hour))
	tests := []struct {
		name       string
		opts       Options
		method     string
		url        string
		req        []string
		status     int
		resp       []string
		wantOK     bool
		wantReason string
	}{
		{"ExplicitFreshness200", Options{}, "GET", "", nil, 200, []string{"Cache-Control: max-age=60"}, true, ""},
		{"HeuristicStatusWithoutFreshness", Options{}, "GET", "", nil, 200, []string{lm}, true, ""},
		{"HeuristicStatus404", Options{}, "GET", "", nil, 404, nil, true, ""},
		{"NonHeuristicStatusNeedsFreshness", Options{}, "GET", "", nil, 302, nil, false, "no-freshness"},
		{"ExplicitFreshnessMakes302Storable", Options{}, "GET", "", nil, 302, []string{"Cache-Control: max-age=60"}, true, ""},
		{"ExpiresMakes500Storable", Options{}, "GET", "", nil, 500, []string{"Expires: " + httpDate(t0.Add(time.Hour))}, true, ""},
		{"UnknownStatusWithFreshness", Options{}, "GET", "", nil, 599, []string{"Cache-Control: max-age=60"}, true, ""},
		{"PublicMakesStorable", Options{}, "GET", "", nil, 302, []string{"Cache-Control: public"}, true, ""},
		{"PostNotStored", Options{}, "POST", "", nil, 200, []string{"Cache-Control: max-age=60"}, false, "method"},
		{"HeadNotStoredAsEntry", Options{}, "HEAD", "", nil, 200, []string{"Cache-Control: max-age=60"}, false, "method"},
		{"InterimNeverStored", Options{}, "GET", "", nil, 103, []string{"Cache-Control: max-age=60"}, false, "status"},
		{"PartialNotStoredAsComplete", Options{}, "GET", "", nil, 206, []string{"Cache-Control: max-age=60"}, false, "partial"},
		{"NotModifiedNotStored", Options{}, "GET", "", nil, 304, []string{"Cache-Control: max-age=60"}, false, "status"},
		{"NoStore", Options{}, "GET", "", nil, 200, []string{"Cache-Control: max-age=60, no-store"}, false, "no-store"},
		{"NoStoreParseErrorStillNoStore", Options{}, "GET", "", nil, 200, []string{"Cache-Control: max-age=abc, no-store"}, false, "no-store"},
		{"RequestNoStore", Options{}, "GET", "", []string{"Cache-Control: no-store"}, 200, []string{"Cache-Control: max-age=60"}, false, "request-no-store"},
		{"Private", Options{}, "GET", "", nil, 200, []string{"Cache-Control: private, max-age=60"}, false, "private"},
		{"PrivateWithFieldsStored", Options{}, "GET", "", nil, 200, []string{`Cache-Control: private="set-cookie", max-age=60`}, true, ""},
		{"NoCacheStored", Options{}, "GET", "", nil, 200, []string{"Cache-Control: no-cache"}, true, ""},
		{"AuthorizationNotStored", Options{}, "GET", "", []string{"Authorization: Basic x"}, 200, []string{"Cache-Control: max-age=60"}, false, "authorization"},
		{"AuthorizationWithPublic", Options{}, "GET", "", []string{"Authorization: Basic x"}, 200, []string{"Cache-Control: public, max-age=60"}, true, ""},
		{"AuthorizationWithSMaxAge", Options{}, "GET", "", []string{"Authorization: Basic x"}, 200, []string{"Cache-Control: s-maxage=60"}, true, ""},
		{"AuthorizationWithMustRevalidateRFC", Options{Personal: PersonalRFC}, "GET", "", []string{"Authorization: Basic x"}, 200, []string{"Cache-Control: must-revalidate, max-age=60"}, true, ""},
		{"AuthorizationWithMustRevalidateSafe", Options{}, "GET", "", []string{"Authorization: Basic x"}, 200, []string{"Cache-Control: must-revalidate, max-age=60"}, false, "authorization"},
		{"CookieRequestSharedWithTargetedField", Options{}, "GET", "", []string{"Cookie: sid=alice"}, 200, []string{"CDN-Cache-Control: max-age=60"}, true, ""},
		{"MustUnderstandOverridesNoStore", Options{}, "GET", "", nil, 200, []string{"Cache-Control: must-understand, no-store, max-age=60"}, true, ""},
		{"MustUnderstandUnknownStatus", Options{}, "GET", "", nil, 299, []string{"Cache-Control: must-understand, no-store, max-age=60"}, false, "must-understand"},
		{"VaryStarNotStored", Options{}, "GET", "", nil, 200, []string{"Cache-Control: max-age=60", "Vary: accept, *"}, false, "vary"},
		{"TargetNoStoreWins", Options{}, "GET", "", nil, 200, []string{"CDN-Cache-Control: no-store", "Cache-Control: max-age=60"}, false, "no-store"},
		{"TargetAllowsDespiteCacheControlNoStore", Options{}, "GET", "", nil, 200, []string{"CDN-Cache-Control: max-age=60", "Cache-Control: no-store"}, true, ""},
		{"ConfiguredTargetsInOrder", Options{Targets: []string{"Cellar-Cache-Control", "CDN-Cache-Control"}}, "GET", "", nil, 200, []string{"Cellar-Cache-Control: max-age=5", "CDN-Cache-Control: no-store"}, true, ""},
		{"SurrogateNoStore", Options{}, "GET", "", nil, 200, []string{"Surrogate-Control: no-store", "Cache-Control: max-age=60"}, false, "no-store"},
		{"DefaultTTLMakesStorable", Options{DefaultTTL: time.Minute}, "GET", "", nil, 302, nil, true, ""},
		{"RuleTTLMakesStorable", Options{Rules: []Rule{{Prefix: "/r/", TTL: time.Minute}}}, "GET", "/r/x", nil, 302, nil, true, ""},
		{"RuleBypass", Options{Rules: []Rule{{Prefix: "/r/", Bypass: true}}}, "GET", "/r/x", nil, 200, []string{"Cache-Control: max-age=60"}, false, "bypass"},
		{"SetCookieStoredRFC", Options{Personal: PersonalRFC}, "GET", "", nil, 200, []string{"Cache-Control: max-age=60", "Set-Cookie: a=b"}, true, ""},
		{"SetCookieNotSharedOnMaxAge", Options{}, "GET", "", nil, 200, []string{"Cache-Control: max-age=60", "Set-Cookie: a=b"}, false, "set-cookie"},
		{"SetCookieNotSharedOnHeuristics", Options{}, "GET", "", nil, 200, []string{lm, "Set-Cookie: a=b"}, false, "set-cookie"},
		{"SetCookieSharedWithPublic", Options{}, "GET", "", nil, 200, []string{"Cache-Control: public, max-age=60", "Set-Cookie: a=b"}, true, ""},
		{"SetCookieSharedWithSMaxAge", Options{}, "GET", "", nil, 200, []string{"Cache-Control: s-maxage=60", "Set-Cookie: a=b"}, true, ""},
		{"SetCookieKeptBackByNoCacheField", Options{}, "GET", "", nil, 200, []string{`Cache-Control: max-age=60, no-cache="Set-Cookie"`, "Set-Cookie: a=b"}, true, ""},
		{"SetCookieKeptBackByPrivateField", Options{}, "GET", "", nil, 200, []string{`Cache-Control: max-age=60, private="set-cookie"`, "Set-Cookie: a=b"}, true, ""},
		{"CookieRequestNotSharedOnMaxAge", Options{}, "GET", "", []string{"Cookie: sid=alice"}, 200, []string{"Cache-Control: max-age=60"}, false, "cookie"},
		{"CookieRequestNotSharedOnHeuristics", Options{}, "GET", "", []string{"Cookie: sid=alice"}, 200, []string{lm}, false, "cookie"},
		{"CookieRequestSharedWithPublic", Options{}, "GET", "", []string{"Cookie: sid=alice"}, 200, []string{"Cache-Control: public, max-age=60"}, true, ""},
		{"CookieRequestSharedWithRuleTTL", Options{Rules: []Rule{{Prefix: "/r/", TTL: time.Minute}}}, "GET", "/r/x", []string{"Cookie: sid=alice"}, 200, nil, true, ""},
		{"CookieRequestStoredRFC", Options{Personal: PersonalRFC}, "GET", "", []string{"Cookie: sid=alice"}, 200, []string{lm}, true, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newPolicy(t, tt.opts)
			url := "http://example.com/x"
			if tt.url != "" {
				url = "http://example.com" + tt.url
			}
			r := get(url, tt.req...)
			r.Method = tt.method
			ok, reason := p.Storable(r, tt.status, hdr(tt.resp...))
			if ok != tt.wantOK || reason != tt.wantReason {
				t.Errorf("Storable = %v, %q; want %v, %q", ok, reason, tt.wantOK, tt.wantReason)
			}
		})
	}
}

// TestStoredHeaderOmitsHopByHop covers §3.1 and the chosen reading of
// private="..." / no-cache="..." (§5.2.2.4, §5.2.2.7).
func TestStoredHeaderOmitsHopByHop(t *testing.T) {
	p := newPolicy(t, Options{})
	h := hdr(
		"Cache-Control: max-age=60, private=\"X-Secret\", no-cache=\"x-user\"",
		"Connection: close, X-Conn",
		"X-Conn: 1",
		"Keep-Alive: timeout=5",
		"Proxy-Connection: keep-alive",
		"Transfer-Encoding: chunked",
		"Te: trailers",
		"Trailer: X-T",
		"Upgrade: h2c",
		"Proxy-Authenticate: Basic",
		"X-Secret: s",
		"X-User: u",
		"Set-Cookie: a=b",
		"Content-Type: text/plain",
		"Cellar-Forced-Ttl: 99999",
	)
	m := p.NewMeta(get("http://example.com/x"), 200, h, t0.Add(-time.Second), t0)
	var keys []string
	for k := range m.Header {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	want := []string{"Cache-Control", "Content-Type", "Set-Cookie"}
	if !reflect.DeepEqual(keys, want) {
		t.Errorf("stored fields = %v, want %v", keys, want)
	}
	if m.Status != 200 || !m.RequestTime.Equal(t0.Add(-time.Second)) || !m.ResponseTime.Equal(t0) || m.Invalid {
		t.Errorf("meta = %+v", m)
	}
	h.Set("Content-Type", "changed")
	if m.Header.Get("Content-Type") != "text/plain" {
		t.Error("NewMeta shares value slices with the response header")
	}
}

// TestServeHeader covers which stored fields a response from cache carries:
// CDN-Cache-Control is passed on (RFC 9213 §3) unless StripCDNCacheControl,
// cellar's own targeted fields and Surrogate-Control never are, and
// Set-Cookie follows Options.Cookies (here an explicit max-age).
func TestServeHeader(t *testing.T) {
	m := stored("Cache-Control: max-age=60", "CDN-Cache-Control: max-age=600", "Surrogate-Control: max-age=5",
		"Cellar-Cache-Control: max-age=60", "Set-Cookie: a=b", "Content-Type: text/html")
	tests := []struct {
		name   string
		opts   Options
		want   []string
		absent []string
	}{
		{"Default", Options{}, []string{"Cache-Control", "Content-Type", "Date", "Cdn-Cache-Control"}, []string{"Set-Cookie", "Surrogate-Control"}},
		{"CookiesExplicit", Options{Cookies: CookiesExplicit}, []string{"Set-Cookie", "Cdn-Cache-Control"}, nil},
		{"StripCDNCacheControl", Options{StripCDNCacheControl: true}, []string{"Cache-Control"}, []string{"Cdn-Cache-Control", "Surrogate-Control"}},
		{"OwnTargetIsRemoved", Options{Targets: []string{"Cellar-Cache-Control", "CDN-Cache-Control"}}, []string{"Cdn-Cache-Control"}, []string{"Cellar-Cache-Control", "Surrogate-Control"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newPolicy(t, tt.opts)
			dst := http.Header{}
			p.ServeHeader(dst, m)
			for _, k := range tt.want {
				if _, ok := dst[k]; !ok {
					t.Errorf("%s missing", k)
				}
			}
			for _, k := range tt.absent {
				if _, ok := dst[k]; ok {
					t.Errorf("%s present", k)
				}
			}
			dst["Content-Type"] = append(dst["Content-Type"], "x")
			if len(m.Header["Content-Type"]) != 1 {
				t.Error("append to served header changed the stored entry")
			}
		})
	}
}

func TestStripForClient(t *testing.T) {
	p := newPolicy(t, Options{Targets: []string{"Cellar-Cache-Control", "CDN-Cache-Control"}})
	h := hdr("Cellar-Cache-Control: max-age=1", "CDN-Cache-Control: max-age=2", "Surrogate-Control: max-age=3", "Cache-Control: max-age=4")
	p.StripForClient(h)
	if len(h) != 2 || h.Get("Cache-Control") != "max-age=4" || h.Get("CDN-Cache-Control") != "max-age=2" {
		t.Errorf("after StripForClient: %v, want Cache-Control and CDN-Cache-Control only", h)
	}
	p = newPolicy(t, Options{StripCDNCacheControl: true})
	h = hdr("CDN-Cache-Control: max-age=2", "Cache-Control: max-age=4")
	p.StripForClient(h)
	if len(h) != 1 || h.Get("Cache-Control") != "max-age=4" {
		t.Errorf("after StripForClient with StripCDNCacheControl: %v", h)
	}
}

func TestOptionsValidate(t *testing.T) {
	o := Options{HeuristicFraction: 2, DefaultTTL: -1, Targets: []string{"Cache-Control", "bad name"},
		Rules: []Rule{{Prefix: "static", TTL: -time.Second}, {Prefix: "/x", Bypass: true, TTL: time.Second}}}
	o.EnsureDefaults()
	err := o.Validate()
	if !errors.Is(err, ErrInvalidOptions) {
		t.Fatalf("Validate = %v, want ErrInvalidOptions", err)
	}
	for _, s := range []string{"HeuristicFraction = 2", "DefaultTTL", "Targets[0]", "Targets[1]", `Rules[0] (prefix "static").Prefix`, "Rules[0] (prefix \"static\").TTL", "Rules[1]"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q does not mention %q", err, s)
		}
	}
	var d Options
	d.EnsureDefaults()
	if err := d.Validate(); err != nil {
		t.Errorf("defaults invalid: %v", err)
	}
	if d.HeuristicFraction != 0.1 || d.HeuristicMax != 24*time.Hour || !reflect.DeepEqual(d.Targets, []string{"CDN-Cache-Control"}) {
		t.Errorf("defaults = %+v", d)
	}
}
