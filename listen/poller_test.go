package listen

import (
	"bufio"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"net/netip"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/cellar-cache/cellar/internal/leaktest"
)

// TestPollerTakesOnlyPlainConnections: with Options.Poller, a plain
// connection waits for its next request on the group's poller; TLS and
// PROXY protocol connections (whose reader may hold bytes the descriptor
// no longer shows) wait in their reads. Every one serves keep-alive
// requests, and the poller stops with the group.
func TestPollerTakesOnlyPlainConnections(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the poller needs epoll")
	}
	leaktest.Check(t)
	files, roots := testRoots(t, "a.test")
	loopback := func(a netip.Addr) bool { return a.IsLoopback() }
	g := startGroup(t, Options{Poller: true, Trusted: loopback, Listeners: []Listener{
		{Address: "127.0.0.1:0"},
		{Address: "127.0.0.1:0", Certs: []CertFiles{files}},
		{Address: "127.0.0.1:0", ProxyProtocol: true},
	}})
	if on, _ := g.Poller(); !on {
		t.Fatal("Poller() reports no poller")
	}
	addrs := g.Addrs()
	dial := func(i int) net.Conn {
		t.Helper()
		c, err := net.Dial("tcp", strings.TrimPrefix(strings.TrimPrefix(addrs[i], "http://"), "https://"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		c.SetDeadline(time.Now().Add(20 * time.Second))
		switch i {
		case 1:
			tc := tls.Client(c, &tls.Config{ServerName: "a.test", RootCAs: roots, NextProtos: []string{"http/1.1"}})
			t.Cleanup(func() { tc.Close() })
			return tc
		case 2:
			io.WriteString(c, "PROXY TCP4 203.0.113.7 127.0.0.1 5555 80\r\n")
		}
		return c
	}
	var conns []net.Conn
	var readers []*bufio.Reader
	for i := range addrs {
		conns = append(conns, dial(i))
		readers = append(readers, bufio.NewReader(conns[i]))
	}
	get := func(i int) {
		t.Helper()
		io.WriteString(conns[i], "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
		resp, err := http.ReadResponse(readers[i], nil)
		if got := readAll(t, resp, err); !strings.HasSuffix(got, "HTTP/1.1") {
			t.Errorf("listener %d answered %q", i, got)
		}
	}
	for i := range conns {
		get(i)
	}
	// All three are idle: only the plain one is registered.
	if _, n := g.Poller(); n != 1 {
		t.Errorf("%d connections registered with the poller, want 1 (the plain one)", n)
	}
	for range 3 {
		for i := range conns {
			get(i)
		}
	}
	conns[0].Close()
	waitUntil(t, "the closed plain connection to unregister", func() bool { _, n := g.Poller(); return n == 0 })
}
