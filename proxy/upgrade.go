package proxy

import (
	"bufio"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cellar-cache/cellar/cache"
	"github.com/cellar-cache/cellar/internal/httpheader"
)

// isUpgrade reports whether r asks to switch protocols (RFC 9110 §7.8): a
// Connection field naming "upgrade" and an Upgrade field. Such a request is
// tunnelled, never cached or coalesced. An upgrade to h2c is not: a tunnel
// of HTTP/2 to the origin would carry requests that cellar never sees ("h2c
// smuggling"); it is served as a plain request, its Upgrade field removed
// as hop-by-hop.
func isUpgrade(r *http.Request) bool {
	up := headerValue(r.Header, "Upgrade") // canonical: no Get's canonicalization per request
	if up == "" || strings.EqualFold(strings.TrimSpace(up), "h2c") {
		return false
	}
	for _, f := range httpheader.ConnectionFields(r.Header) {
		if strings.EqualFold(f, "upgrade") {
			return true
		}
	}
	return false
}

// tunnel forwards an upgrade request to the origin. When the origin answers
// 101 Switching Protocols, the reverse proxy hijacks the client connection
// and copies both directions until either side closes or the tunnel has been
// idle for TunnelIdleTimeout; any other answer is passed on like a forwarded
// response.
func (s *Server) tunnel(w http.ResponseWriter, r *http.Request) {
	s.metrics.passes.Inc()
	rec, _ := w.(*recorder) // nil without an access log
	s.forwardCacheable(&tunnelWriter{ResponseWriter: w, s: s, rec: rec}, r, cache.Status{Fwd: "bypass", Detail: "upgrade"})
}

// tunnelWriter hands the reverse proxy a client connection that counts as an
// open tunnel and closes itself after the idle timeout.
type tunnelWriter struct {
	http.ResponseWriter
	s   *Server
	rec *recorder // the access line, credited with the tunnel's bytes to the client; nil: none
}

// Unwrap lets http.ResponseController reach the writers below (Flush).
func (tw *tunnelWriter) Unwrap() http.ResponseWriter { return tw.ResponseWriter }

// Hijack is called by the reverse proxy once the origin agreed to switch
// protocols.
func (tw *tunnelWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, brw, err := http.NewResponseController(tw.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err
	}
	// The server's read and write deadlines of the request phase no longer
	// apply: the idle timer below bounds the tunnel.
	c.SetDeadline(time.Time{})
	tc := tw.s.openTunnel(c)
	if tw.rec != nil {
		// Close runs before the handler returns (the reverse proxy defers
		// it), and closeOnce orders it before the access line is written.
		tc.closed = func(sent int64) { tw.rec.bytes += sent }
	}
	return tc, brw, nil
}

// openTunnel wraps c, the client's side of a tunnel, so that it is counted
// in the open-tunnels gauge until closed and closed once nothing has been
// read or written for the idle timeout. The reverse proxy closes the
// origin's side when the client's side fails.
func (s *Server) openTunnel(c net.Conn) *tunnelConn {
	s.metrics.tunnels.Inc()
	s.metrics.openTunnels.Inc()
	tc := &tunnelConn{Conn: c, idle: s.opts.TunnelIdleTimeout, gauge: s.metrics.openTunnels.Dec}
	tc.touch()
	// Armed only once assigned: expire reads c.timer.
	tc.timer = time.AfterFunc(time.Hour, tc.expire)
	tc.timer.Reset(tc.idle)
	return tc
}

// tunnelConn is the client side of an open tunnel.
type tunnelConn struct {
	net.Conn
	idle      time.Duration
	gauge     func()           // decrements the open-tunnels gauge, once
	closed    func(sent int64) // when set, called once on close with the bytes written to the client
	sent      atomic.Int64     // bytes written to the client
	last      atomic.Int64     // unix nanoseconds of the last read or write
	timer     *time.Timer
	done      atomic.Bool
	closeOnce sync.Once
}

func (c *tunnelConn) touch() { c.last.Store(time.Now().UnixNano()) }

// expire closes the tunnel if it has been idle for the timeout, or checks
// again when it would be.
func (c *tunnelConn) expire() {
	if c.done.Load() {
		return
	}
	idleFor := time.Since(time.Unix(0, c.last.Load()))
	if idleFor >= c.idle {
		c.Close()
		return
	}
	c.timer.Reset(c.idle - idleFor)
}

func (c *tunnelConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 {
		c.touch()
	}
	return n, err
}

func (c *tunnelConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	if n > 0 {
		c.touch()
		c.sent.Add(int64(n))
	}
	return n, err
}

// CloseWrite passes the origin's end of stream on to the client (a TCP half
// close), as the reverse proxy does for an unwrapped connection.
func (c *tunnelConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return c.Close()
}

func (c *tunnelConn) Close() error {
	err := c.Conn.Close()
	c.closeOnce.Do(func() {
		c.done.Store(true)
		c.timer.Stop()
		c.gauge()
		if c.closed != nil {
			c.closed(c.sent.Load())
		}
	})
	return err
}
