package listen

import (
	"context"
	"crypto/tls"
	"errors"
	"log"
	"net"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/cellar-cache/cellar/internal/h1"
)

// tlsSplit serves a TLS listener with two engines: it accepts
// connections, completes each handshake in a goroutine of its own (within
// the header timeout, so that a slow client holds up nobody), then hands
// the connections that chose HTTP/2 by ALPN to net/http and the others
// (HTTP/1.1) to cellar's engine.
type tlsSplit struct {
	ln      net.Listener // the TCP listener, beneath any PROXY protocol
	config  *tls.Config  // with NextProtos h2 and http/1.1
	timeout time.Duration
	logger  *log.Logger

	h1q, h2q *queue

	mu        sync.Mutex // protects shaking, closed
	shaking   map[net.Conn]struct{}
	closed    bool
	handshake sync.WaitGroup
}

// newTLSSplit prepares the split of ln; srv's TLSConfig becomes the
// listener's configuration with ALPN for h2 and http/1.1.
func newTLSSplit(ln net.Listener, srv *http.Server, timeout time.Duration) *tlsSplit {
	tc := srv.TLSConfig.Clone()
	for _, p := range []string{"h2", "http/1.1"} {
		if !slices.Contains(tc.NextProtos, p) {
			tc.NextProtos = append(tc.NextProtos, p)
		}
	}
	// A copy with "h2" in it: net/http's Serve then sets up HTTP/2, and
	// may touch it while handshakes read the split's.
	srv.TLSConfig = tc.Clone()
	return &tlsSplit{
		ln: ln, config: tc, timeout: timeout, logger: srv.ErrorLog,
		h1q: newQueue(ln.Addr()), h2q: newQueue(ln.Addr()),
		shaking: map[net.Conn]struct{}{},
	}
}

// serve runs the split and both engines until the listener fails or is
// closed (see close); it returns the accept error.
func (t *tlsSplit) serve(e *h1.Server, srv *http.Server) error {
	errc := make(chan error, 2)
	go func() { errc <- srv.Serve(t.h2q) }()
	go func() { errc <- e.Serve(t.h1q) }()
	err := t.accept()
	t.close(context.Background()) // handshakes end within their timeout
	for range 2 {
		if err2 := <-errc; err == nil && !isClosed(err2) {
			err = err2
		}
	}
	return err
}

func (t *tlsSplit) accept() error {
	var pause time.Duration
	for {
		c, err := t.ln.Accept()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				pause = min(max(2*pause, 5*time.Millisecond), time.Second)
				time.Sleep(pause)
				continue
			}
			return err
		}
		pause = 0
		tc := tls.Server(c, t.config)
		if !t.track(tc, true) {
			tc.Close()
			return net.ErrClosed
		}
		go t.shake(tc)
	}
}

// shake completes a handshake and queues the connection for its engine.
func (t *tlsSplit) shake(c *tls.Conn) {
	defer t.handshake.Done()
	ctx, cancel := context.WithTimeout(context.Background(), t.timeout)
	err := c.HandshakeContext(ctx)
	cancel()
	t.track(c, false)
	if err != nil {
		if !errors.Is(err, net.ErrClosed) {
			t.logf("http: TLS handshake error from %s: %v", c.RemoteAddr(), err)
		}
		c.Close()
		return
	}
	q := t.h1q
	if c.ConnectionState().NegotiatedProtocol == "h2" {
		q = t.h2q
	}
	q.put(c)
}

// track adds c to the handshakes in progress or removes it; adding
// reports false once the split is closed.
func (t *tlsSplit) track(c net.Conn, add bool) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if add {
		if t.closed {
			return false
		}
		t.shaking[c] = struct{}{}
		t.handshake.Add(1)
		return true
	}
	delete(t.shaking, c)
	return true
}

// close stops accepting and lets the handshakes in progress finish, each
// connection going to its engine, until ctx ends (then it closes those
// left), as net/http serves a connection accepted before its Shutdown:
// a client that connected just before a reload gets its answer. Then it
// closes both queues (the engines' Serve return); the connections they
// serve are theirs to shut down. The engines must be shut down after it
// returns, not before: their Shutdown closes the queues.
func (t *tlsSplit) close(ctx context.Context) {
	t.ln.Close()
	t.mu.Lock()
	t.closed = true
	t.mu.Unlock()
	done := make(chan struct{})
	go func() {
		t.handshake.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		t.mu.Lock()
		for c := range t.shaking {
			c.Close()
		}
		t.mu.Unlock()
		<-done
	}
	t.h1q.Close()
	t.h2q.Close()
}

func (t *tlsSplit) logf(format string, args ...any) {
	if t.logger != nil {
		t.logger.Printf(format, args...)
	} else {
		log.Printf(format, args...)
	}
}

// queue is a net.Listener whose connections another goroutine accepted.
type queue struct {
	addr net.Addr
	ch   chan net.Conn
	once sync.Once
	done chan struct{}
}

func newQueue(addr net.Addr) *queue {
	return &queue{addr: addr, ch: make(chan net.Conn), done: make(chan struct{})}
}

// put hands c to the queue's Accept, or closes it once the queue is
// closed.
func (q *queue) put(c net.Conn) {
	select {
	case q.ch <- c:
	case <-q.done:
		c.Close()
	}
}

func (q *queue) Accept() (net.Conn, error) {
	select {
	case c := <-q.ch:
		return c, nil
	case <-q.done:
		return nil, net.ErrClosed
	}
}

func (q *queue) Close() error {
	q.once.Do(func() { close(q.done) })
	return nil
}

func (q *queue) Addr() net.Addr { return q.addr }
