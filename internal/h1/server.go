// Package h1 is cellar's HTTP/1.x server engine (RFC 9112): it serves an
// http.Handler on plain connections as net/http's server does, at about
// half its CPU per request. It parses request lines and header fields
// into a buffer kept per connection, answers pipelined requests in order
// with one write per batch, and starts the read that notices a departed
// client only when a request's context is asked for its Done channel.
// It serves a TLS connection handed over after its handshake (a
// *tls.Conn: a request's TLS field is its state); HTTP/2 stays with
// net/http (listen gives it the TLS connections that chose h2).
//
// It is strict where leniency would let a request be read two ways
// (request smuggling, RFC 9112 §11.2): obs-fold, a space before a
// field's colon, a bad, repeated or list-valued Content-Length, both
// Content-Length and Transfer-Encoding, a Transfer-Encoding other than
// chunked, and a missing or repeated Host on HTTP/1.1 are answered 400
// (501 for an unknown transfer coding) and the connection is closed.
package h1

import (
	"context"
	"errors"
	"log"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cellar-cache/cellar/internal/intern"
	"github.com/cellar-cache/cellar/internal/poller"
)

// Server serves HTTP/1.x with the settings of an http.Server, which must
// not change once serving starts: Handler, ReadHeaderTimeout, ReadTimeout
// (only until the header is read: a body's reads are the handler's to
// bound, with http.ResponseController), WriteTimeout, IdleTimeout,
// MaxHeaderBytes (plus 4096 bytes, as net/http allows), ConnState,
// BaseContext, ConnContext and ErrorLog. Requests carry the same context
// values as net/http's (http.ServerContextKey is the http.Server,
// http.LocalAddrContextKey the local address).
type Server struct {
	cfg *http.Server

	mu        sync.Mutex // protects listeners, conns
	listeners map[*net.Listener]struct{}
	conns     map[*conn]struct{}
	closing   atomic.Bool    // Shutdown or Close was called
	closed    atomic.Bool    // Close was called: a connection accepted now is closed
	serving   sync.WaitGroup // the Serve loops
	connsWG   sync.WaitGroup
	poller    *poller.Poller // nil: connections wait in their reads (poll.go)
	targets   *intern.Table  // request targets met before, not made again per request
}

// New returns a server with cfg's settings.
func New(cfg *http.Server) *Server {
	return &Server{cfg: cfg, listeners: map[*net.Listener]struct{}{}, conns: map[*conn]struct{}{},
		targets: intern.New(targetSlots, maxInternedTarget)}
}

// Serve accepts connections on ln and serves each in its own goroutine
// until ln fails or the server is shut down; it then returns
// http.ErrServerClosed (after Shutdown or Close) or the accept error.
// Temporary accept errors are retried after a short pause, as net/http
// does.
func (s *Server) Serve(ln net.Listener) error {
	if !s.track(&ln, true) {
		ln.Close()
		return http.ErrServerClosed
	}
	defer s.track(&ln, false)
	base := context.Background()
	if s.cfg.BaseContext != nil {
		if base = s.cfg.BaseContext(ln); base == nil {
			panic("h1: BaseContext returned a nil context")
		}
	}
	base = context.WithValue(base, http.ServerContextKey, s.cfg)
	var pause time.Duration
	for {
		rw, err := ln.Accept()
		if err != nil {
			if s.closing.Load() {
				return http.ErrServerClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				pause = min(max(2*pause, 5*time.Millisecond), time.Second)
				s.logf("h1: accept error: %v; retrying in %v", err, pause)
				time.Sleep(pause)
				continue
			}
			return err
		}
		pause = 0
		c := newConn(s, rw)
		ctx := context.WithValue(base, http.LocalAddrContextKey, rw.LocalAddr())
		if s.cfg.ConnContext != nil {
			if ctx = s.cfg.ConnContext(ctx, rw); ctx == nil {
				panic("h1: ConnContext returned a nil context")
			}
		}
		c.ctx = ctx
		if !s.addConn(c) {
			rw.Close()
			return http.ErrServerClosed
		}
		c.setState(http.StateNew)
		go c.serve()
	}
}

func (s *Server) track(ln *net.Listener, add bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !add {
		delete(s.listeners, ln)
		s.serving.Done()
		return true
	}
	if s.closing.Load() {
		return false
	}
	s.listeners[ln] = struct{}{}
	s.serving.Add(1)
	return true
}

// addConn registers a connection Serve accepted; it reports false after
// Close. A connection accepted before Shutdown closed the listener is
// served, as net/http serves it: a client that connected just before a
// reload gets its answer (for a TLS listener, the split hands over the
// connections whose handshake was in progress, listen/tlssplit.go).
func (s *Server) addConn(c *conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed.Load() {
		return false
	}
	s.conns[c] = struct{}{}
	s.connsWG.Add(1)
	return true
}

func (s *Server) removeConn(c *conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
	s.connsWG.Done()
}

// closeListeners closes every listener; it reports the first error.
func (s *Server) closeListeners() error {
	s.closing.Store(true)
	s.mu.Lock()
	defer s.mu.Unlock()
	var first error
	for ln := range s.listeners {
		if err := (*ln).Close(); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// Shutdown stops accepting, closes idle connections, and waits for the
// others to finish the request they serve (each is closed after its
// response) until ctx ends, when it returns ctx's error; the connections
// left are still open (call Close). Hijacked connections are not waited
// for.
func (s *Server) Shutdown(ctx context.Context) error {
	err := s.closeListeners()
	// Once the Serve loops are done, every connection they accepted is
	// known.
	loops := make(chan struct{})
	go func() {
		s.serving.Wait()
		close(loops)
	}()
	select {
	case <-loops:
	case <-ctx.Done():
		return ctx.Err()
	}
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		if s.closeIdle() {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
}

// closeIdle closes the connections waiting for a request (new ones once
// they have waited newConnGrace) and reports whether none is left.
func (s *Server) closeIdle() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		if c.state.CompareAndSwap(stateIdle, stateClosing) ||
			time.Since(c.born) >= newConnGrace && c.state.CompareAndSwap(stateNew, stateClosing) {
			c.rwc.Close()
			c.pollWake()
		}
	}
	return len(s.conns) == 0
}

// Close closes the listeners and every connection at once.
func (s *Server) Close() error {
	s.closed.Store(true)
	err := s.closeListeners()
	s.mu.Lock()
	for c := range s.conns {
		c.state.Store(stateClosing)
		c.rwc.Close()
		c.pollWake()
	}
	s.mu.Unlock()
	return err
}

func (s *Server) logf(format string, args ...any) {
	if s.cfg.ErrorLog != nil {
		s.cfg.ErrorLog.Printf(format, args...)
	} else {
		log.Printf(format, args...)
	}
}

// maxHeaderBytes is the most a request line and its header fields may
// take, as net/http counts it.
func (s *Server) maxHeaderBytes() int {
	n := s.cfg.MaxHeaderBytes
	if n <= 0 {
		n = http.DefaultMaxHeaderBytes
	}
	return n + 4096
}

// idleTimeout is how long a connection waits for its next request.
func (s *Server) idleTimeout() time.Duration {
	if s.cfg.IdleTimeout != 0 {
		return s.cfg.IdleTimeout
	}
	return s.cfg.ReadTimeout
}

// headerTimeout bounds reading one request's header.
func (s *Server) headerTimeout() time.Duration {
	if s.cfg.ReadHeaderTimeout != 0 {
		return s.cfg.ReadHeaderTimeout
	}
	return s.cfg.ReadTimeout
}
