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
