package proxy

import (
	"net"
	"net/http"
	"sync"
	"time"
)

// Listener wraps ln, a listener of client connections, with the proxy's
// connection limits: at most Limits.MaxConns open connections (one more is
// closed as soon as it is accepted and counted in
// cellar_connections_refused_total), open connections counted in
// cellar_client_connections, and the write timeout (Options.WriteTimeout):
// every write to the client must make progress within it, or the
// connection is closed. Wrap the plain TCP listener, beneath any TLS.
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
}

type limitListener struct {
	net.Listener
	s         *Server
	slots     chan struct{} // one per open connection; nil: no limit
	writeIdle time.Duration
}

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
		return &limitConn{Conn: c, l: l}, nil
	}
}

// limitConn is one client connection: it frees its slot when closed and
// applies the write timeout to each write.
type limitConn struct {
	net.Conn
	l    *limitListener
	once sync.Once
}

func (c *limitConn) Write(p []byte) (int, error) {
	if c.l.writeIdle > 0 {
		c.Conn.SetWriteDeadline(time.Now().Add(c.l.writeIdle))
	}
	return c.Conn.Write(p)
}

func (c *limitConn) Close() error {
	c.once.Do(func() {
		c.l.s.metrics.connsOpen.Dec()
		if c.l.slots != nil {
			<-c.l.slots
		}
	})
	return c.Conn.Close()
}
