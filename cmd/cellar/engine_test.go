package main

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"
)

// TestServeEngineSwitch: plain listeners are served by cellar's HTTP/1.x
// engine unless server.engine is net/http. The engines differ on a
// request with a repeated Content-Length: net/http merges identical
// values, cellar's engine refuses it (400) as a smuggling risk.
func TestServeEngineSwitch(t *testing.T) {
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "from the origin")
	}))
	defer origin.Close()
	for _, tc := range []struct {
		config string
		want   int
	}{
		{"", http.StatusBadRequest},
		{"server:\n  engine: cellar\n", http.StatusBadRequest},
		{"server:\n  engine: net/http\n", http.StatusOK},
	} {
		t.Run(tc.config, func(t *testing.T) {
			ls := startServeConfig(t, "listen: 127.0.0.1:0\norigin: "+origin.URL+"\naccess_log: false\n"+tc.config)
			addr := strings.TrimPrefix(ls[0], "http://")
			// Both serve a plain request.
			if resp, body := get(t, ls[0]+"/x"); resp.StatusCode != 200 || body != "from the origin" {
				t.Fatalf("GET: %d %q", resp.StatusCode, body)
			}
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(20 * time.Second))
			io.WriteString(c, "GET /y HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 1\r\nConnection: close\r\n\r\nz")
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.want {
				t.Errorf("repeated Content-Length: %d, want %d", resp.StatusCode, tc.want)
			}
		})
	}
}

// TestBothFramingsAre400AndCloseOnEitherEngine: a request with both
// Content-Length and Transfer-Encoding (RFC 9112 §6.1, a smuggling risk)
// is answered 400 and ends the connection on a plain listener of either
// engine: cellar's engine refuses it itself (the proxy's listener then
// follows no framing), net/http's is refused by the proxy's framing
// tracker.
func TestBothFramingsAre400AndCloseOnEitherEngine(t *testing.T) {
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		io.WriteString(w, "from the origin")
	}))
	defer origin.Close()
	for _, engine := range []string{"cellar", "net/http"} {
		t.Run(strings.ReplaceAll(engine, "/", ""), func(t *testing.T) {
			ls := startServeConfig(t, "listen: 127.0.0.1:0\norigin: "+origin.URL+"\naccess_log: false\nserver:\n  engine: "+engine+"\n")
			smuggleRefused(t, strings.TrimPrefix(ls[0], "http://"))
		})
	}
}

// smuggleRefused sends a request, one with both framings and another,
// pipelined on one connection to addr, and checks the answers: 200, then
// 400, then the connection closed.
func smuggleRefused(t *testing.T, addr string) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	io.WriteString(c, "GET /first HTTP/1.1\r\nHost: a\r\n\r\n"+
		"POST /smuggle HTTP/1.1\r\nHost: a\r\nContent-Length: 40\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"+
		"GET /next HTTP/1.1\r\nHost: a\r\n\r\n")
	br := bufio.NewReader(c)
	for i, want := range []int{200, 400} {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("response %d: %v", i+1, err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Fatalf("response %d: status %d, want %d", i+1, resp.StatusCode, want)
		}
	}
	if resp, err := http.ReadResponse(br, nil); err == nil {
		t.Fatalf("the connection stayed open: a response %d to the next pipelined request", resp.StatusCode)
	}
}

// TestBothFramingsAre400AfterAReloadThatKeepsTheListeners: a reload that
// keeps a listener keeps it wrapped by the proxy Server before it, while
// the new Server serves its requests; with net/http's engine, which does
// not refuse both framings itself, the new Server must still find the
// connections' framing (framedConns counts every Server's connections).
func TestBothFramingsAre400AfterAReloadThatKeepsTheListeners(t *testing.T) {
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		io.WriteString(w, "from the origin")
	}))
	defer origin.Close()
	dir := t.TempDir()
	base := "origin: " + origin.URL + "\naccess_log: false\nlisteners:\n  - address: 127.0.0.1:0\nserver:\n  engine: net/http\n"
	cfg := writeConfig(t, base)
	r, err := startServeNoListen(t, "-config", cfg, "-admin", "127.0.0.1:0", "-data-dir", dir)
	if err != nil {
		t.Fatal(err)
	}
	smuggleRefused(t, r.proxy)
	// Another rule, the same listener: the reload keeps its socket.
	if err := os.WriteFile(cfg, []byte(base+"cache:\n  rules:\n    - prefix: /static/\n      ttl: 1h\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var out, errb strings.Builder
	if err := run(context.Background(), []string{"reload", "-admin", r.admin, "-data-dir", dir}, &out, &errb); err != nil {
		t.Fatalf("reload: %v\n%s", err, errb.String())
	}
	// The old set may still accept a connection or two until it has shut
	// down; every connection must be refused either way.
	for range 5 {
		smuggleRefused(t, r.proxy)
	}
}
