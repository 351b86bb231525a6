package proxy

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cellar-cache/cellar/cache"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// rawExchange writes raw to a new connection to the rig's proxy and reads
// one response (body included). The connection is returned open.
func rawExchange(t *testing.T, r *rig, raw string) (*http.Response, string, net.Conn) {
	t.Helper()
	c, err := net.Dial("tcp", r.front.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("reading the response: %v", err)
	}
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b), &bufConn{Conn: c, r: br}
}

// bufConn keeps the bytes a bufio.Reader read ahead.
type bufConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *bufConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// closedByServer reports whether the server closed c (a read gets EOF or a
// reset rather than timing out).
func closedByServer(c net.Conn) bool {
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, err := c.Read(make([]byte, 1))
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		return false
	}
	return err != nil
}

// waitLong polls cond until it holds, failing after a bound generous
// enough for a loaded machine (20 s).
func waitLong(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func okOrigin(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "max-age=60")
	io.WriteString(w, "hello "+r.URL.Path)
}

func TestLimitsRefuseOversizedRequests(t *testing.T) {
	r := newRig(t, okOrigin, withProxyOptions(func(o *Options) { o.Limits.MaxBody = 1000 }))
	req := func(target, fields string) string {
		return "GET " + target + " HTTP/1.1\r\nHost: " + testHost + "\r\n" + fields + "\r\n"
	}
	many := strings.Repeat("X-A: 1\r\n", 101)
	for _, tc := range []struct {
		name string
		raw  string
		want int
	}{
		{"header of 60 KiB passes", req("/a", "X-Big: "+strings.Repeat("a", 60<<10)+"\r\n"), 200},
		{"header of 70 KiB is 431", req("/a", "X-Big: "+strings.Repeat("a", 70<<10)+"\r\n"), 431},
		{"target of 8000 bytes passes", req("/"+strings.Repeat("t", 8000), ""), 200},
		{"target of 9000 bytes is 414", req("/"+strings.Repeat("t", 9000), ""), 414},
		{"100 header fields pass", req("/a", strings.Repeat("X-A: 1\r\n", 98)), 200},
		{"101 header fields are 431", req("/a", many), 431},
		{"declared body over max_body is 413", "POST /a HTTP/1.1\r\nHost: " + testHost + "\r\nContent-Length: 1001\r\n\r\n" + strings.Repeat("b", 1001), 413},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, _, c := rawExchange(t, r, tc.raw)
			if resp.StatusCode != tc.want {
				t.Fatalf("status %d, want %d", resp.StatusCode, tc.want)
			}
			if tc.want != 200 && !closedByServer(c) {
				t.Errorf("connection kept open after %d", tc.want)
			}
		})
	}
}

func TestChunkedBodyOverMaxBodyIs413(t *testing.T) {
	r := newRig(t, func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		io.WriteString(w, "took it")
	}, withProxyOptions(func(o *Options) { o.Limits.MaxBody = 1000 }))
	body := fmt.Sprintf("%x\r\n%s\r\n0\r\n\r\n", 2000, strings.Repeat("b", 2000))
	resp, _, _ := rawExchange(t, r, "POST /up HTTP/1.1\r\nHost: "+testHost+"\r\nTransfer-Encoding: chunked\r\n\r\n"+body)
	if resp.StatusCode != 413 {
		t.Fatalf("status %d, want 413", resp.StatusCode)
	}
	// Under the limit, the same upload goes through.
	body = fmt.Sprintf("%x\r\n%s\r\n0\r\n\r\n", 900, strings.Repeat("b", 900))
	resp, got, _ := rawExchange(t, r, "POST /up HTTP/1.1\r\nHost: "+testHost+"\r\nTransfer-Encoding: chunked\r\n\r\n"+body)
	if resp.StatusCode != 200 || got != "took it" {
		t.Fatalf("status %d %q, want 200", resp.StatusCode, got)
	}
}

func TestMalformedChunkedBodyIs400AndCloses(t *testing.T) {
	r := newRig(t, func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		io.WriteString(w, "took it")
	})
	resp, _, c := rawExchange(t, r, "POST /up HTTP/1.1\r\nHost: "+testHost+"\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n")
	if resp.StatusCode != 400 {
		t.Fatalf("status %d, want 400 (the client's body is malformed, not the origin)", resp.StatusCode)
	}
	if !closedByServer(c) {
		t.Error("connection kept open after a malformed body")
	}
	if n := testutil.ToFloat64(r.server.metrics.upstreamErrors); n != 0 {
		t.Errorf("origin errors = %v, want 0", n)
	}
}

func TestClientBodyTimeoutIs408(t *testing.T) {
	r := newRig(t, func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		io.WriteString(w, "took it")
	}, withProxyOptions(func(o *Options) { o.ClientBodyTimeout = 300 * time.Millisecond }))
	// 10 of 100 bytes, then nothing.
	resp, _, _ := rawExchange(t, r, "POST /up HTTP/1.1\r\nHost: "+testHost+"\r\nContent-Length: 100\r\n\r\n0123456789")
	if resp.StatusCode != 408 {
		t.Fatalf("status %d, want 408", resp.StatusCode)
	}
}

func TestClientBodyTimeoutSparesASlowSteadyUpload(t *testing.T) {
	// Gaps a fifth of the timeout, so that a loaded machine's late
	// wake-ups do not add up to a stall; 3 s in all, over 2 timeouts.
	const timeout, gap = 1500 * time.Millisecond, 300 * time.Millisecond
	r := newRig(t, func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		io.WriteString(w, "took it")
	}, withProxyOptions(func(o *Options) { o.ClientBodyTimeout = timeout }))
	c, err := net.Dial("tcp", r.front.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "POST /up HTTP/1.1\r\nHost: %s\r\nContent-Length: 10\r\n\r\n", testHost)
	for i := range 10 {
		time.Sleep(gap)
		fmt.Fprint(c, i)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("slow but steady upload: %v %v, want 200", resp, err)
	}
}

func TestWriteTimeoutClosesAClientThatStopsReading(t *testing.T) {
	chunk := strings.Repeat("x", 64<<10)
	r := newRig(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		for range 1024 { // 64 MiB, far more than the socket buffers
			if _, err := io.WriteString(w, chunk); err != nil {
				return
			}
		}
	}, withProxyOptions(func(o *Options) { o.WriteTimeout = 300 * time.Millisecond }))
	c, err := net.Dial("tcp", r.front.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "GET /big HTTP/1.1\r\nHost: %s\r\n\r\n", testHost)
	// The request reaching the origin means the proxy has accepted and
	// counted the connection; only then does an open count of 0 mean it
	// was closed (on a loaded machine the accept can come late).
	waitLong(t, "the request to reach the origin", func() bool { return r.origin.hits.Load() == 1 })
	waitLong(t, "the proxy to close the connection of a client that does not read", func() bool {
		return testutil.ToFloat64(r.server.metrics.connsOpen) == 0
	})
	c.SetReadDeadline(time.Now().Add(20 * time.Second)) // a kept-alive connection would block io.Copy
	n, _ := io.Copy(io.Discard, c)
	if n >= 64<<20 {
		t.Errorf("read %d bytes: the whole body, so the connection was not cut", n)
	}
}

func TestMaxConnsRefusesTheConnectionBeyondIt(t *testing.T) {
	r := newRig(t, okOrigin, withProxyOptions(func(o *Options) { o.Limits.MaxConns = 2 }))
	get := "GET /a HTTP/1.1\r\nHost: " + testHost + "\r\n\r\n"
	_, _, c1 := rawExchange(t, r, get)
	_, _, _ = rawExchange(t, r, get)
	c3, err := net.Dial("tcp", r.front.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c3.Close()
	io.WriteString(c3, get)
	if !closedByServer(c3) {
		t.Fatal("third connection served with max_conns 2")
	}
	if n := testutil.ToFloat64(r.server.metrics.connsRefused); n != 1 {
		t.Errorf("connections_refused_total = %v, want 1", n)
	}
	if n := testutil.ToFloat64(r.server.metrics.connsOpen); n != 2 {
		t.Errorf("client_connections = %v, want 2", n)
	}
	c1.Close()
	waitLong(t, "a slot to free up", func() bool { return testutil.ToFloat64(r.server.metrics.connsOpen) == 1 })
	if resp, _, _ := rawExchange(t, r, get); resp.StatusCode != 200 {
		t.Errorf("after a close: status %d", resp.StatusCode)
	}
}

func TestTooManyRangesGetTheWholeRepresentation(t *testing.T) {
	body := strings.Repeat("0123456789", 10_000)
	r := newRig(t, func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		io.WriteString(w, body)
	})
	r.get("/obj")
	r.waitIdle()
	var many []string
	for i := range 3_000 {
		many = append(many, fmt.Sprintf("%d-%d", i*10, i*10))
	}
	resp, got := r.do("GET", "/obj", http.Header{"Range": {"bytes=" + strings.Join(many, ",")}})
	if resp.StatusCode != 200 || len(got) != len(body) {
		t.Fatalf("3,000 ranges: status %d, %d bytes; want 200 and the %d-byte body", resp.StatusCode, len(got), len(body))
	}
	resp, _ = r.do("GET", "/obj", http.Header{"Range": {"bytes=0-0,10-10,20-20"}})
	if resp.StatusCode != 206 {
		t.Fatalf("3 ranges: status %d, want 206", resp.StatusCode)
	}
}

func TestLongKeysAreNeverStored(t *testing.T) {
	r := newRig(t, okOrigin, withProxyOptions(func(o *Options) { o.Limits.MaxTarget = 200 }))
	host := strings.Repeat("h", 150) + ".test"
	path := "/" + strings.Repeat("p", 100)
	for range 2 {
		resp, _ := proxyGet(t, r, host, path)
		if isHit(resp.Header.Get("Cache-Status")) {
			t.Fatal("a key longer than the target limit was stored")
		}
	}
	if n := r.origin.hits.Load(); n != 2 {
		t.Errorf("origin saw %d requests, want 2", n)
	}
}

func proxyGet(t *testing.T, r *rig, host, path string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", r.front.URL+path, nil)
	req.Host = host
	resp, err := r.front.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func TestHostIsNormalisedForKeyAndOrigin(t *testing.T) {
	r := newRig(t, okOrigin)
	resp, _ := proxyGet(t, r, "CELLAR.Test:80", "/h")
	if resp.StatusCode != 200 {
		t.Fatal(resp.Status)
	}
	if h := r.origin.lastRequest().Host; h != testHost {
		t.Errorf("origin saw Host %q, want %q (the key's host)", h, testHost)
	}
	r.waitIdle()
	if resp, _ := proxyGet(t, r, testHost, "/h"); !isHit(resp.Header.Get("Cache-Status")) {
		t.Errorf("%q after CELLAR.Test:80 was not a hit: %s", testHost, resp.Header.Get("Cache-Status"))
	}
}

func TestFillsAddNoUserAgent(t *testing.T) {
	r := newRig(t, okOrigin)
	for _, path := range []string{"/fill", "/pass"} {
		method := "GET"
		if path == "/pass" {
			method = "DELETE"
		}
		// An empty User-Agent makes the Go client send none.
		r.do(method, path, http.Header{"User-Agent": {""}})
		if ua, ok := r.origin.lastRequest().Header["User-Agent"]; ok {
			t.Errorf("%s %s: origin got User-Agent %q, the client sent none", method, path, ua)
		}
	}
	r.do("GET", "/fill2", http.Header{"User-Agent": {"curl/8"}})
	if ua := r.origin.lastRequest().Header.Get("User-Agent"); ua != "curl/8" {
		t.Errorf("origin got User-Agent %q, want the client's", ua)
	}
}

func TestRateLimitPerClient(t *testing.T) {
	r := newRig(t, okOrigin, withProxyOptions(func(o *Options) {
		o.Limits.Rate = RateLimit{PerSecond: 1, Burst: 2}
		o.TrustedProxies = []string{"127.0.0.1"}
	}))
	from := func(client string) *http.Response {
		resp, _ := r.do("GET", "/r", http.Header{"X-Forwarded-For": {client}})
		return resp
	}
	for i := range 2 {
		if resp := from("198.51.100.1"); resp.StatusCode != 200 {
			t.Fatalf("request %d within the burst: %d", i, resp.StatusCode)
		}
	}
	resp := from("198.51.100.1")
	if resp.StatusCode != 429 {
		t.Fatalf("third request: %d, want 429", resp.StatusCode)
	}
	if ra, _ := strconv.Atoi(resp.Header.Get("Retry-After")); ra < 1 {
		t.Errorf("Retry-After %q, want a number of seconds", resp.Header.Get("Retry-After"))
	}
	if resp := from("198.51.100.2"); resp.StatusCode != 200 {
		t.Errorf("another client: %d, want 200", resp.StatusCode)
	}
	if n := testutil.ToFloat64(r.server.metrics.rateLimited); n != 1 {
		t.Errorf("rate_limited_total = %v, want 1", n)
	}
	r.clock.advance(time.Second)
	if resp := from("198.51.100.1"); resp.StatusCode != 200 {
		t.Errorf("after a second: %d, want 200", resp.StatusCode)
	}
}

func TestSiteRateLimitReplacesTheGlobalOne(t *testing.T) {
	r := newRig(t, okOrigin)
	r.stop()
	r.popts.Limits.Rate = RateLimit{PerSecond: 100}
	r.popts.Sites = []Site{{PathPrefix: "/slow/", Origins: []string{r.origin.URL}, Rate: &RateLimit{PerSecond: 1, Burst: 1}}}
	r.start()
	if resp, _ := r.get("/slow/a"); resp.StatusCode != 200 {
		t.Fatal(resp.Status)
	}
	if resp, _ := r.get("/slow/a"); resp.StatusCode != 429 {
		t.Errorf("second request to the site: %d, want 429", resp.StatusCode)
	}
	if resp, _ := r.get("/fast"); resp.StatusCode != 200 {
		t.Errorf("outside the site: %d, want 200", resp.StatusCode)
	}
}

func TestResponseHeaderEditsOnEveryResponse(t *testing.T) {
	r := newRig(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Powered-By", "php")
		w.Header().Set("X-Frame-Options", "ALLOW")
		if r.URL.Path == "/nostore" {
			w.Header().Set("Cache-Control", "no-store")
		} else {
			w.Header().Set("Cache-Control", "max-age=60")
		}
		io.WriteString(w, "body")
	}, withProxyOptions(func(o *Options) {
		o.ResponseHeaders = HeaderOps{
			Set:    map[string]string{"Strict-Transport-Security": "max-age=63072000", "X-Frame-Options": "DENY"},
			Add:    map[string]string{"X-Content-Type-Options": "nosniff"},
			Remove: []string{"x-powered-by"},
		}
		o.Limits.MaxTarget = 100
	}))
	check := func(name string, resp *http.Response) {
		t.Helper()
		h := resp.Header
		if h.Get("Strict-Transport-Security") != "max-age=63072000" || h.Get("X-Frame-Options") != "DENY" ||
			h.Get("X-Content-Type-Options") != "nosniff" || h.Get("X-Powered-By") != "" {
			t.Errorf("%s (%d): header %v", name, resp.StatusCode, h)
		}
	}
	resp, _ := r.get("/c")
	check("miss", resp)
	r.waitIdle()
	resp, _ = r.get("/c")
	if !isHit(resp.Header.Get("Cache-Status")) {
		t.Fatal("not a hit")
	}
	check("hit", resp)
	resp, _ = r.get("/nostore")
	check("uncacheable", resp)
	resp, _ = r.do("POST", "/p", nil)
	check("pass", resp)
	resp, _ = r.get("/" + strings.Repeat("l", 200))
	if resp.StatusCode != 414 {
		t.Fatalf("long target: %d", resp.StatusCode)
	}
	check("414", resp)
}

func TestSiteResponseHeadersApplyAfterGlobalOnes(t *testing.T) {
	r := newRig(t, okOrigin)
	r.stop()
	r.popts.ResponseHeaders = HeaderOps{Set: map[string]string{"X-Frame-Options": "DENY"}}
	r.popts.Sites = []Site{{PathPrefix: "/embed/", Origins: []string{r.origin.URL}, ResponseHeaders: HeaderOps{Remove: []string{"X-Frame-Options"}}}}
	r.start()
	if resp, _ := r.get("/embed/x"); resp.Header.Get("X-Frame-Options") != "" {
		t.Errorf("site that removes X-Frame-Options: got %q", resp.Header.Get("X-Frame-Options"))
	}
	if resp, _ := r.get("/other"); resp.Header.Get("X-Frame-Options") != "DENY" {
		t.Errorf("elsewhere: X-Frame-Options %q, want DENY", resp.Header.Get("X-Frame-Options"))
	}
}

// TestPersonalResponses is the reproduction: alice's request with
// Cookie gets a response with Set-Cookie and max-age (or only
// Last-Modified); under the default (cache.PersonalSafe) bob never gets
// alice's body, and under PersonalRFC it is stored as RFC 9111 allows.
func TestPersonalResponses(t *testing.T) {
	old := httpDate(time.Now().Add(-240 * time.Hour))
	for _, tc := range []struct {
		name   string
		rfc    bool
		cookie bool     // alice's request carries Cookie
		hdr    []string // the origin's fields besides Set-Cookie
		setCk  bool
		shared bool
	}{
		{"safe/cookie+set-cookie+max-age", false, true, []string{"Cache-Control: max-age=600"}, true, false},
		{"safe/cookie+heuristic", false, true, []string{"Last-Modified: " + old}, false, false},
		{"safe/set-cookie+max-age", false, false, []string{"Cache-Control: max-age=600"}, true, false},
		{"safe/cookie+public", false, true, []string{"Cache-Control: public, max-age=600"}, false, true},
		{"safe/cookie+s-maxage+set-cookie", false, true, []string{"Cache-Control: s-maxage=600"}, true, true},
		{"safe/cookie+cdn-cache-control", false, true, []string{"CDN-Cache-Control: max-age=600"}, false, true},
		{"safe/no cookie at all", false, false, []string{"Cache-Control: max-age=600"}, false, true},
		{"rfc/cookie+set-cookie+max-age", true, true, []string{"Cache-Control: max-age=600"}, true, true},
		{"rfc/cookie+heuristic", true, true, []string{"Last-Modified: " + old}, false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t, func(w http.ResponseWriter, req *http.Request) {
				for _, l := range tc.hdr {
					k, v, _ := strings.Cut(l, ":")
					w.Header().Set(k, strings.TrimSpace(v))
				}
				if tc.setCk {
					w.Header().Set("Set-Cookie", "last="+strings.TrimPrefix(req.Header.Get("Cookie"), "sid="))
				}
				io.WriteString(w, "page for "+req.Header.Get("Cookie"))
			}, withCacheOptions(func(o *cache.Options) {
				if tc.rfc {
					o.Personal = cache.PersonalRFC
				}
			}))
			var h http.Header
			if tc.cookie {
				h = http.Header{"Cookie": {"sid=alice"}}
			}
			r.do("GET", "/me", h)
			r.waitIdle()
			resp, body := r.do("GET", "/me", http.Header{"Cookie": {"sid=bob"}})
			shared := isHit(resp.Header.Get("Cache-Status"))
			if shared != tc.shared {
				t.Errorf("bob got %q (%s): shared=%v, want %v", body, resp.Header.Get("Cache-Status"), shared, tc.shared)
			}
			if !tc.shared && strings.Contains(body, "alice") {
				t.Errorf("bob got alice's body %q", body)
			}
			if resp.Header.Get("Set-Cookie") == "last=alice" {
				t.Error("bob got alice's Set-Cookie")
			}
		})
	}
}

// Over TLS with HTTP/2 the client body timeout holds too (per stream).
func TestClientBodyTimeoutOverHTTP2(t *testing.T) {
	r := newRig(t, func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		io.WriteString(w, "took it")
	}, withProxyOptions(func(o *Options) { o.ClientBodyTimeout = 300 * time.Millisecond }))
	front := httptest.NewUnstartedServer(r.server)
	r.server.ConfigureHTTPServer(front.Config)
	front.Listener = r.server.Listener(front.Listener)
	front.EnableHTTP2 = true
	front.StartTLS()
	defer front.Close()
	pr, pw := io.Pipe()
	defer pw.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "POST", front.URL+"/up", pr)
	req.Host = testHost
	go pw.Write([]byte("0123456789")) // then nothing
	resp, err := front.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.ProtoMajor != 2 || resp.StatusCode != http.StatusRequestTimeout {
		t.Fatalf("%s %d, want HTTP/2 408", resp.Proto, resp.StatusCode)
	}
}
