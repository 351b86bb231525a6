package listen

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cellar-cache/cellar/internal/h1"
)

// writeCounter wraps the TCP listener as Options.Wrap does (a connection
// limit) and counts the calls that write to its connections.
type writeCounter struct {
	net.Listener
	writes, writevs atomic.Int64
}

func (l *writeCounter) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &countedConn{c, l}, nil
}

type countedConn struct {
	net.Conn
	l *writeCounter
}

func (c *countedConn) Write(p []byte) (int, error) {
	c.l.writes.Add(1)
	return c.Conn.Write(p)
}

func (c *countedConn) WriteBuffers(v *net.Buffers) (int64, error) {
	c.l.writevs.Add(1)
	return h1.WriteBuffers(c.Conn, v)
}

// TestPROXYConnectionWritesAResponseInOneWritev: on a PROXY protocol
// connection, whose wrapper sits above the listener's Wrap, a response
// with a large body still reaches the wrapped connection in one writev.
func TestPROXYConnectionWritesAResponseInOneWritev(t *testing.T) {
	body := bytes.Repeat([]byte("0123456789"), 10<<10)
	wc := &writeCounter{}
	g := startGroup(t, Options{
		Trusted:   func(a netip.Addr) bool { return a.IsLoopback() },
		Listeners: []Listener{{Address: "127.0.0.1:0", ProxyProtocol: true}},
		Wrap:      func(ln net.Listener) net.Listener { wc.Listener = ln; return wc },
		Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Length", strconv.Itoa(len(body)))
			w.Write(body)
		}),
	})
	conn, err := net.Dial("tcp", strings.TrimPrefix(g.Addrs()[0], "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(conn, "PROXY TCP4 203.0.113.7 127.0.0.1 5555 80\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, resp, nil); got != string(body) {
		t.Fatalf("%d bytes; want the %d-byte body", len(got), len(body))
	}
	if w, v := wc.writes.Load(), wc.writevs.Load(); w != 0 || v != 1 {
		t.Errorf("the response took %d writes and %d writev calls; want 0 and 1", w, v)
	}
}
