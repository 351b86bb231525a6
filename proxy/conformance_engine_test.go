package proxy

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// This file is a small Go model of how the HTTP caching conformance suite
// (http-tests/cache-tests, cache-tests.fyi) drives a cache: a test is a
// sequence of requests through the proxy to an origin that answers each
// one as the test says, and checks what reached the client and the origin.
// The conformance_*_test.go files express the suite's tests, one subtest
// per suite test id, in this form. The suite pauses 3 s where a test says
// pause_after; here the rig's clock is advanced instead.

// cstep is one request of a conformance test and the origin's answer to it.
type cstep struct {
	method string   // "" is GET
	path   string   // appended to the test's URL ("/location_target", "?a=b")
	reqHdr []string // "Name: value" ("@N" dates from the test's start); nil sends the suite's default request fields
	// status is the origin's status (0: 200).
	status int
	// respHdr are the origin's fields, "Name: value". A value "@N" is an
	// HTTP-date N seconds from the origin's now; a leading "~" on the line
	// exempts it from the check that the client receives it unchanged (the
	// suite's third element false).
	respHdr []string
	body    *string // the origin's body; nil is the test's default body
	noDate  bool    // the origin sends no Date (the suite's origin always does)
	// disconnect makes the origin close the connection without answering.
	disconnect bool
	// magicLocations makes Location and Content-Location absolute URLs of
	// the test's URL plus their value.
	magicLocations bool
	pause          bool // advance the clock 3 s after this request
	// originDelay advances the clock while the origin makes its answer
	// (the suite's response_pause).
	originDelay time.Duration
	// interim are 1xx statuses the origin sends before its answer.
	interim []int

	// expect is "", "cached", "not_cached", "etag_validated" or
	// "lm_validated". A validated request is answered 304 by the origin
	// when it carries the previous step's ETag / Last-Modified, else 999.
	expect     string
	wantStatus int      // 0: status, else 200
	wantHdr    []string // "Name: value", "Name" (present), "Name > N"; "@N" dates are relative to the response's Server-Now
	wantGone   []string // fields the client must not receive
	wantBody   *string  // nil: the origin's body (not checked for 204, 304, HEAD, disconnect)
	noBody     bool     // do not check the body
	wantReqHdr []string // fields the origin must have received for this request: "Name: value" or "Name"
	wantMethod string   // the method the origin must have received
}

func sp(s string) *string { return &s }

// seen is what the conformance origin received and sent for one request.
type seen struct {
	reqNum int
	method string
	header http.Header
	sent   http.Header // the fields of the test's respHdr as sent (dates expanded)
}

// conformance runs steps through a fresh rig and reports every failed
// expectation.
func conformance(t *testing.T, steps []cstep, opts ...rigOption) *rig {
	t.Helper()
	const path = "/test/conformance"
	defBody := "body-of-" + t.Name()
	var (
		mu    sync.Mutex
		state []seen
	)
	var r *rig
	r = newRig(t, func(w http.ResponseWriter, req *http.Request) {
		mu.Lock()
		srvNum := len(state) + 1
		reqNum, err := strconv.Atoi(req.Header.Get("Req-Num"))
		if err != nil || reqNum < 1 || reqNum > len(steps) {
			reqNum = srvNum
		}
		if reqNum > len(steps) {
			mu.Unlock()
			http.Error(w, "no such step", http.StatusConflict)
			return
		}
		st := steps[reqNum-1]
		if st.originDelay > 0 {
			r.clock.advance(st.originDelay)
		}
		now := r.clock.now()
		status := st.status
		if status == 0 {
			status = 200
		}
		if strings.HasSuffix(st.expect, "validated") && reqNum > 1 {
			status = 999
			prev := state
			var prevSent http.Header
			for i := len(prev) - 1; i >= 0; i-- {
				if prev[i].reqNum == reqNum-1 {
					prevSent = prev[i].sent
					break
				}
			}
			if prevSent == nil {
				prevSent = expandHeader(steps[reqNum-2].respHdr, now, "")
			}
			if lm := prevSent.Get("Last-Modified"); lm != "" && req.Header.Get("If-Modified-Since") == lm {
				status = 304
			}
			if et := prevSent.Get("Etag"); et != "" && req.Header.Get("If-None-Match") == et {
				status = 304
			}
		}
		base := "http://" + req.Host + path
		if !st.magicLocations {
			base = ""
		}
		sent := expandHeader(st.respHdr, now, base)
		h := w.Header()
		h.Set("Server-Request-Count", strconv.Itoa(srvNum))
		h.Set("Client-Request-Count", strconv.Itoa(reqNum))
		h.Set("Server-Now", strconv.FormatInt(now.Unix(), 10))
		for k, v := range sent {
			h[k] = append(h[k], v...)
		}
		if _, ok := h["Date"]; !ok {
			if st.noDate {
				h["Date"] = nil
			} else {
				h.Set("Date", httpDate(now))
			}
		}
		if h.Get("Content-Type") == "" {
			h.Set("Content-Type", "text/plain")
		}
		state = append(state, seen{reqNum: reqNum, method: req.Method, header: req.Header.Clone(), sent: sent})
		mu.Unlock()
		if st.disconnect {
			if hj, ok := w.(http.Hijacker); ok {
				if c, _, err := hj.Hijack(); err == nil {
					c.Close()
					return
				}
			}
			panic(http.ErrAbortHandler)
		}
		for _, code := range st.interim {
			w.WriteHeader(code)
		}
		w.WriteHeader(status)
		if status != 204 && status != 304 && req.Method != http.MethodHead {
			b := defBody
			if st.body != nil {
				b = *st.body
			}
			fmt.Fprint(w, b)
		}
	}, opts...)

	t0 := r.clock.now() // request dates ("@N") are relative to the test's start, as in the suite
	for i, st := range steps {
		n := i + 1
		method := st.method
		if method == "" {
			method = http.MethodGet
		}
		hdr := st.reqHdr
		if hdr == nil {
			hdr = []string{"Pragma: foo", "Cache-Control: nothing-to-see-here"}
		}
		var out []string
		for k, vs := range expandHeader(hdr, t0, "") {
			for _, v := range vs {
				out = append(out, k+": "+v)
			}
		}
		hdr = append(out, "Req-Num: "+strconv.Itoa(n))
		resp, body, err := r.trySend(method, "", path+st.path, hdr...)
		if err != nil {
			if st.disconnect {
				if st.expect == "cached" {
					t.Errorf("request %d: %v, want the stored response", n, err)
				}
				continue
			}
			t.Fatalf("request %d: %v", n, err)
		}
		checkStep(t, n, st, resp, body, defBody, func(reqNum int) *seen {
			mu.Lock()
			defer mu.Unlock()
			for i := len(state) - 1; i >= 0; i-- {
				if state[i].reqNum == reqNum {
					s := state[i]
					return &s
				}
			}
			return nil
		})
		if st.pause {
			r.clock.advance(3 * time.Second)
		}
	}
	return r
}

// expandHeader parses "Name: value" lines into a header, expanding "@N"
// dates and, when base is set, Location and Content-Location. A leading
// "~" is dropped.
func expandHeader(lines []string, now time.Time, base string) http.Header {
	h := http.Header{}
	for _, l := range lines {
		l = strings.TrimPrefix(l, "~")
		k, v, _ := strings.Cut(l, ":")
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		if n, ok := strings.CutPrefix(v, "@"); ok {
			if secs, err := strconv.Atoi(n); err == nil {
				v = httpDate(now.Add(time.Duration(secs) * time.Second))
			}
		}
		if base != "" && (strings.EqualFold(k, "Location") || strings.EqualFold(k, "Content-Location")) {
			if v == "" {
				v = base
			} else {
				v = base + "/" + v
			}
		}
		h.Add(k, v)
	}
	return h
}

// checkStep checks one response against the step's expectations.
func checkStep(t *testing.T, n int, st cstep, resp *http.Response, body, defBody string, origin func(int) *seen) {
	t.Helper()
	clientNum, err := strconv.Atoi(resp.Header.Get("Client-Request-Count"))
	if err != nil {
		clientNum = -1
	}
	cs := resp.Header.Get("Cache-Status")
	switch st.expect {
	case "cached":
		if !(resp.StatusCode == 304 && clientNum < 0) && !(clientNum >= 1 && clientNum < n) {
			t.Errorf("request %d does not come from cache (origin answered request %d; %s)", n, clientNum, cs)
		}
	case "not_cached":
		if clientNum != n {
			t.Errorf("request %d comes from cache (origin answered request %d; %s)", n, clientNum, cs)
		}
	case "etag_validated", "lm_validated":
		field := "If-None-Match"
		if st.expect == "lm_validated" {
			field = "If-Modified-Since"
		}
		if o := origin(n); o == nil {
			t.Errorf("request %d was not sent to the origin (%s)", n, cs)
		} else if _, ok := o.header[field]; !ok {
			t.Errorf("request %d reached the origin without %s (%s)", n, field, cs)
		}
	}
	want := st.wantStatus
	if want == 0 {
		want = st.status
	}
	if want == 0 {
		want = 200
	}
	if st.disconnect && st.expect != "cached" {
		want = -1 // any error status
	}
	if want > 0 && resp.StatusCode != want {
		t.Errorf("request %d: status %d, want %d (%s)", n, resp.StatusCode, want, cs)
	}
	serverNow := time.Now()
	if sn, err := strconv.ParseInt(resp.Header.Get("Server-Now"), 10, 64); err == nil {
		serverNow = time.Unix(sn, 0)
	}
	for _, w := range st.wantHdr {
		if k, v, ok := strings.Cut(w, " > "); ok {
			lim, _ := strconv.Atoi(v)
			got, err := strconv.Atoi(resp.Header.Get(k))
			if err != nil || got <= lim {
				t.Errorf("request %d: %s is %q, want more than %d", n, k, resp.Header.Get(k), lim)
			}
			continue
		}
		k, v, ok := strings.Cut(w, ":")
		if !ok {
			if _, present := resp.Header[http.CanonicalHeaderKey(k)]; !present {
				t.Errorf("request %d: %s missing", n, k)
			}
			continue
		}
		wantV := expandHeader([]string{k + ":" + v}, serverNow, "").Get(k)
		if got := strings.Join(resp.Header.Values(k), ", "); got != wantV {
			t.Errorf("request %d: %s is %q, want %q", n, k, got, wantV)
		}
	}
	for _, k := range st.wantGone {
		if v, present := resp.Header[http.CanonicalHeaderKey(k)]; present {
			t.Errorf("request %d: unexpected %s: %q", n, k, v)
		}
	}
	// The fields the origin sent with the response this client got must
	// reach it unchanged (Date excepted), as the suite checks.
	if clientNum == n {
		if o := origin(n); o != nil {
			for _, l := range st.respHdr {
				if strings.HasPrefix(l, "~") {
					continue
				}
				k, _, _ := strings.Cut(l, ":")
				k = http.CanonicalHeaderKey(strings.TrimSpace(k))
				if k == "Date" {
					continue
				}
				wantV := strings.Join(o.sent.Values(k), ", ")
				if got := strings.Join(resp.Header.Values(k), ", "); got != wantV {
					t.Errorf("request %d: %s is %q, the origin sent %q", n, k, got, wantV)
				}
			}
		}
	}
	if o := origin(n); len(st.wantReqHdr) > 0 || st.wantMethod != "" {
		if o == nil {
			t.Errorf("request %d was not sent to the origin", n)
		} else {
			for _, w := range st.wantReqHdr {
				k, v, hasV := strings.Cut(w, ":")
				got, present := o.header[http.CanonicalHeaderKey(k)]
				switch {
				case !present:
					t.Errorf("request %d reached the origin without %s", n, k)
				case hasV && strings.Join(got, ", ") != strings.TrimSpace(v):
					t.Errorf("request %d: the origin received %s: %q, want %q", n, k, strings.Join(got, ", "), strings.TrimSpace(v))
				}
			}
			if st.wantMethod != "" && o.method != st.wantMethod {
				t.Errorf("request %d: the origin received %s, want %s", n, o.method, st.wantMethod)
			}
		}
	}
	if st.noBody || st.disconnect || resp.StatusCode == 204 || resp.StatusCode == 304 || st.method == http.MethodHead {
		return
	}
	wantB := defBody
	if st.wantBody != nil {
		wantB = *st.wantBody
	} else if st.body != nil {
		wantB = *st.body
	}
	if body != wantB {
		t.Errorf("request %d: body %q, want %q", n, body, wantB)
	}
}

// fresh is the suite's "fresh" template: Expires far ahead, Last-Modified
// and Date now, plus extra fields.
func fresh(extra ...string) []string {
	return append([]string{"Expires: @100000", "Last-Modified: @0", "Date: @0"}, extra...)
}

// stale is the suite's "stale" template: Expires in the past.
func stale(extra ...string) []string {
	return append([]string{"Expires: @-5000", "Last-Modified: @-100000", "Date: @0"}, extra...)
}

// becomeStale is the suite's setup request that is fresh for 2 s and
// stale after its 3 s pause.
func becomeStale(extra ...string) cstep {
	return cstep{respHdr: append([]string{"Cache-Control: max-age=2", "Template-A: 1"}, extra...), pause: true}
}
