package main

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
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
			c, err := net.Dial("tcp", strings.TrimPrefix(ls[0], "http://"))
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
		})
	}
}
