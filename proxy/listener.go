package proxy

import (
	"context"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cellar-cache/cellar/internal/deadline"
	"github.com/cellar-cache/cellar/internal/h1"
)

// Listener wraps ln, a listener of client connections, with the proxy's
// connection limits: at most Limits.MaxConns open connections (one more is
// closed as soon as it is accepted and counted in
// cellar_connections_refused_total), open connections counted in
// cellar_client_connections, and the write timeout (Options.WriteTimeout):
// every write to the client must make progress within it, or the
// connection is closed. The deadline is moved at most every quarter of the
// timeout (a deadline costs a timer update in the runtime), so a write has
// between three quarters of it and all of it. Wrap the plain TCP listener,
// beneath any TLS.
func (s *Server) Listener(ln net.Listener) net.Listener {
	l := &limitListener{Listener: ln, s: s, writeIdle: s.opts.WriteTimeout}
	if n := s.opts.Limits.MaxConns; n > 0 {
		l.slots = make(chan struct{}, n)
	}
	return l
}

// ConfigureHTTPServer applies the proxy's limits to hs, the http.Server
// that serves s: the header size limit (Limits.MaxHeaderBytes). Call it
// before serving.
func (s *Server) ConfigureHTTPServer(hs *http.Server) {
	if n := s.opts.Limits.MaxHeaderBytes; n > 0 {
		// net/http allows 4 KiB above MaxHeaderBytes; take it off so the
		// limit is the one configured.
		hs.MaxHeaderBytes = max(n-4096, 1)
	}
	prev := hs.ConnContext
	hs.ConnContext = func(ctx context.Context, c net.Conn) context.Context {
		if prev != nil {
			ctx = prev(ctx, c)
		}
		if lc, ok := c.(*limitConn); ok {
			ctx = context.WithValue(ctx, connKey{}, lc)
		}
		return ctx
	}
}

// connKey is the context key of a request's *limitConn, when it came on a
// plain connection of a listener wrapped by Server.Listener.
type connKey struct{}

// badFraming reports whether r is a request that net/http accepted with
// both Content-Length and Transfer-Encoding (see framing). Call it once
// per request: it counts the connection's requests. While no open
// connection follows its framing (cellar's HTTP/1.1 engine serves them
// all, as by default), it answers without looking r's connection up in
// its context.
func badFraming(r *http.Request) bool {
	if framedConns.Load() == 0 {
		return false
	}
	c, ok := r.Context().Value(connKey{}).(*limitConn)
	if !ok || c.framing == nil || r.ProtoMajor != 1 {
		return false
	}
	n := c.served.Add(1)
	bad := c.framing.bad.Load()
	return bad != 0 && n == bad
}

// framedConns counts the open connections, of every Server, that follow
// their requests' framing. A connection that is never closed keeps it
// above zero: badFraming then looks every request's connection up, as it
// always did. It is not per Server: a reload that keeps the listeners
// keeps them wrapped by the Server before it, while the new one serves
// their requests.
var framedConns atomic.Int64

type limitListener struct {
	net.Listener
	s         *Server
	slots     chan struct{} // one per open connection; nil: no limit
	writeIdle time.Duration
	// engineFrames is set when the engine that serves every connection
	// refuses ambiguous framing itself (listen.EngineFramer): the
	// connections then have no framing to follow.
	engineFrames atomic.Bool
}

// EngineFramesRequests tells l that cellar's HTTP/1.1 engine serves all
// of its connections (listen.EngineFramer): it refuses a request with
// both Content-Length and Transfer-Encoding before the handler sees it,
// so the connections accepted from now on do not follow their requests'
// framing (see framing), which costs every read a scan of its bytes.
func (l *limitListener) EngineFramesRequests() { l.engineFrames.Store(true) }

func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if l.slots != nil {
			select {
			case l.slots <- struct{}{}:
			default:
				l.s.metrics.connsRefused.Inc()
				c.Close()
				continue
			}
		}
		l.s.metrics.connsOpen.Inc()
		lc := &limitConn{Conn: c, l: l}
		if !l.engineFrames.Load() {
			lc.framing = newFraming()
			framedConns.Add(1)
		}
		return lc, nil
	}
}

// limitConn is one client connection: it frees its slot when closed and
// applies the write timeout to each write.
type limitConn struct {
	net.Conn
	l       *limitListener
	once    sync.Once
	framing *framing      // the requests' framing, as read; nil: not followed
	served  atomic.Int64  // requests that reached the handler
	write   deadline.Lazy // the write deadline, moved by writeDeadline
}

// PlainNetConn is the connection c wraps, whose reads c passes on
// unbuffered: h1's poller (internal/poller) waits on its descriptor.
func (c *limitConn) PlainNetConn() net.Conn { return c.Conn }

func (c *limitConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if c.framing != nil {
		c.framing.feed(p[:n])
	}
	return n, err
}

func (c *limitConn) Write(p []byte) (int, error) {
	c.writeDeadline()
	return c.Conn.Write(p)
}

// WriteBuffers writes v as v.WriteTo would, in one writev(2) on a TCP
// connection: the HTTP/1.1 engine (internal/h1) sends a response header
// and a large body with it in one system call.
func (c *limitConn) WriteBuffers(v *net.Buffers) (int64, error) {
	c.writeDeadline()
	return h1.WriteBuffers(c.Conn, v)
}

// writeDeadline moves the write deadline to the write timeout from now,
// unless it was moved less than a quarter of the timeout ago.
func (c *limitConn) writeDeadline() {
	if idle := c.l.writeIdle; idle > 0 {
		if t, ok := c.write.Due(idle); ok {
			c.Conn.SetWriteDeadline(t)
		}
	}
}

// SetWriteDeadline and SetDeadline set the connection's deadline until
// the next write, which moves it to the write timeout again (as before
// the quarter rule: a handler cannot lift the timeout).
func (c *limitConn) SetWriteDeadline(t time.Time) error {
	c.write.Reset()
	return c.Conn.SetWriteDeadline(t)
}

func (c *limitConn) SetDeadline(t time.Time) error {
	c.write.Reset()
	return c.Conn.SetDeadline(t)
}

func (c *limitConn) Close() error {
	c.once.Do(func() {
		if c.framing != nil {
			framedConns.Add(-1)
		}
		c.l.s.metrics.connsOpen.Dec()
		if c.l.slots != nil {
			<-c.l.slots
		}
	})
	return c.Conn.Close()
}
