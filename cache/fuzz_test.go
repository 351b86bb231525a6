package cache

import (
	"bufio"
	tlspkg "crypto/tls"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cellar-cache/cellar/internal/httpheader"
)

// addSeeds adds each line of testdata/name to f's corpus.
func addSeeds(f *testing.F, name string) {
	file, err := os.Open("testdata/" + name)
	if err != nil {
		f.Fatal(err)
	}
	defer file.Close()
	s := bufio.NewScanner(file)
	for s.Scan() {
		f.Add(s.Text())
	}
	if err := s.Err(); err != nil {
		f.Fatal(err)
	}
}

func FuzzResponseCacheControl(f *testing.F) {
	addSeeds(f, "cache-control.txt")
	f.Fuzz(func(t *testing.T, v string) {
		for _, surrogate := range []bool{false, true} {
			cc, _ := parseResponseCC(v, surrogate)
			for _, d := range []int64{cc.maxAge, cc.sMaxAge, cc.swr, cc.sie} {
				if d < -1 || d > maxDelta {
					t.Fatalf("delta %d out of range for %q", d, v)
				}
			}
			// A restrictive directive our scan sees is never lost, whatever
			// cacheobject makes of the value.
			for sc := (scanner{s: v}); ; {
				name, _, _, ok := sc.next()
				if !ok {
					break
				}
				if surrogate {
					name, _, _ = strings.Cut(name, ";")
				}
				if strings.EqualFold(name, "no-store") && !cc.noStore {
					t.Fatalf("no-store lost in %q (surrogate %v)", v, surrogate)
				}
			}
		}
		p := newPolicy(t, Options{})
		h := http.Header{"Cache-Control": {v}}
		m := Meta{Status: 200, Header: h, ResponseTime: t0}
		if l := p.Lifetime(&m); l < 0 || l > maxDelta*time.Second {
			t.Fatalf("Lifetime %v for %q", l, v)
		}
		if ok, _ := p.Storable(get("http://h/"), 200, h); ok && strings.Contains(strings.ToLower(v), "no-store") && !strings.Contains(strings.ToLower(v), "must-understand") {
			// Only acceptable when no-store was not a directive name.
			for sc := (scanner{s: v}); ; {
				name, _, _, ok := sc.next()
				if !ok {
					break
				}
				if strings.EqualFold(name, "no-store") {
					t.Fatalf("stored despite no-store: %q", v)
				}
			}
		}
		p.Evaluate(get("http://h/", "Cache-Control: "+v), &m, t0.Add(time.Minute))
	})
}

func FuzzRequestCacheControl(f *testing.F) {
	addSeeds(f, "cache-control.txt")
	f.Fuzz(func(t *testing.T, v string) {
		cc := parseRequestCC(http.Header{"Cache-Control": {v}})
		for _, d := range []int64{cc.maxAge, cc.maxStale, cc.minFresh, cc.sie} {
			if d < -1 || d > maxDelta {
				t.Fatalf("delta %d out of range for %q", d, v)
			}
		}
		if cc.maxStaleAny && cc.maxStale >= 0 {
			t.Fatalf("both bounded and unbounded max-stale for %q", v)
		}
	})
}

func FuzzAge(f *testing.F) {
	addSeeds(f, "age.txt")
	f.Fuzz(func(t *testing.T, v string) {
		n, ok := ParseAge(http.Header{"Age": {v}})
		if !ok {
			if n != 0 {
				t.Fatalf("invalid Age %q gave %d", v, n)
			}
			return
		}
		if n < 0 || n > maxDelta {
			t.Fatalf("Age %q = %d out of range", v, n)
		}
		if got := AgeValue(secs(n)); got != strconv.FormatInt(n, 10) {
			t.Fatalf("AgeValue(%d) = %s", n, got)
		}
	})
}

func FuzzVary(f *testing.F) {
	addSeeds(f, "vary.txt")
	f.Fuzz(func(t *testing.T, v string) {
		fields, _ := VaryFields(http.Header{"Vary": {v}})
		if !slices.IsSorted(fields) || len(slices.Compact(slices.Clone(fields))) != len(fields) {
			t.Fatalf("VaryFields(%q) = %q not sorted and unique", v, fields)
		}
		for _, fl := range fields {
			if !httpheader.IsToken(fl) || http.CanonicalHeaderKey(fl) != fl {
				t.Fatalf("VaryFields(%q) gave %q", v, fl)
			}
		}
	})
}

// FuzzSecondaryKey checks that equal secondary keys mean equal normalized
// values, field by field.
func FuzzSecondaryKey(f *testing.F) {
	f.Add("gzip, br", "gzip,br", "a", "")
	f.Add("a!1:X-A=1:b", "a", "", "b")
	f.Fuzz(func(t *testing.T, a1, a2, b1, b2 string) {
		fields := []string{"A", "B"}
		ha := http.Header{"A": {a1}, "B": {a2}}
		hb := http.Header{"A": {b1}, "B": {b2}}
		same := normalizeFieldValue([]string{a1}) == normalizeFieldValue([]string{b1}) &&
			normalizeFieldValue([]string{a2}) == normalizeFieldValue([]string{b2})
		if (SecondaryKey(fields, ha) == SecondaryKey(fields, hb)) != same {
			t.Fatalf("collision or split: %q %q vs %q %q", a1, a2, b1, b2)
		}
	})
}

func FuzzKeyFromURL(f *testing.F) {
	addSeeds(f, "urls.txt")
	f.Fuzz(func(t *testing.T, raw string) {
		k, err := KeyFromURL(raw)
		if err != nil {
			return
		}
		if !strings.HasPrefix(k, "http://") && !strings.HasPrefix(k, "https://") {
			t.Fatalf("KeyFromURL(%q) = %q", raw, k)
		}
		if k2, err := KeyFromURL(k); err != nil || k2 != k {
			t.Fatalf("KeyFromURL not idempotent: %q -> %q -> %q, %v", raw, k, k2, err)
		}
	})
}

func FuzzTags(f *testing.F) {
	addSeeds(f, "tags.txt")
	f.Fuzz(func(t *testing.T, v string) {
		tags := Tags(http.Header{"Surrogate-Key": {v}, "Cache-Tag": {v}})
		seen := map[string]bool{}
		for _, tg := range tags {
			if tg == "" || seen[tg] {
				t.Fatalf("Tags(%q) = %q: empty or duplicate", v, tags)
			}
			seen[tg] = true
		}
	})
}

// FuzzConditionals exercises the entity-tag and date parsing of client
// conditionals.
func FuzzConditionals(f *testing.F) {
	f.Add(`"a", W/"b"`, `W/"a"`)
	f.Add(`*`, `"x,y"`)
	f.Add(`"unterminated`, `"a"`)
	f.Fuzz(func(t *testing.T, list, etag string) {
		m := stored("ETag: " + etag)
		r := get("http://h/")
		r.Header.Set("If-None-Match", list)
		r.Header.Set("If-Match", list)
		NotModified(r, m)
		PreconditionFailed(r, m)
		for _, e := range splitETags(list) {
			if e == "" {
				t.Fatalf("splitETags(%q) gave an empty tag", list)
			}
		}
	})
}

func FuzzCacheStatus(f *testing.F) {
	f.Add("no-store", "http://h/a\x00v=1")
	f.Add(`a "b" \c`, "é")
	f.Fuzz(func(t *testing.T, detail, key string) {
		s := Status{Hit: true, Detail: detail, Key: key}.String()
		for i := 0; i < len(s); i++ {
			if s[i] < 0x20 || s[i] > 0x7e {
				t.Fatalf("Cache-Status %q has byte %#x", s, s[i])
			}
		}
	})
}

// FuzzHTTPDate checks parseHTTPDate against http.ParseTime: it is stricter
// (exact widths and single spaces, which net/http does not insist on) and
// more lenient only in letter case, so where both accept they agree, and
// every date that net/http would write in one of the three forms is
// accepted.
func FuzzHTTPDate(f *testing.F) {
	f.Add("Sun, 06 Nov 1994 08:49:37 GMT")
	f.Add("Sunday, 06-Nov-94 08:49:37 GMT")
	f.Add("Sun Nov  6 08:49:37 1994")
	f.Add("Mon, 31 Feb 2026 08:49:37 GMT")
	f.Add("Xyz, 06 Nov 1994 08:49:37 GMT")
	f.Add("Sun, 06 Nov 1994 24:00:00 GMT")
	f.Add("Thu, 18 Aug 2050 2:01:18 GMT")
	f.Add("Thu, 18  Aug  2050 02:01:18 GMT")
	f.Add("THU, 18 AUG 2050 02:01:18 gmt")
	f.Fuzz(func(t *testing.T, s string) {
		got, ok := parseHTTPDate(s)
		want, err := http.ParseTime(strings.TrimSpace(s))
		if ok && err == nil && !got.Equal(want) {
			t.Fatalf("parseHTTPDate(%q) = %v; http.ParseTime = %v", s, got, want)
		}
		if err == nil && !ok {
			for _, layout := range []string{http.TimeFormat, time.RFC850, time.ANSIC} {
				if want.Format(layout) == strings.TrimSpace(s) {
					t.Fatalf("parseHTTPDate(%q) rejects a date in the %q form", s, layout)
				}
			}
		}
	})
}

// FuzzPrimaryKey checks that a request's key is a fixed point of
// KeyFromURL, so purge-by-URL finds what PrimaryKey stored, and that the
// policy's key (made in place, or its kept copy) is the same.
func FuzzPrimaryKey(f *testing.F) {
	f.Add("Example.COM:80", "/a%20b?x=1", false)
	f.Add("[::1]:443", "/", true)
	f.Add("h:8080", "/a?", false)
	f.Fuzz(func(t *testing.T, host, target string, tls bool) {
		u, err := url.ParseRequestURI(target)
		if err != nil || strings.ContainsAny(host, "/?#@ \t\r\n%") || host == "" {
			return
		}
		r := &http.Request{Method: "GET", Host: host, URL: u}
		if tls {
			r.TLS = &tlspkg.ConnectionState{}
		}
		k := PrimaryKey(r)
		for range 2 {
			if pk := defaultPolicy.Key(r); pk != k {
				t.Fatalf("PrimaryKey %q, Policy.Key %q", k, pk)
			}
		}
		k2, err := KeyFromURL(k)
		if err != nil {
			return // hosts url.Parse rejects cannot be purged by URL
		}
		if k2 != k {
			t.Fatalf("PrimaryKey %q, KeyFromURL of it %q", k, k2)
		}
	})
}

// FuzzTargetedValue exercises the Structured Field check of targeted
// cache-control fields (RFC 9213 §2.1, RFC 9651): it never panics, and
// surrounding spaces, which RFC 9651 §4.2 discards, never change its answer.
func FuzzTargetedValue(f *testing.F) {
	for _, s := range []string{"max-age=60", "max-age=60, s-maxage=30", `max-age="60"`, "max-age=60, &&&",
		"no-store", "private, no-cache", "MaX-aGe=60", "max-age =60", "max-age=60,", "a=(1 2);b, c=?1",
		`a="x\"y", b=:aGk=:, c=%"h%c3%a9", d=@12, e=1.5, f=tok/en`, "max-age=-1", "max-age=1000000000000000"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		got := validTargetedValue(v)
		if again := validTargetedValue(" " + v + " "); again != got && !strings.ContainsAny(v, "\t") {
			t.Errorf("%q valid=%v but with surrounding spaces %v", v, got, again)
		}
	})
}
