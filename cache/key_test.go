package cache

import (
	"crypto/tls"
	"errors"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"unsafe"
)

// TestPrimaryKey covers the primary cache key (RFC 9111 §2, DESIGN.md).
func TestPrimaryKey(t *testing.T) {
	tests := []struct {
		name, url, host string
		tls             bool
		want            string
	}{
		{"LowercasesHost", "/a", "Example.COM", false, "http://example.com/a"},
		{"DropsDefaultHTTPPort", "/a", "example.com:80", false, "http://example.com/a"},
		{"KeepsOtherPort", "/a", "example.com:8080", false, "http://example.com:8080/a"},
		{"HTTPSDropsPort443", "/a", "example.com:443", true, "https://example.com/a"},
		{"HTTPKeeps443", "/a", "example.com:443", false, "http://example.com:443/a"},
		{"KeepsQueryAsSent", "/a?b=1&a=2", "h", false, "http://h/a?b=1&a=2"},
		{"KeepsPathEscaping", "/a%2Fb", "h", false, "http://h/a%2Fb"},
		{"PathCaseKept", "/A", "h", false, "http://h/A"},
		{"IPv6DefaultPort", "/", "[::1]:80", false, "http://[::1]/"},
		{"EmptyQueryKept", "/a?", "h", false, "http://h/a?"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := get("http://placeholder" + tt.url)
			r.Host = tt.host
			if tt.tls {
				r.TLS = &tls.ConnectionState{}
			}
			if got := PrimaryKey(r); got != tt.want {
				t.Errorf("PrimaryKey = %q, want %q", got, tt.want)
			}
			// The policy's key without key options is the same, made
			// or kept.
			for range 2 {
				if got := defaultPolicy.Key(r); got != tt.want {
					t.Errorf("Policy.Key = %q, want %q", got, tt.want)
				}
			}
		})
	}
	r := &http.Request{Method: "GET", Host: "h"}
	if got := PrimaryKey(r); got != "http://h/" {
		t.Errorf("PrimaryKey without URL = %q", got)
	}
}

var defaultPolicy = func() *Policy {
	p, err := New(Options{})
	if err != nil {
		panic(err)
	}
	return p
}()

// A hot URL's key is the policy's kept copy, handed out without
// allocating; a key too long to keep, or shaped by key options, is made
// as before and still right.
func TestPolicyKeyKeepsHotKeys(t *testing.T) {
	p := defaultPolicy
	r := get("http://Cellar.Test:80/1k/17?a=1")
	first := p.Key(r)
	if first != "http://cellar.test/1k/17?a=1" {
		t.Fatalf("Key = %q", first)
	}
	if again := p.Key(get("http://cellar.test/1k/17?a=1")); unsafe.StringData(again) != unsafe.StringData(first) {
		t.Errorf("the key of a URL met lately is a new copy")
	}
	if n := testing.AllocsPerRun(100, func() { p.Key(r) }); n != 0 {
		t.Errorf("%.1f allocations for the key of a URL met lately, want 0", n)
	}
	long := "/" + strings.Repeat("x", maxInternedKey)
	lr := get("http://h" + long)
	if a, b := p.Key(lr), p.Key(lr); a != "http://h"+long || unsafe.StringData(a) == unsafe.StringData(b) {
		t.Errorf("a key over %d bytes: %q (kept: %v)", maxInternedKey, a, unsafe.StringData(a) == unsafe.StringData(b))
	}
	shaped, err := New(Options{Key: KeyOptions{FoldCase: true, Query: QuerySort}})
	if err != nil {
		t.Fatal(err)
	}
	if got := shaped.Key(get("http://h/A/B?b=2&a=1")); got != "http://h/a/b?a=1&b=2" {
		t.Errorf("shaped Key = %q", got)
	}
}

func TestKeyFromURL(t *testing.T) {
	tests := []struct {
		raw, want string
		err       bool
	}{
		{"http://Example.com:80/a?x", "http://example.com/a?x", false},
		{"HTTPS://example.com:443", "https://example.com/", false},
		{"https://example.com:8443/p", "https://example.com:8443/p", false},
		{"/relative", "", true},
		{"ftp://example.com/a", "", true},
		{"http://%zz", "", true},
		{"mailto:x@y", "", true},
	}
	for _, tt := range tests {
		got, err := KeyFromURL(tt.raw)
		if (err != nil) != tt.err || got != tt.want {
			t.Errorf("KeyFromURL(%q) = %q, %v; want %q, err %v", tt.raw, got, err, tt.want, tt.err)
		}
		if err != nil && !errors.Is(err, ErrBadURL) {
			t.Errorf("KeyFromURL(%q) error %v is not ErrBadURL", tt.raw, err)
		}
	}
	r := get("http://Example.com:80/a%20b?q=1")
	k, _ := KeyFromURL("http://example.com/a%20b?q=1")
	if PrimaryKey(r) != k {
		t.Errorf("PrimaryKey %q != KeyFromURL %q", PrimaryKey(r), k)
	}
}

// TestVaryFields covers §4.1: several Vary lines and lists combined, names
// case-insensitive, "*".
func TestVaryFields(t *testing.T) {
	tests := []struct {
		name   string
		h      http.Header
		want   []string
		wantSt bool
	}{
		{"None", hdr(), nil, false},
		{"CombinesLinesAndLists", hdr("Vary: accept-encoding, Accept", "Vary: user-agent,ACCEPT"), []string{"Accept", "Accept-Encoding", "User-Agent"}, false},
		{"Star", hdr("Vary: Accept, *"), []string{"Accept"}, true},
		{"IgnoresEmptyAndJunk", hdr("Vary: , ,a b,"), nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, star := VaryFields(tt.h)
			if !reflect.DeepEqual(got, tt.want) || star != tt.wantSt {
				t.Errorf("VaryFields = %v, %v; want %v, %v", got, star, tt.want, tt.wantSt)
			}
		})
	}
}

// TestSecondaryKey covers §4.1 normalization and non-collision.
func TestSecondaryKey(t *testing.T) {
	f := []string{"Accept-Encoding", "X-A"}
	same := [][2]http.Header{
		{hdr("Accept-Encoding: gzip, br"), hdr("Accept-Encoding: gzip,br")},
		{hdr("Accept-Encoding: gzip", "Accept-Encoding: br"), hdr("Accept-Encoding: gzip, br")},
		{hdr("Accept-Encoding: gzip,   br  "), hdr("Accept-Encoding:  gzip ,br")},
		{hdr("X-A: a    b"), hdr("X-A: a\tb")},
	}
	for _, c := range same {
		if a, b := SecondaryKey(f, c[0]), SecondaryKey(f, c[1]); a != b {
			t.Errorf("keys differ for %v and %v: %q vs %q", c[0], c[1], a, b)
		}
	}
	differ := [][2]http.Header{
		{hdr(), http.Header{"Accept-Encoding": {""}}},
		{hdr("Accept-Encoding: gzip"), hdr("Accept-Encoding: GZIP")},
		{hdr("Accept-Encoding: gzip"), hdr("X-A: gzip")},
		{hdr("Accept-Encoding: a!1:X-A=1:b"), hdr("Accept-Encoding: a", "X-A: b")},
		{hdr("Accept-Encoding: ab"), hdr("Accept-Encoding: a b")},
	}
	for _, c := range differ {
		if a, b := SecondaryKey(f, c[0]), SecondaryKey(f, c[1]); a == b {
			t.Errorf("keys collide for %v and %v: %q", c[0], c[1], a)
		}
	}
	if SecondaryKey(nil, hdr("A: b")) != "" {
		t.Error("no fields should give an empty secondary key")
	}
}

func TestVariantAndEncodingKeys(t *testing.T) {
	p := "http://h/a"
	v := VariantKey(p, "x")
	e := EncodingKey(v, "gzip")
	for _, k := range []string{v, e, EncodingKey(p, "br")} {
		if !strings.HasPrefix(k, p+"\x00") {
			t.Errorf("%q does not start with primary+0", k)
		}
	}
	if strings.HasPrefix(VariantKey("http://h/ab", ""), p+"\x00") {
		t.Error("variant of another URL matches prefix")
	}
	if v != "http://h/a\x00v=x" || e != "http://h/a\x00v=x\x00e=gzip" {
		t.Errorf("keys = %q, %q", v, e)
	}
}

func TestRequestKeyShapesTheKey(t *testing.T) {
	tests := []struct {
		name string
		k    KeyOptions
		url  string
		want string
	}{
		{"zero", KeyOptions{}, "http://Ex.com/A?b=2&a=1", "http://ex.com/A?b=2&a=1"},
		{"sort", KeyOptions{Query: QuerySort}, "http://ex.com/a?b=2&a=1&a=0", "http://ex.com/a?a=0&a=1&b=2"},
		{"ignore", KeyOptions{IgnoreParams: []string{"utm_*", "fbclid"}}, "http://ex.com/a?utm_source=x&b=2&fbclid=1&a=1", "http://ex.com/a?b=2&a=1"},
		{"ignore-escaped-name", KeyOptions{IgnoreParams: []string{"utm_*"}}, "http://ex.com/a?utm%5Fsource=x&a=1", "http://ex.com/a?a=1"},
		{"ignore-all", KeyOptions{IgnoreParams: []string{"*"}}, "http://ex.com/a?x=1", "http://ex.com/a"},
		{"only", KeyOptions{OnlyParams: []string{"id"}}, "http://ex.com/a?x=1&id=2&y", "http://ex.com/a?id=2"},
		{"drop", KeyOptions{Query: QueryDrop}, "http://ex.com/a?x=1", "http://ex.com/a"},
		{"fold", KeyOptions{FoldCase: true}, "http://ex.com/IMG/A.png?Q=1", "http://ex.com/img/a.png?Q=1"},
		{"empty-params", KeyOptions{Query: QuerySort}, "http://ex.com/a?&b=1&&a", "http://ex.com/a?a&b=1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", tt.url, nil)
			if got := RequestKey(r, &tt.k); got != tt.want {
				t.Errorf("RequestKey = %q, want %q", got, tt.want)
			}
			got, err := URLKey(tt.url, &tt.k)
			if err != nil || got != tt.want {
				t.Errorf("URLKey = %q, %v; want %q", got, err, tt.want)
			}
			// Purges forward the key as a URL: keying it again changes nothing.
			if again, err := URLKey(got, &tt.k); err != nil || again != got {
				t.Errorf("URLKey(URLKey) = %q, %v; want %q", again, err, got)
			}
		})
	}
}

func TestRequestKeyHeadersAndCookies(t *testing.T) {
	k := KeyOptions{Headers: []string{"X-Device"}, Cookies: []string{"ab"}}
	key := func(lines ...string) string {
		r := httptest.NewRequest("GET", "http://ex.com/a", nil)
		for _, l := range lines {
			name, v, _ := strings.Cut(l, ":")
			r.Header.Add(name, strings.TrimSpace(v))
		}
		return RequestKey(r, &k)
	}
	base := key("X-Device: m", "Cookie: ab=1; s=2")
	if !strings.HasPrefix(base, "http://ex.com/a\x00k=") {
		t.Errorf("key %q does not start with the URL and a 0 byte", base)
	}
	if key("X-Device: m", "Cookie: s=3; ab=1") != base {
		t.Error("another cookie changed the key")
	}
	for _, other := range [][]string{{"X-Device: d", "Cookie: ab=1"}, {"X-Device: m", "Cookie: ab=2"}, {"X-Device: m"}, {"Cookie: ab=1"}} {
		if key(other...) == base {
			t.Errorf("%q gave the same key", other)
		}
	}
}
