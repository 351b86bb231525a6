package h1

import (
	"net"
	"time"

	"github.com/cellar-cache/cellar/internal/poller"
)

// SetPoller makes the plain TCP connections wait for their next request
// on p (see package poller) instead of in a read; call it before Serve.
func (s *Server) SetPoller(p *poller.Poller) { s.poller = p }

// netConner is a connection that wraps another and reads through to it
// without keeping bytes back (proxy's limitConn), so that waiting for the
// wrapped descriptor to be readable is waiting for the wrapper. A
// *tls.Conn keeps decrypted bytes and is not one.
type netConner interface{ PlainNetConn() net.Conn }

// pollRegister registers a new connection with the server's poller, if
// any, when it is a plain TCP connection.
func (c *conn) pollRegister() {
	p := c.srv.poller
	if p == nil {
		return
	}
	tc, ok := c.rwc.(*net.TCPConn)
	if w, wraps := c.rwc.(netConner); !ok && wraps {
		tc, ok = w.PlainNetConn().(*net.TCPConn)
	}
	if !ok {
		return
	}
	if w, err := p.Register(tc); err == nil {
		c.pw = w
	}
}

// pollWait waits on the poller, if the connection has one, until the
// next request's bytes arrive or the read deadline setReadDeadline(timeout)
// set passes (timeout 0: none); the read that follows then finds them, or
// fails as it would have.
func (c *conn) pollWait(timeout time.Duration) {
	if c.pw == nil {
		return
	}
	var d time.Time
	if timeout > 0 {
		if d = c.readIdle.At(); d.IsZero() {
			d = time.Now().Add(timeout)
		}
	}
	c.pw.Wait(d)
}

// pollWake ends a poller wait, for good (the connection is being closed).
func (c *conn) pollWake() {
	if c.pw != nil {
		c.pw.Wake()
	}
}

// pollUnregister removes the connection from the poller (again: nothing).
func (c *conn) pollUnregister() {
	if c.pw != nil {
		c.pw.Unregister()
	}
}
