package main

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// epolls counts the process's epoll instances.
func epolls(t *testing.T) int {
	fds, err := filepath.Glob("/proc/self/fd/*")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, fd := range fds {
		if l, err := os.Readlink(fd); err == nil && l == "anon_inode:[eventpoll]" {
			n++
		}
	}
	return n
}

// TestServePoller: with server.poller, keep-alive connections wait for
// their next request on cellar's own epoll instance and are served as
// before: one request at a time, pipelined, and closed when asked.
func TestServePoller(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the poller needs epoll")
	}
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		io.WriteString(w, "body of "+r.URL.Path)
	}))
	defer origin.Close()
	before := epolls(t)
	ls := startServeConfig(t, "listen: 127.0.0.1:0\norigin: "+origin.URL+"\naccess_log: false\n"+
		"server:\n  poller: true\n")
	if n := epolls(t); n != before+1 {
		t.Errorf("%d epoll instances after serve began, want %d (the poller's)", n, before+1)
	}
	c, err := net.Dial("tcp", strings.TrimPrefix(ls[0], "http://"))
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
	// One at a time (a miss, then hits), each after the connection waited.
	for range 3 {
		io.WriteString(c, "GET /a HTTP/1.1\r\nHost: h\r\n\r\n")
		read("/a")
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
}
