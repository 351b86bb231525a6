package h1

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/cellar-cache/cellar/internal/poller"
)

// testPoller, when set, makes start give its server a poller.
var testPoller *poller.Poller

func withTestPoller(t *testing.T, s *Server) {
	if testPoller != nil {
		s.SetPoller(testPoller)
	}
}

// TestServingWithThePoller runs the tests of keep-alive, pipelining,
// timeouts, shutdown, hijacking and departing clients with the
// connections waiting for their next request on a poller.
func TestServingWithThePoller(t *testing.T) {
	p, err := poller.New()
	if err != nil {
		t.Skip(err) // no epoll
	}
	testPoller = p
	defer func() {
		testPoller = nil
		p.Close()
	}()
	for _, tc := range []struct {
		name string
		f    func(*testing.T)
	}{
		{"KeepAlive", TestKeepAliveWithTheGoClient},
		{"Pipelined", TestPipelinedRequestsAreAnsweredInOrder},
		{"HTTP10", TestHTTP10KeepAliveAndCloseDelimitedBodies},
		{"Timeouts", TestTimeouts},
		{"Shutdown", TestShutdownWaitsForRequestsAndClosesIdleConnections},
		{"ShutdownNew", TestShutdownServesANewConnectionsFirstRequest},
		{"Hijack", TestHijack},
		{"ContextEnds", TestContextEndsWhenTheClientGoesAway},
		{"VanishingMidBody", TestClientVanishingMidBody},
		{"ExpectContinue", TestExpectContinue},
		{"ParkedClientCloses", testParkedClientCloses},
		{"ParkedClose", testParkedConnectionsEndOnClose},
		{"HijackUnregisters", testHijackUnregisters},
		{"ManyConnections", testManyParkedConnections},
	} {
		t.Run(tc.name, tc.f)
		waitFor(t, tc.name+"'s connections to unregister", func() bool { return p.Len() == 0 })
	}
}

// waitFor polls cond until it holds, for up to 20 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for end := time.Now().Add(20 * time.Second); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(end) {
			t.Fatalf("waited 20 s for %s", what)
		}
	}
}

// testParkedClientCloses: a connection parked on the poller ends when its
// client closes it.
func testParkedClientCloses(t *testing.T) {
	closed := make(chan struct{})
	cfg := &http.Server{ConnState: func(_ net.Conn, st http.ConnState) {
		if st == http.StateClosed {
			close(closed)
		}
	}}
	_, addr := start(t, cfg, hello)
	c, br := idleConn(t, addr)
	waitFor(t, "the connection to park", func() bool { return testPoller.Len() == 1 })
	// It serves the next request, woken by the poller, and parks again.
	events := testPoller.Events()
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: h\r\n\r\n")
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := io.ReadAll(resp.Body); string(b) != "hello" {
		t.Errorf("second response %q", b)
	}
	if testPoller.Events() == events {
		t.Error("the second request did not come through the poller")
	}
	c.Close()
	select {
	case <-closed:
	case <-time.After(20 * time.Second):
		t.Fatal("the parked connection was not closed after its client left")
	}
	waitFor(t, "the connection to unregister", func() bool { return testPoller.Len() == 0 })
}

// testParkedConnectionsEndOnClose: Close ends the parked connections'
// goroutines (the leak check after the tests finds any left).
func testParkedConnectionsEndOnClose(t *testing.T) {
	s, addr := start(t, nil, hello)
	for range 3 {
		idleConn(t, addr)
	}
	waitFor(t, "three connections to park", func() bool { return testPoller.Len() == 3 })
	s.Close()
	waitFor(t, "the connections to unregister", func() bool { return testPoller.Len() == 0 })
}

// testHijackUnregisters: a hijacked connection leaves the poller at
// Hijack, while its handler still holds it (its traffic is the handler's).
func testHijackUnregisters(t *testing.T) {
	registered := make(chan [2]int, 1)
	_, addr := start(t, nil, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		before := testPoller.Len()
		c, _, err := http.NewResponseController(w).Hijack()
		if err != nil {
			panic(err)
		}
		defer c.Close()
		registered <- [2]int{before, testPoller.Len()}
	}))
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: h\r\nUpgrade: x\r\nConnection: Upgrade\r\n\r\n")
	select {
	case n := <-registered:
		if n != [2]int{1, 0} {
			t.Errorf("connections registered before and after Hijack: %v, want [1 0]", n)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the handler did not run")
	}
}

// testManyParkedConnections: 200 connections parked at once are each
// woken for their own requests, sent by all of them concurrently.
func testManyParkedConnections(t *testing.T) {
	_, addr := start(t, nil, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, r.URL.Path)
	}))
	const n = 200
	conns := make([]net.Conn, n)
	brs := make([]*bufio.Reader, n)
	for i := range conns {
		conns[i], brs[i] = idleConn(t, addr)
	}
	waitFor(t, "the connections to register", func() bool { return testPoller.Len() == n })
	errs := make(chan error, n)
	for i := range conns {
		go func() {
			conns[i].SetDeadline(time.Now().Add(60 * time.Second))
			for j := range 5 {
				path := fmt.Sprintf("/%d/%d", i, j)
				io.WriteString(conns[i], "GET "+path+" HTTP/1.1\r\nHost: h\r\n\r\n")
				resp, err := http.ReadResponse(brs[i], nil)
				if err != nil {
					errs <- err
					return
				}
				if b, _ := io.ReadAll(resp.Body); string(b) != path {
					errs <- fmt.Errorf("%s answered %q", path, b)
					return
				}
			}
			errs <- nil
		}()
	}
	for range n {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	for _, c := range conns {
		c.Close()
	}
}
