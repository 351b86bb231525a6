package proxy

import (
	"context"
	"io"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"sync"
	"testing"
	"time"
)

// TestValidationRequestCarriesTheStoredValidators checks §4.3.1: a stale
// entry is revalidated with If-None-Match (its ETag) and If-Modified-Since
// (its Last-Modified, else its Date), while the client's own validators
// are not what the origin sees.
func TestValidationRequestCarriesTheStoredValidators(t *testing.T) {
	lm := httpDate(time.Now().Add(-time.Hour))
	date := httpDate(time.Now().Add(-time.Second))
	tests := []struct {
		name     string
		hdr      []string
		wantINM  string
		wantIMS  string
		clientIf []string
	}{
		{"ETagAndLastModified", []string{`ETag: "abc"`, "Last-Modified: " + lm}, `"abc"`, lm, nil},
		{"WeakETag", []string{`ETag: W/"abc"`}, `W/"abc"`, date, nil},
		{"DateWithoutLastModified", nil, "", date, nil},
		{"ClientValidatorsReplaced", []string{`ETag: "abc"`, "Last-Modified: " + lm}, `"abc"`, lm, []string{`If-None-Match: "zzz"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hdr := append([]string{"Cache-Control: max-age=10", "Date: " + date}, tt.hdr...)
			r := newRig(t, reply(200, "v", hdr...))
			r.sget("/v")
			r.clock.advance(20 * time.Second)
			r.sget("/v", tt.clientIf...)
			in := r.origin.lastRequest()
			if got := in.Header.Get("If-None-Match"); got != tt.wantINM {
				t.Errorf("If-None-Match %q, want %q", got, tt.wantINM)
			}
			if got := in.Header.Get("If-Modified-Since"); got != tt.wantIMS {
				t.Errorf("If-Modified-Since %q, want %q", got, tt.wantIMS)
			}
		})
	}
}

// TestNotModifiedFreshensAndUpdatesTheStoredHeader checks §4.3.4 and §3.2:
// a 304 that selects the stored entry freshens it, its header fields
// replace the stored ones (Content-Length excepted), and the stored body is
// kept.
func TestNotModifiedFreshensAndUpdatesTheStoredHeader(t *testing.T) {
	r := newRig(t, reply(200, "original body", "Cache-Control: max-age=10", `ETag: "e1"`, "X-Version: 1", "X-Kept: k"))
	r.sget("/304")
	r.origin.setHandler(func(w http.ResponseWriter, req *http.Request) {
		if req.Header.Get("If-None-Match") != `"e1"` {
			t.Errorf("revalidation If-None-Match %q", req.Header.Get("If-None-Match"))
		}
		w.Header().Set("Cache-Control", "max-age=120")
		w.Header().Set("Date", httpDate(r.clock.now())) // the origin shares the proxy's clock
		w.Header().Set("ETag", `"e1"`)
		w.Header().Set("X-Version", "2")
		w.WriteHeader(http.StatusNotModified)
	})
	r.clock.advance(20 * time.Second)
	check := func(when string, resp *http.Response, body string) {
		t.Helper()
		if resp.StatusCode != 200 || body != "original body" {
			t.Errorf("%s: %d %q, want the stored body", when, resp.StatusCode, body)
		}
		if resp.Header.Get("X-Version") != "2" || resp.Header.Get("X-Kept") != "k" {
			t.Errorf("%s: X-Version %q X-Kept %q, want the 304's field and the kept one", when, resp.Header.Get("X-Version"), resp.Header.Get("X-Kept"))
		}
		if resp.ContentLength != int64(len("original body")) {
			t.Errorf("%s: Content-Length %d", when, resp.ContentLength)
		}
	}
	resp, body := r.sget("/304")
	if cs := resp.Header.Get("Cache-Status"); !hasParam(cs, "fwd=stale") || !hasParam(cs, "fwd-status=304") {
		t.Errorf("revalidated: Cache-Status %q", cs)
	}
	check("revalidated", resp, body)
	r.clock.advance(100 * time.Second) // within the new max-age=120
	resp, body = r.sget("/304")
	if !isHit(resp.Header.Get("Cache-Status")) {
		t.Errorf("after the 304: Cache-Status %q, want a hit (freshened)", resp.Header.Get("Cache-Status"))
	}
	check("hit after 304", resp, body)
	r.wantHits(t, 2, "")
}

// TestFullResponseToValidationReplacesTheEntry checks §4.3.3: a 200 to the
// conditional request replaces the stored response.
func TestFullResponseToValidationReplacesTheEntry(t *testing.T) {
	r := newRig(t, reply(200, "old", "Cache-Control: max-age=10", `ETag: "1"`))
	r.sget("/rep")
	r.origin.setHandler(reply(200, "new", "Cache-Control: max-age=60", `ETag: "2"`))
	r.clock.advance(20 * time.Second)
	if _, body := r.sget("/rep"); body != "new" {
		t.Errorf("revalidation answered %q, want new", body)
	}
	r.clock.advance(10 * time.Second)
	resp, body := r.sget("/rep")
	if body != "new" || resp.Header.Get("ETag") != `"2"` || !isHit(resp.Header.Get("Cache-Status")) {
		t.Errorf("then: %q ETag %q Cache-Status %q, want the new entry as a hit", body, resp.Header.Get("ETag"), resp.Header.Get("Cache-Status"))
	}
	r.wantHits(t, 2, "")
}

// TestClientConditionalsAreAnsweredFromAFreshEntry checks §4.3.2 and RFC
// 9110 §13.1.2, §13.1.3, §13.2.2: If-None-Match uses weak comparison and
// takes precedence over If-Modified-Since; a match answers 304 without
// contacting the origin.
func TestClientConditionalsAreAnsweredFromAFreshEntry(t *testing.T) {
	lmT := time.Now().Add(-time.Hour).Truncate(time.Second)
	lm := httpDate(lmT)
	tests := []struct {
		name   string
		etag   string
		hdr    []string
		status int
	}{
		{"INMMatches", `"v1"`, []string{`If-None-Match: "v1"`}, 304},
		{"INMListMatches", `"v1"`, []string{`If-None-Match: "x", "v1"`}, 304},
		{"INMWeakComparison", `"v1"`, []string{`If-None-Match: W/"v1"`}, 304},
		{"INMWeakStored", `W/"v1"`, []string{`If-None-Match: "v1"`}, 304},
		{"INMStar", `"v1"`, []string{`If-None-Match: *`}, 304},
		{"INMDiffers", `"v1"`, []string{`If-None-Match: "v2"`}, 200},
		{"IMSNotModified", `"v1"`, []string{"If-Modified-Since: " + httpDate(lmT.Add(time.Minute))}, 304},
		{"IMSSameSecond", `"v1"`, []string{"If-Modified-Since: " + lm}, 304},
		{"IMSModified", `"v1"`, []string{"If-Modified-Since: " + httpDate(lmT.Add(-time.Minute))}, 200},
		{"ETagOverDates", `"v1"`, []string{`If-None-Match: "v2"`, "If-Modified-Since: " + httpDate(lmT.Add(time.Minute))}, 200},
		{"IfMatchFails", `"v1"`, []string{`If-Match: "v2"`}, 412},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRig(t, reply(200, "cond", "Cache-Control: max-age=60", "ETag: "+tt.etag, "Last-Modified: "+lm))
			r.sget("/c")
			resp, body := r.sget("/c", tt.hdr...)
			if resp.StatusCode != tt.status {
				t.Errorf("status %d, want %d", resp.StatusCode, tt.status)
			}
			if tt.status == 304 && (body != "" || resp.Header.Get("ETag") != tt.etag || resp.Header.Get("Age") == "") {
				t.Errorf("304: body %q ETag %q Age %q", body, resp.Header.Get("ETag"), resp.Header.Get("Age"))
			}
			if tt.status == 200 && body != "cond" {
				t.Errorf("200 body %q", body)
			}
			r.wantHits(t, 1, "conditional request on a fresh entry")
		})
	}
}

// TestHeadIsAnsweredFromAStoredGet checks §4 with RFC 9110 §9.3.2: a HEAD
// is answered from the stored GET response, header only.
func TestHeadIsAnsweredFromAStoredGet(t *testing.T) {
	r := newRig(t, reply(200, "0123456789", "Cache-Control: max-age=60", "Content-Type: text/plain", "X-Meta: m"))
	r.sget("/head")
	resp, body := r.send(http.MethodHead, "", "/head")
	if body != "" || resp.ContentLength != 10 || resp.Header.Get("X-Meta") != "m" || !isHit(resp.Header.Get("Cache-Status")) {
		t.Errorf("HEAD: body %q length %d X-Meta %q Cache-Status %q", body, resp.ContentLength, resp.Header.Get("X-Meta"), resp.Header.Get("Cache-Status"))
	}
	r.wantHits(t, 1, "")
}

// TestHeadOfAStaleEntryRevalidatesTheStoredGet checks §4.3.5 in cellar's
// reading: cellar never forwards a cacheable HEAD as HEAD; a HEAD for a
// stale entry validates it with a conditional GET, and the 304 freshens the
// stored GET, whose body keeps answering later GETs.
func TestHeadOfAStaleEntryRevalidatesTheStoredGet(t *testing.T) {
	r := newRig(t, reply(200, "full body", "Cache-Control: max-age=10", `ETag: "h1"`))
	r.sget("/hs")
	var method, inm string
	r.origin.setHandler(func(w http.ResponseWriter, req *http.Request) {
		method, inm = req.Method, req.Header.Get("If-None-Match")
		w.Header().Set("Cache-Control", "max-age=60")
		w.Header().Set("Date", httpDate(r.clock.now()))
		w.Header().Set("ETag", `"h1"`)
		w.WriteHeader(http.StatusNotModified)
	})
	r.clock.advance(20 * time.Second)
	resp, _ := r.send(http.MethodHead, "", "/hs")
	if resp.StatusCode != 200 || method != http.MethodGet || inm != `"h1"` {
		t.Errorf("HEAD: status %d, origin saw %s with If-None-Match %q, want a conditional GET", resp.StatusCode, method, inm)
	}
	resp, body := r.sget("/hs")
	if body != "full body" || !isHit(resp.Header.Get("Cache-Status")) {
		t.Errorf("GET after HEAD freshened it: %q %q", body, resp.Header.Get("Cache-Status"))
	}
	r.wantHits(t, 2, "")
}

// TestRangeIsAnsweredFromAStoredCompleteResponse checks §3.4 with RFC 9110
// §14: a Range request is answered 206 with Content-Range from the stored
// complete response, an unsatisfiable range 416, without the origin.
func TestRangeIsAnsweredFromAStoredCompleteResponse(t *testing.T) {
	r := newRig(t, reply(200, "0123456789", "Cache-Control: max-age=60", "Content-Type: text/plain", `ETag: "r"`))
	r.sget("/range")
	tests := []struct {
		hdr          []string
		status       int
		body, crange string
	}{
		{[]string{"Range: bytes=2-5"}, 206, "2345", "bytes 2-5/10"},
		{[]string{"Range: bytes=-3"}, 206, "789", "bytes 7-9/10"},
		{[]string{"Range: bytes=20-30"}, 416, "", "bytes */10"},
		{[]string{"Range: bytes=2-5", `If-Range: "r"`}, 206, "2345", "bytes 2-5/10"},
		{[]string{"Range: bytes=2-5", `If-Range: "other"`}, 200, "0123456789", ""},
	}
	for _, tt := range tests {
		resp, body := r.sget("/range", tt.hdr...)
		if resp.StatusCode != tt.status || (tt.status != 416 && body != tt.body) || resp.Header.Get("Content-Range") != tt.crange {
			t.Errorf("%v: %d %q Content-Range %q, want %d %q %q", tt.hdr, resp.StatusCode, body, resp.Header.Get("Content-Range"), tt.status, tt.body, tt.crange)
		}
		if !isHit(resp.Header.Get("Cache-Status")) {
			t.Errorf("%v: Cache-Status %q, want a hit", tt.hdr, resp.Header.Get("Cache-Status"))
		}
	}
	r.wantHits(t, 1, "")
}

// TestPartialContentFromTheOriginIsPassedOnNotStored checks §3.3 and §3.4:
// a 206 from the origin reaches the client unchanged but is never stored
// as a complete response.
func TestPartialContentFromTheOriginIsPassedOnNotStored(t *testing.T) {
	r := newRig(t, reply(206, "2345", "Cache-Control: max-age=60", "Content-Range: bytes 2-5/10"))
	for i := 0; i < 2; i++ {
		resp, body := r.sget("/p206")
		if resp.StatusCode != 206 || body != "2345" || resp.Header.Get("Content-Range") != "bytes 2-5/10" {
			t.Errorf("request %d: %d %q %q, want the origin's 206", i, resp.StatusCode, body, resp.Header.Get("Content-Range"))
		}
		if cs := resp.Header.Get("Cache-Status"); isHit(cs) || hasParam(cs, "stored") {
			t.Errorf("request %d: Cache-Status %q", i, cs)
		}
	}
	if _, err := r.store.Get(t.Context(), "http://"+testHost+"/p206"); err == nil {
		t.Error("a 206 was stored")
	}
	r.wantHits(t, 2, "")
}

// TestEarlyHintsAreForwardedAndNeverStored checks RFC 9110 §15.2 and RFC
// 8297: a 103 from the origin reaches the client before the final
// response, and a later hit carries neither the 103 nor its fields.
func TestEarlyHintsAreForwardedAndNeverStored(t *testing.T) {
	r := newRig(t, func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Link", "</style.css>; rel=preload")
		w.WriteHeader(http.StatusEarlyHints)
		w.Header().Del("Link")
		w.Header().Set("Cache-Control", "max-age=60")
		io.WriteString(w, "final")
	})
	get := func() (codes []int, links []string, resp *http.Response, body string) {
		var mu sync.Mutex
		trace := &httptrace.ClientTrace{Got1xxResponse: func(code int, h textproto.MIMEHeader) error {
			mu.Lock()
			codes = append(codes, code)
			links = append(links, h.Get("Link"))
			mu.Unlock()
			return nil
		}}
		req, _ := http.NewRequestWithContext(httptrace.WithClientTrace(context.Background(), trace), http.MethodGet, r.front.URL+"/eh", nil)
		req.Host = testHost
		resp, err := r.front.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		r.waitIdle()
		mu.Lock()
		defer mu.Unlock()
		return codes, links, resp, string(b)
	}
	codes, links, resp, body := get()
	if len(codes) != 1 || codes[0] != 103 || links[0] != "</style.css>; rel=preload" {
		t.Errorf("miss: interim %v %v, want one 103 with Link", codes, links)
	}
	if body != "final" || resp.Header.Get("Link") != "" {
		t.Errorf("miss: final %q Link %q", body, resp.Header.Get("Link"))
	}
	codes, _, resp, body = get()
	if len(codes) != 0 || body != "final" || resp.Header.Get("Link") != "" || !isHit(resp.Header.Get("Cache-Status")) {
		t.Errorf("hit: interim %v body %q Link %q Cache-Status %q", codes, body, resp.Header.Get("Link"), resp.Header.Get("Cache-Status"))
	}

}

// TestNotModifiedThatSelectsNoStoredResponseIsNotServed checks §4.3.4: a
// 304 whose validator matches no stored response updates nothing, and a
// client that sent no validators of its own never receives it.
func TestNotModifiedThatSelectsNoStoredResponseIsNotServed(t *testing.T) {
	r := newRig(t, reply(200, "old", "Cache-Control: max-age=10", `ETag: "1"`))
	r.sget("/mm")
	r.origin.setHandler(func(w http.ResponseWriter, req *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		w.Header().Set("ETag", `"2"`)
		if req.Header.Get("If-None-Match") != "" {
			w.WriteHeader(http.StatusNotModified) // wrongly: "1" does not match "2"
			return
		}
		w.Write([]byte("new"))
	})
	r.clock.advance(20 * time.Second)
	resp, body := r.sget("/mm")
	if resp.StatusCode != 200 || body != "new" {
		t.Errorf("got %d %q, want the origin's full response", resp.StatusCode, body)
	}
}
