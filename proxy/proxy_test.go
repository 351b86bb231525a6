package proxy

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/cellar-cache/cellar/internal/proxytest"
	"github.com/cellar-cache/cellar/store"
)

func TestFreshResponseIsServedWithoutTheOrigin(t *testing.T) {
	r := newRig(t, func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		w.Header().Set("Content-Type", "text/plain")
		io.WriteString(w, "hello")
	})
	resp, body := r.get("/a")
	if body != "hello" || resp.StatusCode != 200 {
		t.Fatalf("first: %d %q", resp.StatusCode, body)
	}
	if cs := resp.Header.Get("Cache-Status"); !strings.Contains(cs, "fwd=uri-miss") || !strings.Contains(cs, "stored") {
		t.Errorf("first Cache-Status = %q, want fwd=uri-miss and stored", cs)
	}
	r.waitIdle()
	r.clock.advance(5 * time.Second)
	for i := 0; i < 3; i++ {
		resp, body = r.get("/a")
		if body != "hello" {
			t.Fatalf("hit body %q", body)
		}
		if cs := resp.Header.Get("Cache-Status"); !isHit(cs) {
			t.Errorf("hit Cache-Status = %q", cs)
		}
	}
	if age, _ := strconv.Atoi(resp.Header.Get("Age")); age < 5 || age > 6 {
		t.Errorf("Age = %q, want 5 (seconds the clock advanced)", resp.Header.Get("Age"))
	}
	if n := r.origin.hits.Load(); n != 1 {
		t.Errorf("origin hits = %d, want 1", n)
	}
	// A HEAD is answered from the stored GET (§4).
	resp, body = r.do(http.MethodHead, "/a", nil)
	if body != "" || resp.ContentLength != 5 || r.origin.hits.Load() != 1 {
		t.Errorf("HEAD: len %d body %q origin hits %d", resp.ContentLength, body, r.origin.hits.Load())
	}
}

func TestResponsesThatMustNotBeStoredGoToTheOriginEveryTime(t *testing.T) {
	for _, cc := range []string{"no-store", "private", "private, max-age=60", "max-age=60, no-store"} {
		t.Run(cc, func(t *testing.T) {
			r := newRig(t, func(w http.ResponseWriter, _ *http.Request) {
				w.Header().Set("Cache-Control", cc)
				io.WriteString(w, "secret")
			})
			for i := 0; i < 3; i++ {
				resp, body := r.get("/p")
				if body != "secret" {
					t.Fatalf("body %q", body)
				}
				if cs := resp.Header.Get("Cache-Status"); isHit(cs) || strings.Contains(cs, "stored") {
					t.Errorf("Cache-Status = %q for %q", cs, cc)
				}
			}
			if n := r.origin.hits.Load(); n != 3 {
				t.Errorf("origin hits = %d, want 3", n)
			}
		})
	}
}

func TestHopByHopFieldsAreRemovedOnBothLegs(t *testing.T) {
	r := newRig(t, func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Connection", "X-Origin-Hop")
		w.Header().Set("X-Origin-Hop", "1")
		w.Header().Set("Keep-Alive", "timeout=5")
		w.Header().Set("X-End", "kept")
		io.WriteString(w, "ok")
	})
	resp, _ := r.do(http.MethodGet, "/h", http.Header{
		"Connection":          {"X-Client-Hop"},
		"X-Client-Hop":        {"1"},
		"Proxy-Authorization": {"Basic x"},
		"X-End-To-End":        {"kept"},
	})
	in := r.origin.lastRequest()
	for _, f := range []string{"X-Client-Hop", "Proxy-Authorization"} {
		if in.Header.Get(f) != "" {
			t.Errorf("origin received hop-by-hop %s", f)
		}
	}
	if in.Header.Get("X-End-To-End") != "kept" {
		t.Error("origin did not receive an end-to-end field")
	}
	for _, f := range []string{"X-Origin-Hop", "Keep-Alive"} {
		if resp.Header.Get(f) != "" {
			t.Errorf("client received hop-by-hop %s", f)
		}
	}
	if resp.Header.Get("X-End") != "kept" {
		t.Error("client did not receive an end-to-end field")
	}
}

func TestForwardingFields(t *testing.T) {
	r := newRig(t, func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok") },
		withProxyOptions(func(o *Options) { o.TrustedProxies = []string{"127.0.0.1"} }))
	resp, _ := r.do(http.MethodGet, "/f", http.Header{"X-Forwarded-For": {"192.0.2.7"}})
	in := r.origin.lastRequest()
	if got := in.Header.Get("X-Forwarded-For"); got != "192.0.2.7, 127.0.0.1" {
		t.Errorf("X-Forwarded-For = %q", got)
	}
	if got := in.Header.Get("X-Real-IP"); got != "192.0.2.7" {
		t.Errorf("X-Real-IP = %q; want the client behind the trusted proxy", got)
	}
	if got := in.Header.Get("X-Forwarded-Proto"); got != "http" {
		t.Errorf("X-Forwarded-Proto = %q", got)
	}
	if got := in.Header.Get("X-Forwarded-Host"); got != testHost {
		t.Errorf("X-Forwarded-Host = %q, want %q", got, testHost)
	}
	if in.Host != testHost {
		t.Errorf("origin saw Host %q, want the client's %q", in.Host, testHost)
	}
	if got := in.Header.Get("Via"); got != "1.1 cellar" {
		t.Errorf("request Via = %q", got)
	}
	if got := resp.Header.Get("Via"); !strings.Contains(got, "cellar") {
		t.Errorf("response Via = %q", got)
	}
}

func TestHostIsTheOriginsWhenNotPreserved(t *testing.T) {
	f := false
	r := newRig(t, func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok") },
		withProxyOptions(func(o *Options) { o.PreserveHost = &f }))
	r.get("/x")
	if got, want := r.origin.lastRequest().Host, strings.TrimPrefix(r.origin.URL, "http://"); got != want {
		t.Errorf("Host = %q, want %q", got, want)
	}
}

func TestUnreachableOriginAnswers502(t *testing.T) {
	r := newRig(t, func(w http.ResponseWriter, _ *http.Request) {})
	r.origin.Close() // nothing listens there now
	for _, m := range []string{http.MethodGet, http.MethodPost} {
		resp, body := r.do(m, "/down", nil)
		if resp.StatusCode != http.StatusBadGateway || !strings.Contains(body, "could not be reached") {
			t.Errorf("%s: %d %q, want 502", m, resp.StatusCode, body)
		}
	}
}

// TestOriginThatClosesAnswers502AsAnError checks that an origin which
// accepts the connection and closes it without an answer (as the demo
// origin's /big did when it panicked) is not reported as unreachable.
func TestOriginThatClosesAnswers502AsAnError(t *testing.T) {
	r := newRig(t, func(w http.ResponseWriter, _ *http.Request) { panic(http.ErrAbortHandler) })
	resp, body := r.do(http.MethodGet, "/closes", nil)
	if resp.StatusCode != http.StatusBadGateway || strings.Contains(body, "could not be reached") || !strings.Contains(body, "closed the connection") {
		t.Errorf("%d %q, want 502 saying the origin closed the connection", resp.StatusCode, body)
	}
	if cs := resp.Header.Get("Cache-Status"); !strings.Contains(cs, "detail=origin-error") {
		t.Errorf("Cache-Status %q, want detail=origin-error", cs)
	}
}

func TestSlowOriginAnswers504(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	r := newRig(t, func(w http.ResponseWriter, req *http.Request) {
		select {
		case <-release:
		case <-req.Context().Done():
		}
	}, withProxyOptions(func(o *Options) { o.ResponseTimeout = 100 * time.Millisecond }))
	for _, m := range []string{http.MethodGet, http.MethodPost} {
		resp, body := r.do(m, "/slow", nil)
		if resp.StatusCode != http.StatusGatewayTimeout || !strings.Contains(body, "in time") {
			t.Errorf("%s: %d %q, want 504", m, resp.StatusCode, body)
		}
	}
}

func TestBodyLargerThanMemoryBudgetStreams(t *testing.T) {
	const size = 24 << 20 // three times the rig's memory budget
	chunk := bytes.Repeat([]byte("0123456789abcdef"), 4096)
	sum := sha256.New()
	for n := 0; n < size; n += len(chunk) {
		sum.Write(chunk)
	}
	want := sum.Sum(nil)
	r := newRig(t, func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		w.Header().Set("Content-Length", strconv.Itoa(size))
		for n := 0; n < size; n += len(chunk) {
			if _, err := w.Write(chunk); err != nil {
				return
			}
		}
	}, withStoreOptions(func(o *store.Options) { o.DiskBytes = 256 << 20 })) // room for a 24 MiB object (MaxObject defaults to a quarter of the disk budget)
	for i := 0; i < 2; i++ {
		req, _ := http.NewRequest(http.MethodGet, r.front.URL+"/big", nil)
		req.Host = testHost
		resp, err := r.front.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		h := sha256.New()
		n, err := io.Copy(h, resp.Body)
		resp.Body.Close()
		if err != nil || n != size || !bytes.Equal(h.Sum(nil), want) {
			t.Fatalf("round %d: %d bytes, err %v, digest match %v", i, n, err, bytes.Equal(h.Sum(nil), want))
		}
		r.waitIdle()
	}
	if n := r.origin.hits.Load(); n != 1 {
		t.Errorf("origin hits = %d, want 1 (second answer from disk)", n)
	}
}

func TestOriginResetMidBodyAbortsClientAndStoresNothing(t *testing.T) {
	r := newRig(t, func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		w.Header().Set("Content-Length", "100000")
		io.WriteString(w, strings.Repeat("x", 1000))
		w.(http.Flusher).Flush()
		conn, _, err := http.NewResponseController(w).Hijack()
		if err == nil {
			conn.(*net.TCPConn).SetLinger(0)
			conn.Close() // RST mid-body
		}
	})
	req, _ := http.NewRequest(http.MethodGet, r.front.URL+"/reset", nil)
	req.Host = testHost
	resp, err := r.front.Client().Do(req)
	if err == nil {
		_, err = io.ReadAll(resp.Body)
		resp.Body.Close()
	}
	// A 502 is right too when none of the body had reached the client when
	// the fill failed: detail=origin-closed when the reset came after the
	// header, origin-error when it overtook the header (a reset discards what
	// the proxy had not yet read).
	cs := ""
	if err == nil {
		cs = resp.Header.Get("Cache-Status")
	}
	if err == nil && (resp.StatusCode != http.StatusBadGateway || !(hasParam(cs, "detail=origin-closed") || hasParam(cs, "detail=origin-error"))) {
		t.Fatalf("client read a complete %d response from an origin that reset mid-body", resp.StatusCode)
	}
	r.waitIdle()
	if _, err := r.store.Get(t.Context(), "http://"+testHost+"/reset"); err != store.ErrNotFound {
		t.Errorf("store.Get after reset = %v, want ErrNotFound", err)
	}
	r.origin.setHandler(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "whole") })
	if _, body := r.get("/reset"); body != "whole" {
		t.Errorf("after reset, body %q", body)
	}
}

func TestRestartServesWhatWasStored(t *testing.T) {
	r := newRig(t, func(w http.ResponseWriter, req *http.Request) {
		w.Header().Set("Cache-Control", "max-age=3600")
		fmt.Fprintf(w, "stored %s", req.URL.Path)
	})
	r.get("/one")
	r.get("/two")
	r.waitIdle()
	r.restart()
	for _, p := range []string{"/one", "/two"} {
		resp, body := r.get(p)
		if body != "stored "+p || !isHit(resp.Header.Get("Cache-Status")) {
			t.Errorf("%s after restart: %q, %q", p, body, resp.Header.Get("Cache-Status"))
		}
	}
	if n := r.origin.hits.Load(); n != 2 {
		t.Errorf("origin hits = %d, want 2", n)
	}
}

func TestRequestBodyStreamsToOrigin(t *testing.T) {
	r := newRig(t, func(w http.ResponseWriter, req *http.Request) {
		n, _ := io.Copy(io.Discard, req.Body)
		fmt.Fprintf(w, "%d %s", n, req.Method)
	})
	pr, pw := io.Pipe()
	go func() {
		bw := bufio.NewWriter(pw)
		for i := 0; i < 1024; i++ {
			bw.Write(bytes.Repeat([]byte("y"), 1024))
		}
		bw.Flush()
		pw.Close()
	}()
	req, _ := http.NewRequest(http.MethodPut, r.front.URL+"/upload", pr)
	resp, err := r.front.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "1048576 PUT" {
		t.Errorf("origin answered %q", b)
	}
	if cs := resp.Header.Get("Cache-Status"); !strings.Contains(cs, "fwd=method") {
		t.Errorf("Cache-Status = %q", cs)
	}
}

func TestHeadMissFillsTheStoredGet(t *testing.T) {
	r := newRig(t, func(w http.ResponseWriter, req *http.Request) {
		if req.Method != http.MethodGet {
			t.Errorf("fill used %s, want GET", req.Method)
		}
		w.Header().Set("Cache-Control", "max-age=60")
		io.WriteString(w, "body of the GET")
	})
	resp, body := r.do(http.MethodHead, "/h", nil)
	if body != "" || resp.StatusCode != 200 {
		t.Fatalf("HEAD: %d %q", resp.StatusCode, body)
	}
	r.waitIdle()
	resp, body = r.get("/h")
	if body != "body of the GET" || !isHit(resp.Header.Get("Cache-Status")) {
		t.Errorf("GET after HEAD: %q %q", body, resp.Header.Get("Cache-Status"))
	}
	if n := r.origin.hits.Load(); n != 1 {
		t.Errorf("origin hits = %d, want 1", n)
	}
}

// TestRequestsByOutcome checks cellar_requests_total's outcomes against its
// help text: a response that may not be shared (no-store, private) is a
// pass, as is a request for a key marked hit-for-miss; a stored fill is a
// miss and its repetition a hit.
func TestRequestsByOutcome(t *testing.T) {
	r := newRig(t, func(w http.ResponseWriter, req *http.Request) {
		switch req.URL.Path {
		case "/nostore":
			w.Header().Set("Cache-Control", "no-store")
		case "/private":
			w.Header().Set("Cache-Control", "private, max-age=60")
		default:
			w.Header().Set("Cache-Control", "max-age=60")
		}
		io.WriteString(w, "body")
	})
	for _, p := range []string{"/nostore", "/private", "/nostore", "/stored", "/stored"} {
		if resp, _ := r.do(http.MethodGet, p, nil); resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: %d", p, resp.StatusCode)
		}
	}
	r.do(http.MethodPost, "/form", nil)
	m := r.server.metrics
	for _, tc := range []struct {
		outcome string
		want    float64
	}{{"pass", 4}, {"miss", 1}, {"hit", 1}, {"stale", 0}} {
		if got := testutil.ToFloat64(m.requests.WithLabelValues(tc.outcome)); got != tc.want {
			t.Errorf("cellar_requests_total{outcome=%q} = %v, want %v", tc.outcome, got, tc.want)
		}
	}
}

// TestStoreWorkCancelledByCloseIsNotAnError checks that a store operation
// that Close cancelled (a variant write in progress at SIGINT) is neither
// logged as a warning nor counted as a store error, while the same error
// before Close is.
func TestStoreWorkCancelledByCloseIsNotAnError(t *testing.T) {
	var logs proxytest.SyncBuffer
	r := newRig(t, func(w http.ResponseWriter, _ *http.Request) {},
		withProxyOptions(func(o *Options) { o.Logger = slog.New(slog.NewTextHandler(&logs, nil)) }))
	r.server.storeError("commit", "k1", fmt.Errorf("writing: %w", context.Canceled))
	r.stop()
	r.server.storeError("commit", "k2", fmt.Errorf("writing: %w", context.Canceled))
	if out := logs.String(); !strings.Contains(out, "key=k1") || strings.Contains(out, "key=k2") {
		t.Errorf("logs:\n%s\nwant a warning for k1 (before Close) and none for k2 (after)", out)
	}
	if n := testutil.ToFloat64(r.server.metrics.storeErrors); n != 1 {
		t.Errorf("store_errors_total = %v, want 1", n)
	}
}

// TestForwardingFieldsFromAnUntrustedPeer: a client that is not a trusted
// proxy cannot pass on a forged X-Forwarded-For or X-Real-IP.
func TestForwardingFieldsFromAnUntrustedPeer(t *testing.T) {
	r := newRig(t, func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok") },
		withProxyOptions(func(o *Options) { o.TrustedProxies = []string{"10.0.0.0/8"} }))
	r.do(http.MethodPost, "/u", http.Header{"X-Forwarded-For": {"192.0.2.7"}, "X-Real-IP": {"192.0.2.7"}})
	in := r.origin.lastRequest()
	if got, got2 := in.Header.Get("X-Forwarded-For"), in.Header.Get("X-Real-IP"); got != "127.0.0.1" || got2 != "127.0.0.1" {
		t.Errorf("X-Forwarded-For = %q, X-Real-IP = %q; want the peer, 127.0.0.1", got, got2)
	}
}
