package proxy

import (
	"bytes"
	"compress/zlib"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cellar-cache/cellar/cache"
	"github.com/cellar-cache/cellar/compress"
	"github.com/cellar-cache/cellar/store"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// encBody is a compressible HTML body of about 24 KB.
var encBody = func() string {
	var b strings.Builder
	b.WriteString("<!doctype html><html><head><title>cellar</title></head><body><ul>\n")
	for i := 0; i < 400; i++ {
		fmt.Fprintf(&b, "<li class=\"item-%d\">Item %d of the cellar test page, weight %d</li>\n", i%17, i, i*7919%1000)
	}
	b.WriteString("</ul></body></html>\n")
	return b.String()
}()

// encOrigin answers every request with body and the given header lines.
func encOrigin(body string, hdr ...string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		for _, l := range hdr {
			k, v, _ := strings.Cut(l, ":")
			w.Header().Add(k, strings.TrimSpace(v))
		}
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		io.WriteString(w, body)
	}
}

// newEncRig is a rig whose origin serves body with hdr, and whose best-level
// pass is off unless opts turn it on.
func newEncRig(t *testing.T, h http.HandlerFunc, opts ...rigOption) *rig {
	t.Helper()
	checkNoLeakedGoroutines(t)
	opts = append([]rigOption{withProxyOptions(func(o *Options) { o.CompressBestMax = -1 })}, opts...)
	return newRig(t, h, opts...)
}

// encDo sends a request with the given header lines through the proxy with
// a client that never adds or decodes Accept-Encoding itself, and returns
// the response and its raw body.
func encDo(r *rig, method, path string, hdr ...string) (*http.Response, []byte) {
	r.t.Helper()
	req, err := http.NewRequest(method, r.front.URL+path, nil)
	if err != nil {
		r.t.Fatal(err)
	}
	req.Host = testHost
	for _, l := range hdr {
		k, v, _ := strings.Cut(l, ":")
		req.Header.Add(k, strings.TrimSpace(v))
	}
	tr := &http.Transport{DisableCompression: true}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		r.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		r.t.Fatalf("%s %s: reading body: %v", method, path, err)
	}
	return resp, b
}

// waitCodings waits until no fill and no encoding job is in progress.
func (r *rig) waitCodings() {
	r.t.Helper()
	r.waitIdle()
	deadline := time.Now().Add(20 * time.Second)
	for testutil.ToFloat64(r.server.metrics.codings.running) != 0 {
		if time.Now().After(deadline) {
			r.t.Fatal("encoding jobs still running after 20s")
		}
		time.Sleep(time.Millisecond)
	}
}

// fillCodings fetches path once (a miss) and waits for its variants.
func (r *rig) fillCodings(path string) {
	r.t.Helper()
	if resp, _ := encDo(r, "GET", path); resp.StatusCode != http.StatusOK {
		r.t.Fatalf("fill of %s: status %d", path, resp.StatusCode)
	}
	r.waitCodings()
}

// testKey is the primary key of path on the rig's host.
func testKey(t *testing.T, path string) string {
	t.Helper()
	k, err := cache.KeyFromURL("http://" + testHost + path)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// decode undoes coding on b.
func decode(t *testing.T, b []byte, coding string) string {
	t.Helper()
	if coding == "" {
		return string(b)
	}
	rd, err := compress.NewReader(bytes.NewReader(b), coding)
	if err != nil {
		t.Fatalf("decoding %s: %v", coding, err)
	}
	defer rd.Close()
	out, err := io.ReadAll(rd)
	if err != nil {
		t.Fatalf("decoding %s: %v", coding, err)
	}
	return string(out)
}

func varies(h http.Header, field string) bool {
	for _, l := range h.Values("Vary") {
		for f := range strings.SplitSeq(l, ",") {
			if strings.EqualFold(strings.TrimSpace(f), field) {
				return true
			}
		}
	}
	return false
}

const cacheable = "Cache-Control: max-age=3600"

func TestEachCodingIsServedFromItsStoredVariant(t *testing.T) {
	r := newEncRig(t, encOrigin(encBody, "Content-Type: text/html; charset=utf-8", cacheable, `ETag: "v1"`))
	r.fillCodings("/page")
	if got := r.store.Stats().DiskObjects; got != 4 {
		t.Errorf("stored objects after the variants = %d, want 4 (identity, br, zstd, gzip count in the budgets)", got)
	}
	for _, coding := range []string{compress.Brotli, compress.Zstd, compress.Gzip, ""} {
		t.Run("coding="+coding, func(t *testing.T) {
			ae := coding
			if ae == "" {
				ae = "identity"
			}
			resp, b := encDo(r, "GET", "/page", "Accept-Encoding: "+ae)
			if resp.StatusCode != http.StatusOK || !isHit(resp.Header.Get("Cache-Status")) {
				t.Fatalf("status %d, Cache-Status %q: want a 200 hit", resp.StatusCode, resp.Header.Get("Cache-Status"))
			}
			if got := resp.Header.Get("Content-Encoding"); got != coding {
				t.Errorf("Content-Encoding = %q, want %q", got, coding)
			}
			if got := resp.Header.Get("Content-Length"); got != strconv.Itoa(len(b)) {
				t.Errorf("Content-Length = %q, body %d bytes", got, len(b))
			}
			if coding != "" && len(b) >= len(encBody)/2 {
				t.Errorf("%s body is %d bytes for %d of identity: not compressed", coding, len(b), len(encBody))
			}
			if got := decode(t, b, coding); got != encBody {
				t.Errorf("decoded body differs from the origin's (%d vs %d bytes)", len(got), len(encBody))
			}
			if !varies(resp.Header, "Accept-Encoding") {
				t.Errorf("Vary = %q, want Accept-Encoding", resp.Header.Values("Vary"))
			}
			if got := resp.Header.Get("Content-Type"); got != "text/html; charset=utf-8" {
				t.Errorf("Content-Type = %q: the identity's header fields are not served", got)
			}
			for _, f := range []string{cache.EncodingsField, codingOfField} {
				if v := resp.Header.Get(f); v != "" {
					t.Errorf("internal field %s reached the client: %q", f, v)
				}
			}
		})
	}
	if got := r.origin.hits.Load(); got != 1 {
		t.Errorf("origin requests = %d, want 1: encoded variants must not go to the origin", got)
	}
	m := r.server.metrics.codings
	if got := testutil.ToFloat64(m.servedBy[compress.Brotli]); got <= 0 {
		t.Errorf("served_bytes_total{coding=br} = %v, want > 0", got)
	}
	if got := testutil.CollectAndCount(m.ratio); got != 3 {
		t.Errorf("compress_ratio has %d series, want one per coding (3)", got)
	}
}

func TestAcceptEncodingNegotiatesAmongStoredVariants(t *testing.T) {
	r := newEncRig(t, encOrigin(encBody, "Content-Type: application/json", cacheable))
	r.fillCodings("/data.json")
	for _, tc := range []struct {
		name   string
		ae     []string // Accept-Encoding lines; nil: absent
		coding string   // "" for identity
	}{
		{"AbsentMeansIdentity", nil, ""},
		{"EmptyValueMeansIdentity", []string{""}, ""},
		{"BrowserListPrefersBrotli", []string{"gzip, deflate, br, zstd"}, "br"},
		{"OnlyGzip", []string{"gzip"}, "gzip"},
		{"XGzipIsGzip", []string{"x-gzip"}, "gzip"},
		{"QValuesWin", []string{"br;q=0.5, gzip;q=0.8, zstd;q=0.1"}, "gzip"},
		{"TwoFieldLines", []string{"gzip;q=0.2", "zstd"}, "zstd"},
		{"StarTakesTheTieBreakOrder", []string{"*"}, "br"},
		{"StarZeroExceptZstd", []string{"*;q=0, zstd"}, "zstd"},
		{"AllExcludedFallsBackToIdentity", []string{"br;q=0, gzip;q=0, zstd;q=0"}, ""},
		{"IdentityPreferred", []string{"identity, gzip;q=0.5"}, ""},
		{"UnknownCodingsIgnored", []string{"compress, snappy"}, ""},
		{"CaseInsensitive", []string{"GZIP"}, "gzip"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var hdr []string
			for _, l := range tc.ae {
				hdr = append(hdr, "Accept-Encoding: "+l)
			}
			resp, b := encDo(r, "GET", "/data.json", hdr...)
			if got := resp.Header.Get("Content-Encoding"); got != tc.coding {
				t.Errorf("Content-Encoding = %q, want %q", got, tc.coding)
			}
			if got := decode(t, b, tc.coding); got != encBody {
				t.Error("decoded body differs from the origin's")
			}
		})
	}
	// Thirteen different Accept-Encoding values shared one stored response
	// and its three variants.
	if got := r.origin.hits.Load(); got != 1 {
		t.Errorf("origin requests = %d, want 1: the key must not multiply with Accept-Encoding", got)
	}
	if got := r.store.Stats().DiskObjects; got != 4 {
		t.Errorf("stored objects = %d, want 4", got)
	}
}

func TestResponsesThatMustNotBeTransformedGetNoVariants(t *testing.T) {
	for _, tc := range []struct {
		name, body string
		hdr        []string
	}{
		{"NoTransform", encBody, []string{"Content-Type: text/css", "Cache-Control: max-age=3600, no-transform"}},
		{"ImageType", encBody, []string{"Content-Type: image/png", cacheable}},
		{"BelowMinSize", encBody[:1000], []string{"Content-Type: text/html", cacheable}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newEncRig(t, encOrigin(tc.body, tc.hdr...))
			r.fillCodings("/x")
			resp, b := encDo(r, "GET", "/x", "Accept-Encoding: br, gzip, zstd")
			if ce := resp.Header.Get("Content-Encoding"); ce != "" || string(b) != tc.body {
				t.Errorf("Content-Encoding %q, body %d bytes: want the identity body", ce, len(b))
			}
			if varies(resp.Header, "Accept-Encoding") {
				t.Errorf("Vary = %q: nothing else is ever served", resp.Header.Values("Vary"))
			}
			for _, c := range madeCodings {
				if _, err := r.store.Get(context.Background(), cache.EncodingKey(testKey(t, "/x"), c)); !errors.Is(err, store.ErrNotFound) {
					t.Errorf("%s variant stored (err %v)", c, err)
				}
			}
		})
	}
}

// gzipped is encBody as an origin's own gzip would send it.
func gzipped(t testing.TB) []byte {
	var gz bytes.Buffer
	var o compress.Options
	o.EnsureDefaults()
	enc, err := o.NewWriter(&gz, compress.Gzip)
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(enc, encBody)
	enc.Close()
	return gz.Bytes()
}

func TestOriginEncodedBodyIsStoredAsSentAndDecodedOnTheFly(t *testing.T) {
	gz := bytes.NewBuffer(gzipped(t))
	// Precompression off: nothing but the origin's body is stored.
	r := newEncRig(t, encOrigin(gz.String(), "Content-Type: text/html", "Content-Encoding: gzip", cacheable, `ETag: "e1"`, "Vary: Origin"),
		withProxyOptions(func(o *Options) { o.CompressWorkers = -1 }))
	r.fillCodings("/enc")

	resp, b := encDo(r, "GET", "/enc", "Accept-Encoding: gzip, br")
	if resp.Header.Get("Content-Encoding") != "gzip" || !bytes.Equal(b, gz.Bytes()) {
		t.Errorf("gzip client: Content-Encoding %q, %d bytes: want the origin's gzip bytes as sent", resp.Header.Get("Content-Encoding"), len(b))
	}
	if got := resp.Header.Get("Etag"); got != `"e1"` {
		t.Errorf("gzip client: ETag %q, want the origin's", got)
	}
	for _, ae := range [][]string{nil, {"Accept-Encoding: br"}, {"Accept-Encoding: gzip;q=0"}} {
		resp, b := encDo(r, "GET", "/enc", ae...)
		if resp.StatusCode != http.StatusOK || !isHit(resp.Header.Get("Cache-Status")) {
			t.Fatalf("%q: status %d, Cache-Status %q", ae, resp.StatusCode, resp.Header.Get("Cache-Status"))
		}
		if ce := resp.Header.Get("Content-Encoding"); ce != "" || string(b) != encBody {
			t.Errorf("%q: Content-Encoding %q, %d bytes: want the decoded body", ae, ce, len(b))
		}
		if resp.ContentLength != -1 && resp.ContentLength != int64(len(encBody)) {
			t.Errorf("%q: Content-Length %d is the encoded length", ae, resp.ContentLength)
		}
		if got := resp.Header.Get("Etag"); got != `"e1-identity"` {
			t.Errorf("%q: ETag %q, want a tag distinct from the gzip one", ae, got)
		}
		if !varies(resp.Header, "Accept-Encoding") || !varies(resp.Header, "Origin") {
			t.Errorf("%q: Vary %q, want Origin and Accept-Encoding", ae, resp.Header.Values("Vary"))
		}
	}
	if resp, b := encDo(r, "GET", "/enc", `If-None-Match: "e1-identity"`); resp.StatusCode != http.StatusNotModified || len(b) != 0 {
		t.Errorf("If-None-Match of the decoded form: status %d, want 304", resp.StatusCode)
	}
	if resp, _ := encDo(r, "HEAD", "/enc"); resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Encoding") != "" {
		t.Errorf("HEAD of the decoded form: status %d, Content-Encoding %q", resp.StatusCode, resp.Header.Get("Content-Encoding"))
	}
	if got := r.origin.hits.Load(); got != 1 {
		t.Errorf("origin requests = %d, want 1", got)
	}
	if got := r.store.Stats().DiskObjects; got != 2 {
		t.Errorf("stored objects = %d, want 2 (Vary marker, response)", got)
	}
}

func TestETagIsDistinctPerCodingAndIfNoneMatchSelectsTheVariant(t *testing.T) {
	for _, tc := range []struct {
		name, etag, br, gzip string
	}{
		{"Strong", `"v1"`, `"v1-br"`, `"v1-gzip"`},
		{"Weak", `W/"v1"`, `W/"v1-br"`, `W/"v1-gzip"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newEncRig(t, encOrigin(encBody, "Content-Type: text/plain", cacheable, "ETag: "+tc.etag))
			r.fillCodings("/e")
			for _, c := range []struct {
				ae, inm string
				status  int
				etag    string
			}{
				{"br", "", 200, tc.br},
				{"gzip", "", 200, tc.gzip},
				{"identity", "", 200, tc.etag},
				{"br", tc.br, 304, tc.br},
				{"br", `"other", ` + tc.br, 304, tc.br},
				{"gzip", tc.br, 200, tc.gzip},
				{"br", tc.etag, 200, tc.br},
				{"identity", tc.br, 200, tc.etag},
				{"identity", tc.etag, 304, tc.etag},
			} {
				hdr := []string{"Accept-Encoding: " + c.ae}
				if c.inm != "" {
					hdr = append(hdr, "If-None-Match: "+c.inm)
				}
				resp, b := encDo(r, "GET", "/e", hdr...)
				if resp.StatusCode != c.status || resp.Header.Get("Etag") != c.etag {
					t.Errorf("AE %s, If-None-Match %s: status %d ETag %s, want %d %s", c.ae, c.inm, resp.StatusCode, resp.Header.Get("Etag"), c.status, c.etag)
				}
				if c.status == 200 && decode(t, b, resp.Header.Get("Content-Encoding")) != encBody {
					t.Errorf("AE %s, If-None-Match %s: body differs", c.ae, c.inm)
				}
				if c.status == 200 && resp.ContentLength != int64(len(b)) {
					t.Errorf("AE %s, If-None-Match %s: Content-Length %d for %d bytes", c.ae, c.inm, resp.ContentLength, len(b))
				}
			}
		})
	}
}

func TestRevalidationUsesTheOriginsETagAndKeepsTheVariants(t *testing.T) {
	r := newEncRig(t, func(w http.ResponseWriter, req *http.Request) {
		w.Header().Set("ETag", `"v1"`)
		w.Header().Set("Cache-Control", "max-age=60")
		if req.Header.Get("If-None-Match") == `"v1"` {
			// No Date: the proxy's clock was advanced, the origin's was not;
			// without one the 304's arrival time counts (§4.3.4).
			w.Header()["Date"] = nil
			w.WriteHeader(http.StatusNotModified)
			return
		}
		w.Header().Set("Content-Type", "text/plain")
		io.WriteString(w, encBody)
	})
	r.fillCodings("/r")
	r.clock.advance(2 * time.Minute)
	resp, b := encDo(r, "GET", "/r", "Accept-Encoding: br")
	if got := r.origin.lastRequest().Header.Get("If-None-Match"); got != `"v1"` {
		t.Errorf("revalidation sent If-None-Match %q, want the origin's \"v1\"", got)
	}
	if resp.StatusCode != 200 || resp.Header.Get("Content-Encoding") != "br" || resp.Header.Get("Etag") != `"v1-br"` || decode(t, b, "br") != encBody {
		t.Errorf("after a 304: status %d, Content-Encoding %q, ETag %q: want the br variant", resp.StatusCode, resp.Header.Get("Content-Encoding"), resp.Header.Get("Etag"))
	}
	r.waitCodings()
	if resp, _ := encDo(r, "GET", "/r", "Accept-Encoding: zstd"); resp.Header.Get("Content-Encoding") != "zstd" || !isHit(resp.Header.Get("Cache-Status")) {
		t.Errorf("freshened entry: Content-Encoding %q, Cache-Status %q: want a zstd hit", resp.Header.Get("Content-Encoding"), resp.Header.Get("Cache-Status"))
	}
	if got := r.origin.hits.Load(); got != 2 {
		t.Errorf("origin requests = %d, want 2 (fill, revalidation)", got)
	}
}

func TestRangeAndHeadAreCorrectForEveryVariant(t *testing.T) {
	r := newEncRig(t, encOrigin(encBody, "Content-Type: image/svg+xml", cacheable, `ETag: "s"`))
	r.fillCodings("/img.svg")
	for _, coding := range []string{"br", "zstd", "gzip", "identity"} {
		t.Run(coding, func(t *testing.T) {
			_, full := encDo(r, "GET", "/img.svg", "Accept-Encoding: "+coding)
			ce := coding
			if coding == "identity" {
				ce = ""
			}
			resp, part := encDo(r, "GET", "/img.svg", "Accept-Encoding: "+coding, "Range: bytes=10-99")
			if resp.StatusCode != http.StatusPartialContent || !bytes.Equal(part, full[10:100]) {
				t.Errorf("Range: status %d, %d bytes: want 206 with bytes 10-99 of the %s body", resp.StatusCode, len(part), coding)
			}
			if got, want := resp.Header.Get("Content-Range"), fmt.Sprintf("bytes 10-99/%d", len(full)); got != want {
				t.Errorf("Content-Range = %q, want %q", got, want)
			}
			if resp.Header.Get("Content-Encoding") != ce || resp.Header.Get("Content-Length") != "90" {
				t.Errorf("Range: Content-Encoding %q, Content-Length %q", resp.Header.Get("Content-Encoding"), resp.Header.Get("Content-Length"))
			}
			resp, part = encDo(r, "GET", "/img.svg", "Accept-Encoding: "+coding, "Range: bytes=-5")
			if resp.StatusCode != http.StatusPartialContent || !bytes.Equal(part, full[len(full)-5:]) {
				t.Errorf("suffix Range: status %d, got %x, want the last 5 bytes of the %s body", resp.StatusCode, part, coding)
			}
			resp, head := encDo(r, "HEAD", "/img.svg", "Accept-Encoding: "+coding)
			if resp.StatusCode != 200 || len(head) != 0 || resp.Header.Get("Content-Encoding") != ce || resp.Header.Get("Content-Length") != strconv.Itoa(len(full)) {
				t.Errorf("HEAD: status %d, Content-Encoding %q, Content-Length %q, want %d", resp.StatusCode, resp.Header.Get("Content-Encoding"), resp.Header.Get("Content-Length"), len(full))
			}
		})
	}
	if got := r.origin.hits.Load(); got != 1 {
		t.Errorf("origin requests = %d, want 1", got)
	}
}

func TestUnsafeMethodInvalidatesEveryVariant(t *testing.T) {
	r := newEncRig(t, encOrigin(encBody, "Content-Type: text/html", cacheable))
	r.fillCodings("/doc")
	key := testKey(t, "/doc")
	for _, c := range madeCodings {
		if _, err := r.store.Get(context.Background(), cache.EncodingKey(key, c)); err != nil {
			t.Fatalf("%s variant not stored: %v", c, err)
		}
	}
	if resp, _ := encDo(r, "POST", "/doc"); resp.StatusCode != http.StatusOK {
		t.Fatalf("POST: status %d", resp.StatusCode)
	}
	for _, k := range []string{key, cache.EncodingKey(key, "br"), cache.EncodingKey(key, "zstd"), cache.EncodingKey(key, "gzip")} {
		if _, err := r.store.Get(context.Background(), k); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("%q still stored after the POST (err %v)", k, err)
		}
	}
	before := r.origin.hits.Load()
	if resp, _ := encDo(r, "GET", "/doc", "Accept-Encoding: br"); isHit(resp.Header.Get("Cache-Status")) {
		t.Errorf("invalidated variant served: Cache-Status %q", resp.Header.Get("Cache-Status"))
	}
	if r.origin.hits.Load() != before+1 {
		t.Error("GET after the invalidation did not go to the origin")
	}
	r.waitCodings()
}

func TestVariantOfAnotherIdentityIsNeverServed(t *testing.T) {
	r := newEncRig(t, encOrigin(encBody, "Content-Type: text/html", cacheable))
	r.fillCodings("/v")
	key := testKey(t, "/v")
	// A br variant left by an older identity (another job's token).
	wr, err := r.store.Create(context.Background(), cache.EncodingKey(key, "br"), cache.Meta{
		Status: 200, Header: http.Header{"Content-Encoding": {"br"}, codingOfField: {"older"}},
	}, store.CreateOptions{SizeHint: -1})
	if err != nil {
		t.Fatal(err)
	}
	wr.Write([]byte("not the current body"))
	if _, err := wr.Commit(context.Background()); err != nil {
		t.Fatal(err)
	}
	resp, b := encDo(r, "GET", "/v", "Accept-Encoding: br")
	if resp.Header.Get("Content-Encoding") != "" || string(b) != encBody {
		t.Errorf("stale variant: Content-Encoding %q, %d bytes: want identity", resp.Header.Get("Content-Encoding"), len(b))
	}
	if !varies(resp.Header, "Accept-Encoding") {
		t.Error("identity of a compressible response lacks Vary: Accept-Encoding")
	}
	r.waitCodings() // the hit scheduled a new job
	resp, b = encDo(r, "GET", "/v", "Accept-Encoding: br")
	if resp.Header.Get("Content-Encoding") != "br" || decode(t, b, "br") != encBody {
		t.Errorf("after the new job: Content-Encoding %q: want the new br variant", resp.Header.Get("Content-Encoding"))
	}
	if got := r.origin.hits.Load(); got != 1 {
		t.Errorf("origin requests = %d, want 1", got)
	}
}

func TestMissAndVariantlessHitsCarryVaryAcceptEncoding(t *testing.T) {
	r := newEncRig(t, encOrigin(encBody, "Content-Type: text/html", cacheable, "Cellar-Encodings: br; v=forged"),
		withProxyOptions(func(o *Options) { o.CompressWorkers = -1 }))
	resp, b := encDo(r, "GET", "/m", "Accept-Encoding: br")
	if !varies(resp.Header, "Accept-Encoding") || string(b) != encBody {
		t.Errorf("miss: Vary %q, %d bytes", resp.Header.Values("Vary"), len(b))
	}
	r.waitCodings()
	resp, b = encDo(r, "GET", "/m", "Accept-Encoding: br")
	if !isHit(resp.Header.Get("Cache-Status")) || resp.Header.Get("Content-Encoding") != "" || string(b) != encBody || !varies(resp.Header, "Accept-Encoding") {
		t.Errorf("hit without variants: Cache-Status %q, Content-Encoding %q, Vary %q", resp.Header.Get("Cache-Status"), resp.Header.Get("Content-Encoding"), resp.Header.Values("Vary"))
	}
	if v := resp.Header.Get(cache.EncodingsField); v != "" {
		t.Errorf("the origin's %s reached the client: %q", cache.EncodingsField, v)
	}
	obj, err := r.store.Get(context.Background(), testKey(t, "/m"))
	if err != nil {
		t.Fatal(err)
	}
	if v := obj.Meta.Header.Get(cache.EncodingsField); v != "" {
		t.Errorf("the origin's %s was stored: %q", cache.EncodingsField, v)
	}
}

func TestBestPassReplacesTheFastVariants(t *testing.T) {
	r := newEncRig(t, encOrigin(encBody, "Content-Type: text/html", cacheable, `ETag: "b1"`),
		withProxyOptions(func(o *Options) { o.CompressBestMax = 1 << 20 }))
	r.fillCodings("/best")
	m := r.server.metrics.codings
	if n := testutil.CollectAndCount(m.compressSec); n < 4 {
		t.Errorf("compress_seconds has %d series, want the best pass's next to the fast pass's 3", n)
	}
	replaced := 0
	for _, c := range madeCodings {
		resp, b := encDo(r, "GET", "/best", "Accept-Encoding: "+c)
		if resp.Header.Get("Content-Encoding") != c || decode(t, b, c) != encBody {
			t.Errorf("%s after the best pass: Content-Encoding %q", c, resp.Header.Get("Content-Encoding"))
		}
		// The best variant's bytes differ from the fast one's: so must its
		// strong validator.
		switch et := resp.Header.Get("Etag"); et {
		case `"b1-` + c + `-best"`:
			replaced++
		case `"b1-` + c + `"`:
		default:
			t.Errorf("%s: ETag %s", c, et)
		}
	}
	if replaced == 0 {
		t.Error("the best pass replaced no variant")
	}
}

// BenchmarkBrotliHitVsIdentity serves the same stored object as a brotli
// hit and as an identity hit over real HTTP on loopback, alternating in the
// same run, and reports the brotli hit's speed relative to identity's
// (target >= 0.95).
//
// The object is compress/testdata/corpus/page.html (37 KB of real HTML).
func BenchmarkBrotliHitVsIdentity(b *testing.B) {
	page, err := os.ReadFile("../compress/testdata/corpus/page.html")
	if err != nil {
		b.Fatal(err)
	}
	body := string(page)
	r := newRig(b, encOrigin(body, "Content-Type: text/html", cacheable), withProxyOptions(func(o *Options) { o.CompressBestMax = -1 }))
	tr := &http.Transport{DisableCompression: true, MaxIdleConnsPerHost: 4}
	b.Cleanup(tr.CloseIdleConnections)
	client := &http.Client{Transport: tr}
	get := func(ae string) int {
		req, _ := http.NewRequest("GET", r.front.URL+"/bench", nil)
		req.Host = testHost
		req.Header.Set("Accept-Encoding", ae)
		resp, err := client.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		n, _ := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return int(n)
	}
	get("identity")
	r.waitIdle()
	deadline := time.Now().Add(10 * time.Second)
	for testutil.ToFloat64(r.server.metrics.codings.running) != 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if n := get("br"); n >= len(body) {
		b.Fatalf("no brotli variant: %d bytes", n)
	}
	b.ReportAllocs()
	var brTimes, idTimes []time.Duration
	var brBytes int
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		// Alternate which goes first so that neither gets a warmer cache.
		for j, ae := range [2]string{"br", "identity"} {
			if i%2 == 1 {
				ae = [2]string{"identity", "br"}[j]
			}
			start := time.Now()
			n := get(ae)
			d := time.Since(start)
			if ae == "br" {
				brTimes = append(brTimes, d)
				brBytes = n
			} else {
				idTimes = append(idTimes, d)
			}
		}
	}
	// Medians: the machine is shared, and a few slow outliers on either
	// side would otherwise decide the ratio.
	median := func(ds []time.Duration) time.Duration {
		slices.Sort(ds)
		return ds[len(ds)/2]
	}
	brMed, idMed := median(brTimes), median(idTimes)
	b.ReportMetric(float64(idMed)/float64(brMed), "br-vs-identity-speed")
	b.ReportMetric(float64(brMed.Nanoseconds()), "br-median-ns/hit")
	b.ReportMetric(float64(idMed.Nanoseconds()), "identity-median-ns/hit")
	b.ReportMetric(float64(len(body))/float64(brBytes), "br-ratio")
}

func TestOriginVaryingOnAcceptEncodingIsFilledOnceForEveryClient(t *testing.T) {
	gz := bytes.NewBuffer(gzipped(t))
	// An origin that compresses itself when asked, as nginx with gzip on.
	r := newEncRig(t, func(w http.ResponseWriter, req *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		w.Header().Set("Cache-Control", "max-age=3600")
		w.Header().Set("Vary", "Accept-Encoding, Origin")
		if strings.Contains(req.Header.Get("Accept-Encoding"), "gzip") {
			w.Header().Set("Content-Encoding", "gzip")
			w.Write(gz.Bytes())
			return
		}
		io.WriteString(w, encBody)
	})
	for i, ae := range []string{"gzip, deflate, br, zstd", "gzip, br", "br;q=1.0, gzip;q=0.8, *;q=0.1", "zstd", "identity", "gzip"} {
		resp, b := encDo(r, "GET", "/site", "Accept-Encoding: "+ae)
		want := map[string]string{"gzip, deflate, br, zstd": "br", "gzip, br": "br", "br;q=1.0, gzip;q=0.8, *;q=0.1": "br", "zstd": "zstd", "identity": "", "gzip": "gzip"}[ae]
		if i == 0 {
			// The miss streams the fill: identity, since fills ask for it.
			want = ""
			r.waitCodings()
		}
		if got := resp.Header.Get("Content-Encoding"); got != want || decode(t, b, got) != encBody {
			t.Errorf("Accept-Encoding %q: Content-Encoding %q, want %q", ae, got, want)
		}
		if !varies(resp.Header, "Accept-Encoding") || !varies(resp.Header, "Origin") {
			t.Errorf("Accept-Encoding %q: Vary %q", ae, resp.Header.Values("Vary"))
		}
	}
	if got := r.origin.lastRequest().Header.Get("Accept-Encoding"); got != "identity" {
		t.Errorf("the fill asked the origin for Accept-Encoding %q, want identity", got)
	}
	if got := r.origin.hits.Load(); got != 1 {
		t.Errorf("origin requests = %d, want 1: Accept-Encoding must not split the cache key", got)
	}
	// A different Origin still selects another response (§4.1).
	encDo(r, "GET", "/site", "Accept-Encoding: br", "Origin: https://other.example")
	if got := r.origin.hits.Load(); got != 2 {
		t.Errorf("origin requests = %d, want 2 after another Origin", got)
	}
	r.waitCodings()
}

func TestPurgeByTagRemovesTheVariants(t *testing.T) {
	r := newEncRig(t, encOrigin(encBody, "Content-Type: text/html", cacheable, "Surrogate-Key: product-7"))
	r.fillCodings("/p")
	n, err := r.store.Purge(context.Background(), store.Selector{Tag: "product-7"}, false)
	if err != nil {
		t.Fatal(err)
	}
	if n != 4 {
		t.Errorf("purge by tag removed %d objects, want 4 (identity and its three variants)", n)
	}
	if resp, _ := encDo(r, "GET", "/p", "Accept-Encoding: br"); isHit(resp.Header.Get("Cache-Status")) {
		t.Errorf("purged variant served: Cache-Status %q", resp.Header.Get("Cache-Status"))
	}
	r.waitCodings()
}

func TestInternalFieldsAreNotForwardedFromPassedResponses(t *testing.T) {
	r := newEncRig(t, encOrigin("x", "Cellar-Encodings: br; v=forged", "Cache-Control: no-store"))
	resp, _ := encDo(r, "GET", "/pass")
	if v := resp.Header.Get(cache.EncodingsField); v != "" {
		t.Errorf("%s reached the client: %q", cache.EncodingsField, v)
	}
}

func TestBusyEncoderSkipsAndALaterHitSchedulesTheJob(t *testing.T) {
	r := newEncRig(t, encOrigin(encBody, "Content-Type: text/html", cacheable),
		withProxyOptions(func(o *Options) { o.CompressWorkers = 1 }))
	// Another object's job holds the only slot.
	if !r.server.codings.claim("busy", 1) {
		t.Fatal("claim of a free slot failed")
	}
	encDo(r, "GET", "/busy")
	r.waitIdle() // the fill's job was skipped, not started
	if got := testutil.ToFloat64(r.server.metrics.codings.jobs.WithLabelValues("skipped")); got != 1 {
		t.Errorf("skipped jobs = %v, want 1", got)
	}
	resp, b := encDo(r, "GET", "/busy", "Accept-Encoding: br")
	if resp.Header.Get("Content-Encoding") != "" || string(b) != encBody || !varies(resp.Header, "Accept-Encoding") {
		t.Errorf("while busy: Content-Encoding %q, Vary %q: want identity with Vary", resp.Header.Get("Content-Encoding"), resp.Header.Values("Vary"))
	}
	r.server.codings.release("busy")
	encDo(r, "GET", "/busy", "Accept-Encoding: br") // schedules the job
	r.waitCodings()
	if resp, b := encDo(r, "GET", "/busy", "Accept-Encoding: br"); resp.Header.Get("Content-Encoding") != "br" || decode(t, b, "br") != encBody {
		t.Errorf("after a hit scheduled the job: Content-Encoding %q, want br", resp.Header.Get("Content-Encoding"))
	}
	if got := r.origin.hits.Load(); got != 1 {
		t.Errorf("origin requests = %d, want 1", got)
	}
}

func TestCloseDuringEncodingLeavesOnlyRecordedVariantsServed(t *testing.T) {
	big := strings.Repeat(encBody, 40) // about 1 MB
	r := newEncRig(t, encOrigin(big, "Content-Type: text/html", cacheable))
	encDo(r, "GET", "/big")
	r.waitIdle()
	// Close while the job may still run: Close waits for it (the leak check
	// fails otherwise), and what the restarted proxy serves is consistent:
	// every recorded variant is there, made by the recorded job.
	r.stop()
	r.start()
	obj, err := r.store.Get(context.Background(), testKey(t, "/big"))
	if err != nil {
		t.Fatalf("identity lost: %v", err)
	}
	list, token := parseEncodings(obj.Meta.Header.Get(cache.EncodingsField))
	for c := range strings.FieldsSeq(list) {
		v, err := r.store.Get(context.Background(), cache.EncodingKey(obj.Key, c))
		if err != nil || v.Meta.Header.Get(codingOfField) != token {
			t.Errorf("recorded %s variant missing after restart (err %v)", c, err)
		}
	}
	resp, b := encDo(r, "GET", "/big", "Accept-Encoding: zstd")
	if decode(t, b, resp.Header.Get("Content-Encoding")) != big {
		t.Error("body after restart differs")
	}
	r.waitCodings()
}

func TestOriginEncodedBodyGetsItsDecodedFormAndOtherCodingsStored(t *testing.T) {
	gz := gzipped(t)
	r := newEncRig(t, encOrigin(string(gz), "Content-Type: text/html", "Content-Encoding: gzip", cacheable, `ETag: "e1"`))
	r.fillCodings("/og")
	if got := r.store.Stats().DiskObjects; got != 4 {
		t.Errorf("stored objects = %d, want 4 (the origin's gzip, identity, br, zstd)", got)
	}
	for _, tc := range []struct {
		ae, coding, etag string
	}{
		{"gzip", "gzip", `"e1"`}, // the origin's bytes, as sent
		{"br, gzip", "br", `"e1-br"`},
		{"zstd", "zstd", `"e1-zstd"`},
		{"identity", "", `"e1-identity"`},
	} {
		resp, b := encDo(r, "GET", "/og", "Accept-Encoding: "+tc.ae)
		if got := resp.Header.Get("Content-Encoding"); got != tc.coding || decode(t, b, got) != encBody {
			t.Errorf("AE %s: Content-Encoding %q, want %q", tc.ae, got, tc.coding)
		}
		if tc.coding == "gzip" && !bytes.Equal(b, gz) {
			t.Errorf("AE gzip: not the origin's bytes")
		}
		if resp.ContentLength != int64(len(b)) {
			t.Errorf("AE %s: Content-Length %d for %d bytes", tc.ae, resp.ContentLength, len(b))
		}
		if got := resp.Header.Get("Etag"); got != tc.etag {
			t.Errorf("AE %s: ETag %s, want %s", tc.ae, got, tc.etag)
		}
	}
	// The stored decoded form serves ranges of the decoded bytes.
	if resp, b := encDo(r, "GET", "/og", "Range: bytes=0-14"); resp.StatusCode != http.StatusPartialContent || string(b) != encBody[:15] {
		t.Errorf("Range of the decoded form: status %d, %q", resp.StatusCode, b)
	}
	if got := r.origin.hits.Load(); got != 1 {
		t.Errorf("origin requests = %d, want 1", got)
	}
}

func TestNoTransformEncodedBodyIsNeverDecoded(t *testing.T) {
	gz := gzipped(t)
	r := newEncRig(t, encOrigin(string(gz), "Content-Type: text/html", "Content-Encoding: gzip", "Cache-Control: max-age=3600, no-transform"))
	r.fillCodings("/nt")
	resp, b := encDo(r, "GET", "/nt", "Accept-Encoding: identity")
	if resp.Header.Get("Content-Encoding") != "gzip" || !bytes.Equal(b, gz) {
		t.Errorf("Content-Encoding %q, %d bytes: no-transform forbids decoding (RFC 9111 §5.2.2.6)", resp.Header.Get("Content-Encoding"), len(b))
	}
	if got := r.store.Stats().DiskObjects; got != 1 {
		t.Errorf("stored objects = %d, want 1", got)
	}
}

func TestOriginDeflateBodyIsServedAndDecoded(t *testing.T) {
	var df bytes.Buffer
	zw, err := zlib.NewWriterLevel(&df, zlib.DefaultCompression)
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(zw, encBody)
	zw.Close()
	r := newEncRig(t, encOrigin(df.String(), "Content-Type: text/html", "Content-Encoding: deflate", cacheable))
	r.fillCodings("/df")
	if resp, b := encDo(r, "GET", "/df", "Accept-Encoding: deflate"); resp.Header.Get("Content-Encoding") != "deflate" || !bytes.Equal(b, df.Bytes()) {
		t.Errorf("deflate client: Content-Encoding %q: want the origin's bytes", resp.Header.Get("Content-Encoding"))
	}
	for _, ae := range []string{"br", "identity"} {
		resp, b := encDo(r, "GET", "/df", "Accept-Encoding: "+ae)
		if got := resp.Header.Get("Content-Encoding"); decode(t, b, got) != encBody {
			t.Errorf("AE %s: Content-Encoding %q, body does not decode to the origin's", ae, got)
		}
	}
}

func TestCodingETag(t *testing.T) {
	for _, tc := range []struct {
		in, suffix, want string
		ok               bool
	}{
		{`"abc"`, "br", `"abc-br"`, true},
		{`W/"abc"`, "gzip", `W/"abc-gzip"`, true},
		{` "abc" `, "zstd", `"abc-zstd"`, true},
		{`""`, "br", `"-br"`, true},
		{`"a,b"`, "br-best", `"a,b-br-best"`, true},
		{`abc`, "br", "", false},
		{`W/abc`, "br", "", false},
		{`"`, "br", "", false},
		{``, "br", "", false},
	} {
		got, ok := codingETag(tc.in, tc.suffix)
		if got != tc.want || ok != tc.ok {
			t.Errorf("codingETag(%q, %q) = %q, %v; want %q, %v", tc.in, tc.suffix, got, ok, tc.want, tc.ok)
		}
	}
}

func TestStoredCoding(t *testing.T) {
	for _, tc := range []struct {
		lines []string
		want  string
	}{
		{nil, "identity"},
		{[]string{"identity"}, "identity"},
		{[]string{"gzip"}, "gzip"},
		{[]string{"X-Gzip"}, "gzip"},
		{[]string{" BR "}, "br"},
		{[]string{"zstd"}, "zstd"},
		{[]string{"deflate"}, "deflate"},
		{[]string{"gzip, br"}, ""},
		{[]string{"gzip", "br"}, ""},
		{[]string{"compress"}, ""},
		{[]string{"identity, gzip"}, "gzip"},
	} {
		if got := storedCoding(tc.lines); got != tc.want {
			t.Errorf("storedCoding(%q) = %q, want %q", tc.lines, got, tc.want)
		}
	}
}

func TestVaryGetsAcceptEncodingOnce(t *testing.T) {
	for _, tc := range []struct {
		in   []string
		want []string
	}{
		{nil, []string{"Accept-Encoding"}},
		{[]string{"Origin"}, []string{"Origin, Accept-Encoding"}},
		{[]string{"Origin", "Cookie"}, []string{"Origin, Cookie, Accept-Encoding"}},
		{[]string{"accept-encoding"}, []string{"accept-encoding"}},
		{[]string{"Origin, Accept-Encoding"}, []string{"Origin, Accept-Encoding"}},
		{[]string{"*"}, []string{"*"}},
	} {
		h := http.Header{}
		if tc.in != nil {
			h["Vary"] = tc.in
		}
		addVaryAcceptEncoding(h)
		if !slices.Equal(h["Vary"], tc.want) {
			t.Errorf("Vary %q -> %q, want %q", tc.in, h["Vary"], tc.want)
		}
	}
}

func TestAcceptEncodingIsDroppedFromVaryFields(t *testing.T) {
	for _, tc := range []struct{ in, want []string }{
		{nil, nil},
		{[]string{"Origin"}, []string{"Origin"}},
		{[]string{"Accept-Encoding"}, []string{}},
		{[]string{"Accept-Encoding", "Origin", "accept-encoding"}, []string{"Origin"}},
	} {
		if got := withoutAcceptEncoding(tc.in); !slices.Equal(got, tc.want) {
			t.Errorf("withoutAcceptEncoding(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestCompressOptionsAreAppliedAndValidated(t *testing.T) {
	body := strings.Repeat("tiny,", 40) // 200 bytes: below the default MinSize
	r := newEncRig(t, encOrigin(body, "Content-Type: application/x-custom", cacheable),
		withProxyOptions(func(o *Options) {
			o.Compress = compress.Options{Types: []string{"application/x-custom"}, MinSize: 1, Order: []string{"gzip", "br"}}
		}))
	r.fillCodings("/c")
	resp, b := encDo(r, "GET", "/c", "Accept-Encoding: br, gzip, zstd")
	if got := resp.Header.Get("Content-Encoding"); got != "gzip" || decode(t, b, got) != body {
		t.Errorf("Content-Encoding %q, want gzip (configured type, size and order)", got)
	}

	o := Options{Origins: []string{"http://127.0.0.1:1"}, Compress: compress.Options{Levels: map[string]int{"br": 42}}}
	o.EnsureDefaults()
	if err := o.Validate(); !errors.Is(err, compress.ErrInvalidOptions) {
		t.Errorf("Validate with brotli level 42: %v, want compress.ErrInvalidOptions", err)
	}
}
