package h1

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync/atomic"
	"testing"
)

// countingListener wraps the connections it accepts, as a connection
// limit does, and counts the calls that write to them.
type countingListener struct {
	net.Listener
	writes, writevs atomic.Int64
	vectored        bool // the conns have WriteBuffers
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	if l.vectored {
		return &vectoredConn{countingConn{c, l}}, nil
	}
	return &countingConn{c, l}, nil
}

type countingConn struct {
	net.Conn
	l *countingListener
}

func (c *countingConn) Write(p []byte) (int, error) {
	c.l.writes.Add(1)
	return c.Conn.Write(p)
}

type vectoredConn struct{ countingConn }

func (c *vectoredConn) WriteBuffers(v *net.Buffers) (int64, error) {
	c.l.writevs.Add(1)
	return WriteBuffers(c.Conn, v)
}

// TestLargeBodyGoesOutWithItsHeaderInOneWritev checks that a response
// whose body does not fit the write buffer leaves in one call with its
// header, through a wrapper's WriteBuffers, and that the bytes are right
// with and without one.
func TestLargeBodyGoesOutWithItsHeaderInOneWritev(t *testing.T) {
	body := bytes.Repeat([]byte("0123456789abcdef"), 100<<10/16)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/length" {
			w.Header().Set("Content-Length", fmt.Sprint(len(body)))
		}
		w.Write(body)
	})
	for _, tc := range []struct {
		vectored      bool
		path          string
		writes, calls int64 // per response
	}{
		{true, "/length", 0, 1},
		{true, "/chunked", 0, 1}, // the chunk's end stays buffered
		{false, "/length", 2, 0},
	} {
		t.Run(fmt.Sprintf("vectored=%v%s", tc.vectored, tc.path), func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			cl := &countingListener{Listener: ln, vectored: tc.vectored}
			s := New(&http.Server{Handler: h})
			done := make(chan error, 1)
			go func() { done <- s.Serve(cl) }()
			defer func() {
				s.Close()
				if err := <-done; !errors.Is(err, http.ErrServerClosed) {
					t.Errorf("Serve: %v", err)
				}
			}()
			client := &http.Client{Transport: &http.Transport{}}
			defer client.CloseIdleConnections()
			const n = 3
			for i := range n {
				resp, err := client.Get("http://" + ln.Addr().String() + tc.path)
				if err != nil {
					t.Fatal(err)
				}
				got, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				if err != nil || !bytes.Equal(got, body) {
					t.Fatalf("response %d: %d bytes, %v; want the %d-byte body", i, len(got), err, len(body))
				}
			}
			// The last chunked response's end is written before the client
			// can read it whole, so every count is final here.
			w, v := cl.writes.Load(), cl.writevs.Load()
			if tc.path == "/chunked" {
				w -= n // each response's last chunk and its end, in a write of their own
			}
			if w != n*tc.writes || v != n*tc.calls {
				t.Errorf("%d responses took %d writes and %d WriteBuffers calls; want %d and %d",
					n, w, v, n*tc.writes, n*tc.calls)
			}
		})
	}
}
