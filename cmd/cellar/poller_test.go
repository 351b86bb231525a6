package main

import (
	"bufio"
	"context"
	"io"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"
)

// TestServePoller: by default (on Linux) the proxy's keep-alive
// connections wait for their next request on cellar's own epoll poller,
// which the start's log line and the cellar_poller_connections gauge show;
// `server: {poller: false}` turns it off. Either way they are served as
// before: one request at a time, pipelined, and closed when asked.
func TestServePoller(t *testing.T) {
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		io.WriteString(w, "body of "+r.URL.Path)
	}))
	defer origin.Close()
	for _, tc := range []struct {
		name   string
		config string
		on     bool
	}{
		{"default", "", runtime.GOOS == "linux"},
		{"off", "server:\n  poller: false\n", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := startServe(t, "-origin", origin.URL, "-access-log=false", "-data-dir", t.TempDir(),
				"-config", writeConfig(t, "# serve's flags say the rest\n"+tc.config))
			if err != nil {
				t.Fatal(err)
			}
			want := "poller=off"
			if tc.on {
				want = "poller=on"
			}
			if !strings.Contains(r.log.String(), want) {
				t.Errorf("the log does not say %s:\n%s", want, r.log)
			}
			c, err := net.Dial("tcp", r.proxy)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(30 * time.Second))
			br := bufio.NewReader(c)
			read := func(path string) {
				t.Helper()
				resp, err := http.ReadResponse(br, nil)
				if err != nil {
					t.Fatal(err)
				}
				b, _ := io.ReadAll(resp.Body)
				if resp.StatusCode != 200 || string(b) != "body of "+path {
					t.Fatalf("%s: %d %q", path, resp.StatusCode, b)
				}
			}
			// One at a time (a miss, then hits), each after the connection
			// waited.
			for range 3 {
				io.WriteString(c, "GET /a HTTP/1.1\r\nHost: h\r\n\r\n")
				read("/a")
			}
			// The connection is idle: registered with the poller if on.
			wantConns := 0.0
			if tc.on {
				wantConns = 1
			}
			if _, m := get(t, "http://"+r.admin+"/metrics"); metricValue(m, "cellar_poller_connections") != wantConns {
				t.Errorf("cellar_poller_connections = %v, want %v", metricValue(m, "cellar_poller_connections"), wantConns)
			}
			// Pipelined.
			io.WriteString(c, "GET /a HTTP/1.1\r\nHost: h\r\n\r\nGET /b HTTP/1.1\r\nHost: h\r\n\r\n")
			read("/a")
			read("/b")
			io.WriteString(c, "GET /b HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
			read("/b")
			if _, err := br.ReadByte(); err != io.EOF {
				t.Errorf("after Connection: close: %v, want EOF", err)
			}
		})
	}
}

// TestReloadSwitchesThePoller: a reload that turns server.poller off opens
// a new listener set on the same socket; the old set closes the
// connection that waited on its poller and stops the poller's goroutines;
// turned on again, the next set has a poller of its own.
func TestReloadSwitchesThePoller(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the poller needs epoll")
	}
	a := namedOrigin(t, "A", nil, nil)
	dir := t.TempDir()
	base := "origin: " + a.URL + "\nlisteners:\n  - address: 127.0.0.1:0\n"
	cfg := writeConfig(t, base)
	others := pollerLoops() // not this server's
	r, err := startServeNoListen(t, "-config", cfg, "-admin", "127.0.0.1:0", "-data-dir", dir)
	if err != nil {
		t.Fatal(err)
	}
	// idle opens a connection, makes one request and leaves it waiting.
	idle := func() *bufio.Reader {
		t.Helper()
		c, err := net.Dial("tcp", r.proxy)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		c.SetDeadline(time.Now().Add(30 * time.Second))
		io.WriteString(c, "GET /x HTTP/1.1\r\nHost: h\r\n\r\n")
		br := bufio.NewReader(c)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		if b, _ := io.ReadAll(resp.Body); string(b) != "A" {
			t.Fatalf("got %q", b)
		}
		return br
	}
	polled := func(want float64) {
		t.Helper()
		if _, m := get(t, "http://"+r.admin+"/metrics"); metricValue(m, "cellar_poller_connections") != want {
			t.Errorf("cellar_poller_connections = %v, want %v", metricValue(m, "cellar_poller_connections"), want)
		}
	}
	reload := func(config string) {
		t.Helper()
		if err := os.WriteFile(cfg, []byte(config), 0o600); err != nil {
			t.Fatal(err)
		}
		var out, errb strings.Builder
		if err := run(context.Background(), []string{"reload", "-admin", r.admin, "-data-dir", dir}, &out, &errb); err != nil {
			t.Fatalf("reload: %v\n%s", err, errb.String())
		}
	}
	// newLoops waits until a poller loop that is not in known runs, and
	// returns those.
	newLoops := func(known map[string]bool) map[string]bool {
		t.Helper()
		var fresh map[string]bool
		waitFor(t, "a new poller loop", func() bool {
			fresh = pollerLoops()
			maps.DeleteFunc(fresh, func(id string, _ bool) bool { return known[id] })
			return len(fresh) > 0
		})
		return fresh
	}
	first := newLoops(others)
	parked := idle()
	polled(1)
	reload(base + "server: {poller: false}\n")
	if _, err := parked.ReadByte(); err != io.EOF {
		t.Errorf("the connection waiting on the old set's poller: %v, want EOF", err)
	}
	waitFor(t, "the old set's poller loop ends", func() bool {
		now := pollerLoops()
		for id := range first {
			if now[id] {
				return false
			}
		}
		return true
	})
	parked = idle()
	polled(0)
	reload(base)
	// The old set shares the socket until it shuts down: it closes its
	// listener before its idle connections, so once this one is closed
	// every new connection is the new set's.
	if _, err := parked.ReadByte(); err != io.EOF {
		t.Errorf("the connection waiting on the set without a poller: %v, want EOF", err)
	}
	maps.Copy(others, first)
	newLoops(others)
	idle()
	polled(1)
}

// pollerLoops returns the ids of the goroutines that run a poller's loop.
// A goroutine running on another thread shows no stack, so a caller waits
// for a loop to show rather than counting them once.
func pollerLoops() map[string]bool {
	ids := map[string]bool{}
	for _, g := range strings.Split(allStacks(), "\n\n") {
		if id, _, ok := strings.Cut(strings.TrimPrefix(g, "goroutine "), " "); ok && strings.Contains(g, "poller.(*Poller).loop(") {
			ids[id] = true
		}
	}
	return ids
}

// allStacks is every goroutine's stack.
func allStacks() string {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			return string(buf[:n])
		}
		buf = make([]byte, 2*len(buf))
	}
}
