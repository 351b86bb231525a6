package proxy

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/cellar-cache/cellar/internal/accesslog"
	"github.com/cellar-cache/cellar/internal/proxytest"
)

// echoWebSocket is an origin handler that echoes every WebSocket message
// with a prefix naming the request's Host.
func echoWebSocket(w http.ResponseWriter, r *http.Request) {
	c, err := websocket.Accept(w, r, nil)
	if err != nil {
		return
	}
	defer c.CloseNow()
	for {
		typ, msg, err := c.Read(r.Context())
		if err != nil {
			return
		}
		if err := c.Write(r.Context(), typ, append([]byte("echo:"), msg...)); err != nil {
			return
		}
	}
}

// TestWebSocketIsTunnelledByDefault: a GET with Upgrade: websocket on a
// cacheable path goes to the origin as a tunnel (RFC 9110 §7.8), both
// directions stream, it is never cached, the access log records 101, and
// the open-tunnels gauge follows the connection.
func TestWebSocketIsTunnelledByDefault(t *testing.T) {
	checkNoLeakedGoroutines(t)
	logs := &proxytest.SyncBuffer{}
	on := true
	access := accesslog.New(logs, accesslog.Options{Interval: time.Millisecond})
	defer access.Close()
	r := newRig(t, echoWebSocket, withProxyOptions(func(o *Options) {
		o.AccessLog = &on
		o.AccessLogOutput = access
	}))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	wsURL := "ws" + strings.TrimPrefix(r.front.URL, "http") + "/chat"
	for round := range 2 { // the second dial must reach the origin too: nothing is cached
		c, resp, err := websocket.Dial(ctx, wsURL, nil)
		if err != nil {
			t.Fatalf("round %d: dial through the proxy: %v", round, err)
		}
		if resp.StatusCode != http.StatusSwitchingProtocols {
			t.Fatalf("round %d: status %d; want 101", round, resp.StatusCode)
		}
		if n := testutil.ToFloat64(r.server.metrics.openTunnels); n != 1 {
			t.Errorf("round %d: open tunnels = %v; want 1", round, n)
		}
		for i := range 3 {
			msg := fmt.Sprintf("hello %d", i)
			if err := c.Write(ctx, websocket.MessageText, []byte(msg)); err != nil {
				t.Fatalf("write: %v", err)
			}
			_, got, err := c.Read(ctx)
			if err != nil {
				t.Fatalf("read: %v", err)
			}
			if string(got) != "echo:"+msg {
				t.Fatalf("read %q; want %q", got, "echo:"+msg)
			}
		}
		if err := c.Close(websocket.StatusNormalClosure, "bye"); err != nil {
			t.Fatalf("round %d: clean close: %v", round, err)
		}
		waitFor(t, "the tunnel closed", func() bool { return testutil.ToFloat64(r.server.metrics.openTunnels) == 0 })
	}
	if n := r.origin.hits.Load(); n != 2 {
		t.Errorf("origin saw %d upgrade requests; want 2", n)
	}
	if n := testutil.ToFloat64(r.server.metrics.tunnels); n != 2 {
		t.Errorf("tunnels_total = %v; want 2", n)
	}
	waitFor(t, "two access lines", func() bool { return strings.Count(logs.String(), "uri=/chat") == 2 })
	for _, line := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		if !strings.Contains(line, "uri=/chat") {
			continue
		}
		if !strings.Contains(line, "status=101") {
			t.Errorf("access line %q; want status=101", line)
		}
		// Three echoed frames of 14 bytes each reached the client.
		_, after, _ := strings.Cut(line, " bytes=")
		if n, _ := strconv.Atoi(strings.Fields(after + " ")[0]); n < 42 {
			t.Errorf("access line %q; want the tunnel's bytes to the client, at least 42", line)
		}
	}
}

// TestTunnelClosesWhenTheOriginCloses: the origin ending the WebSocket
// reaches the client as a close frame, and the tunnel is released.
func TestTunnelClosesWhenTheOriginCloses(t *testing.T) {
	checkNoLeakedGoroutines(t)
	r := newRig(t, func(w http.ResponseWriter, req *http.Request) {
		c, err := websocket.Accept(w, req, nil)
		if err != nil {
			return
		}
		c.Close(websocket.StatusGoingAway, "done")
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(r.front.URL, "http")+"/x", nil)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer c.CloseNow()
	_, _, err = c.Read(ctx)
	if got := websocket.CloseStatus(err); got != websocket.StatusGoingAway {
		t.Fatalf("read after the origin closed: %v; want close status 1001", err)
	}
	waitFor(t, "the tunnel released", func() bool { return testutil.ToFloat64(r.server.metrics.openTunnels) == 0 })
}

// TestIdleTunnelIsClosed: a tunnel on which nothing moves for the idle
// timeout is closed on both sides.
func TestIdleTunnelIsClosed(t *testing.T) {
	checkNoLeakedGoroutines(t)
	originDone := make(chan error, 1)
	r := newRig(t, func(w http.ResponseWriter, req *http.Request) {
		c, err := websocket.Accept(w, req, nil)
		if err != nil {
			return
		}
		defer c.CloseNow()
		_, _, err = c.Read(context.Background()) // returns when the proxy drops the tunnel
		originDone <- err
	}, withProxyOptions(func(o *Options) { o.TunnelIdleTimeout = 200 * time.Millisecond }))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(r.front.URL, "http")+"/idle", nil)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer c.CloseNow()
	if _, _, err := c.Read(ctx); err == nil || errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("client read on an idle tunnel: %v; want the connection closed by the proxy", err)
	}
	select {
	case err := <-originDone:
		if err == nil {
			t.Fatal("the origin read a message; want its side closed")
		}
	case <-ctx.Done():
		t.Fatal("the origin's side of the idle tunnel stayed open")
	}
	waitFor(t, "the tunnel released", func() bool { return testutil.ToFloat64(r.server.metrics.openTunnels) == 0 })
}

// TestNonWebSocketUpgradeIsTunnelled: any protocol named in Upgrade is
// tunnelled, here a line echo protocol over raw TCP.
func TestNonWebSocketUpgradeIsTunnelled(t *testing.T) {
	checkNoLeakedGoroutines(t)
	r := newRig(t, func(w http.ResponseWriter, req *http.Request) {
		if req.Header.Get("Upgrade") != "echo/1" {
			http.Error(w, "want Upgrade: echo/1", http.StatusBadRequest)
			return
		}
		conn, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		io.WriteString(conn, "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: echo/1\r\n\r\n")
		for {
			line, err := brw.ReadString('\n')
			if err != nil {
				return
			}
			io.WriteString(conn, strings.ToUpper(line))
		}
	})
	conn, err := net.Dial("tcp", strings.TrimPrefix(r.front.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(conn, "GET /line HTTP/1.1\r\nHost: cellar.test\r\nConnection: Upgrade\r\nUpgrade: echo/1\r\n\r\n")
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("status %d; want 101", resp.StatusCode)
	}
	for _, msg := range []string{"one\n", "two\n"} {
		io.WriteString(conn, msg)
		got, err := br.ReadString('\n')
		if err != nil || got != strings.ToUpper(msg) {
			t.Fatalf("read %q, %v; want %q", got, err, strings.ToUpper(msg))
		}
	}
}

// TestH2CUpgradeIsNotTunnelled: Upgrade: h2c is served as a plain request,
// so that nobody can smuggle HTTP/2 requests past cellar to the origin.
func TestH2CUpgradeIsNotTunnelled(t *testing.T) {
	r := newRig(t, func(w http.ResponseWriter, req *http.Request) {
		io.WriteString(w, "upgrade="+req.Header.Get("Upgrade"))
	})
	resp, body := r.do(http.MethodGet, "/h2c", http.Header{"Connection": {"Upgrade, HTTP2-Settings"}, "Upgrade": {"h2c"}, "Http2-Settings": {"AAMAAABkAARAAAAAAAIAAAAA"}})
	if resp.StatusCode != http.StatusOK || body != "upgrade=" {
		t.Errorf("%d %q; want 200 from the origin without Upgrade", resp.StatusCode, body)
	}
	if n := testutil.ToFloat64(r.server.metrics.tunnels); n != 0 {
		t.Errorf("tunnels_total = %v; want 0", n)
	}
}
