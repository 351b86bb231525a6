package h1

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cellar-cache/cellar/internal/deadline"
	"github.com/cellar-cache/cellar/internal/poller"
)

// A connection's state, for Shutdown: only an idle one (its responses
// written, waiting for a request, nothing read of it) may be closed under
// it, and a new one only once it has waited newConnGrace for its first
// request.
const (
	stateActive int32 = iota
	stateIdle
	stateNew     // accepted, its first request not yet begun
	stateClosing // closed by Shutdown or Close
	stateHijacked
)

// newConnGrace is how long Shutdown leaves a new connection to send its
// first request (net/http's Shutdown gives a StateNew connection as long):
// a client that connected just before a reload still gets its answer.
const newConnGrace = 5 * time.Second

// Buffer sizes: a request header of the usual size fits in the read
// buffer, and a batch of small responses in the write buffer.
const (
	readBufSize  = 4 << 10
	writeBufSize = 8 << 10
	// preBufSize is how much body a handler may write before the response
	// header is sent while its length is still unknown: a handler that
	// ends within it gets a Content-Length instead of chunked framing.
	preBufSize = 2 << 10
	// maxDrain is how much of a request body the handler left unread is
	// read and dropped so that the connection can serve another request.
	maxDrain = 256 << 10
)

// aLongTimeAgo is a deadline that interrupts a blocked read at once.
var aLongTimeAgo = time.Unix(1, 0)

// conn is one client connection.
type conn struct {
	srv    *Server
	rwc    net.Conn
	ctx    context.Context // the connection's (ConnContext's) values
	remote string
	tls    *tls.ConnectionState // of a TLS connection, shared by its requests
	state  atomic.Int32
	born   time.Time // when it was accepted

	// The read buffer: buf[r:w] is read and not yet consumed.
	buf  []byte
	r, w int

	out []byte // response bytes not yet written to rwc

	// writev writes out and a large body in one writev(2) (see
	// buffersWriter); nil: in two writes. vec and iov are its argument,
	// kept here so that a call allocates nothing.
	writev func(*net.Buffers) (int64, error)
	vec    net.Buffers
	iov    [2][]byte

	req  requestParser // the request being read
	resp response      // reused: a ResponseWriter is only valid in its ServeHTTP call

	tmpl http.Request // the fields shared by every request of the connection

	// The request being served and the one released for reuse (reuse.go).
	cur, spare         *perRequest
	curVals, spareVals []string
	released           bool // the handler called ReleaseRequest

	broken bool // the connection cannot serve another request (set by the serving goroutine)

	// readIdle is the idle read deadline setReadDeadline moves; reset when
	// the deadline is set otherwise.
	readIdle deadline.Lazy

	bg backgroundRead
	pw *poller.Waiter // the connection's registration with the server's poller, or nil

	wmu         sync.Mutex  // orders a 100 Continue written by a body reader with flushes
	canContinue atomic.Bool // a 100 Continue may still be sent
}

func newConn(s *Server, rw net.Conn) *conn {
	c := &conn{srv: s, rwc: rw, buf: make([]byte, readBufSize), out: make([]byte, 0, writeBufSize)}
	switch w := rw.(type) {
	case buffersWriter:
		c.writev = w.WriteBuffers
	case *net.TCPConn:
		c.writev = func(v *net.Buffers) (int64, error) { return v.WriteTo(w) }
	}
	c.resp.c = c
	c.resp.h = make(http.Header, 8)
	c.req.c = c
	c.state.Store(stateNew)
	c.born = time.Now()
	c.pollRegister()
	return c
}

func (c *conn) setState(st http.ConnState) {
	if hook := c.srv.cfg.ConnState; hook != nil {
		hook(c.rwc, st)
	}
}

// serve reads and answers requests until the client closes the
// connection, a request asks to close it, an error, or shutdown.
func (c *conn) serve() {
	defer func() {
		if v := recover(); v != nil && v != http.ErrAbortHandler {
			buf := make([]byte, 64<<10)
			buf = buf[:runtime.Stack(buf, false)]
			c.srv.logf("h1: panic serving %v: %v\n%s", c.remote, v, buf)
		}
		c.pollUnregister()
		if !c.resp.hijacked {
			c.rwc.Close()
			c.setState(http.StateClosed)
		}
		c.srv.removeConn(c)
	}()
	// In the connection's goroutine: a PROXY protocol connection reads
	// its header to know the address (listen's proxyConn).
	if ra := c.rwc.RemoteAddr(); ra != nil {
		c.remote = ra.String()
	}
	if tc, ok := c.rwc.(*tls.Conn); ok {
		st := tc.ConnectionState()
		c.tls = &st
	}
	first := true
	for {
		if !c.nextRequest(first) {
			return
		}
		first = false
		if c.resp.hijacked {
			return
		}
		if c.broken || c.srv.closing.Load() {
			c.flush()
			return
		}
	}
}

// nextRequest reads one request and serves it; it reports whether the
// connection may serve another.
func (c *conn) nextRequest(first bool) bool {
	// Wait for the request's first bytes: idle, unless they are here.
	if c.r == c.w {
		if !c.flush() {
			return false
		}
		c.shrink()
		timeout := c.srv.idleTimeout()
		if first {
			timeout = c.srv.headerTimeout()
		}
		c.setReadDeadline(timeout)
		if !first {
			// Idle only now that its responses are written: Shutdown
			// closes an idle connection at once, and one marked idle
			// with its last response still in c.out lost that response.
			c.state.CompareAndSwap(stateActive, stateIdle)
			c.setState(http.StateIdle)
			c.pollWait(timeout)
		}
		if err := c.fill(); err != nil {
			return false
		}
		from := stateIdle
		if first {
			from = stateNew
		}
		if !c.state.CompareAndSwap(from, stateActive) {
			return false // Shutdown closed it
		}
		c.setState(http.StateActive)
		// The header must then arrive within ReadHeaderTimeout.
		if !c.headerComplete() {
			c.setReadDeadline(c.srv.headerTimeout())
		}
	} else {
		if st := c.state.Load(); (st == stateIdle || st == stateNew) && !c.state.CompareAndSwap(st, stateActive) {
			return false
		}
		if !c.headerComplete() {
			c.setReadDeadline(c.srv.headerTimeout())
		}
	}
	r, perr := c.req.read()
	if perr != nil {
		c.reject(perr)
		return false
	}
	if wt := c.srv.cfg.WriteTimeout; wt > 0 {
		c.rwc.SetWriteDeadline(time.Now().Add(wt))
	}
	c.serveRequest(r)
	return !c.resp.hijacked
}

// setReadDeadline bounds the next reads by d from now; 0: none. One set
// for the same d less than a quarter of d ago is kept (deadline.Lazy).
func (c *conn) setReadDeadline(d time.Duration) {
	if d <= 0 {
		c.setReadDeadlineAt(time.Time{})
		return
	}
	if t, ok := c.readIdle.Due(d); ok {
		c.rwc.SetReadDeadline(t)
	}
}

// setReadDeadlineAt sets the read deadline to t. Call it, never
// rwc.SetReadDeadline, from the serving goroutine or its handler, so that
// setReadDeadline knows the deadline changed.
func (c *conn) setReadDeadlineAt(t time.Time) {
	c.readIdle.Reset()
	c.rwc.SetReadDeadline(t)
}

// serveRequest runs the handler for r and completes the response.
func (c *conn) serveRequest(r *http.Request) {
	w := &c.resp
	w.reset(r, &c.req)
	c.bg.begin(c, c.req.ctx)
	func() {
		defer func() {
			if v := recover(); v != nil {
				// Like net/http: the response is cut short and the
				// connection closed.
				c.bg.stop(c)
				c.req.ctx.cancel(context.Canceled)
				c.broken = true
				if !w.hijacked {
					c.flush() // the responses before, and what was sent of this one
				}
				panic(v)
			}
		}()
		h := c.srv.cfg.Handler
		if r.RequestURI == "*" && r.Method == "OPTIONS" && !c.srv.cfg.DisableGeneralOptionsHandler {
			h = globalOptions // as net/http answers it
		}
		h.ServeHTTP(w, r)
	}()
	if w.hijacked {
		c.req.ctx.cancel(context.Canceled)
		return
	}
	w.finish()
	c.bg.stop(c)
	c.req.ctx.cancel(context.Canceled)
	if c.bg.gone {
		c.broken = true
	}
	c.recycle()
	c.req.finish()
	if w.closeAfter {
		c.broken = true
	}
}

// globalOptions answers "OPTIONS *" (RFC 9110 §9.3.7) as net/http's server
// does unless DisableGeneralOptionsHandler is set: 200, no body.
var globalOptions = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Length", "0")
})

// headerComplete reports whether the buffer holds a whole request header.
func (c *conn) headerComplete() bool {
	b := c.buf[c.r:c.w]
	return bytes.Contains(b, []byte("\n\r\n")) || bytes.Contains(b, []byte("\n\n"))
}

// fill reads more bytes into the buffer, making room first; it fails when
// the buffer is at its limit or the read fails.
func (c *conn) fill() error {
	if c.w == len(c.buf) {
		if c.r > 0 {
			c.compact()
		} else {
			return errBufferFull
		}
	}
	n, err := c.rwc.Read(c.buf[c.w:])
	c.w += n
	if n > 0 {
		return nil
	}
	if err == nil {
		err = io.ErrNoProgress
	}
	return err
}

var errBufferFull = errors.New("h1: buffer full")

// compact moves the unread bytes to the start of the buffer.
func (c *conn) compact() {
	n := copy(c.buf, c.buf[c.r:c.w])
	c.r, c.w = 0, n
}

// grow makes the buffer hold up to n bytes.
func (c *conn) grow(n int) {
	if n <= len(c.buf) {
		return
	}
	nb := make([]byte, n)
	copy(nb, c.buf[c.r:c.w])
	c.buf, c.r, c.w = nb, 0, c.w-c.r
}

// shrink returns an empty buffer grown for a big header to its usual
// size.
func (c *conn) shrink() {
	c.r, c.w = 0, 0
	if len(c.buf) > readBufSize {
		c.buf = make([]byte, readBufSize)
	}
	if cap(c.out) > 4*writeBufSize {
		c.out = make([]byte, 0, writeBufSize)
	}
}

// flush writes the buffered response bytes; it reports success.
func (c *conn) flush() bool {
	if len(c.out) == 0 {
		return true
	}
	c.wmu.Lock()
	_, err := c.rwc.Write(c.out)
	c.wmu.Unlock()
	c.out = c.out[:0]
	if err != nil {
		c.broken = true
		return false
	}
	return true
}

// buffersWriter is a connection that writes a net.Buffers as its WriteTo
// does, in one writev(2) on a TCP connection. A net.Conn wrapper (a
// connection limit, the PROXY protocol) implements it with WriteBuffers,
// so that the engine's writev, which net.Buffers only makes on net's own
// types, still reaches the socket through it.
type buffersWriter interface {
	WriteBuffers(v *net.Buffers) (int64, error)
}

// WriteBuffers writes v to c, the connection a wrapper wraps: with c's
// own WriteBuffers when it has one, else as v.WriteTo(c) does (one
// writev(2) on a *net.TCPConn, one Write per buffer on other types).
func WriteBuffers(c net.Conn, v *net.Buffers) (int64, error) {
	if bw, ok := c.(buffersWriter); ok {
		return bw.WriteBuffers(v)
	}
	return v.WriteTo(c)
}

// write sends p after the buffered bytes: through the buffer when small,
// else both in one writev(2) when the connection can.
func (c *conn) write(p []byte) error {
	if len(c.out)+len(p) <= cap(c.out) {
		c.out = append(c.out, p...)
		return nil
	}
	if len(c.out) > 0 && c.writev != nil {
		c.iov = [2][]byte{c.out, p}
		c.vec = c.iov[:]
		c.wmu.Lock()
		_, err := c.writev(&c.vec)
		c.wmu.Unlock()
		c.iov, c.vec = [2][]byte{}, nil
		c.out = c.out[:0]
		if err != nil {
			c.broken = true
			return err
		}
		return nil
	}
	if len(c.out) > 0 && len(p) < cap(c.out)/2 {
		// Top up one buffer's worth and send it; the rest is buffered.
		n := copy(c.out[len(c.out):cap(c.out)], p)
		c.out = c.out[:cap(c.out)]
		p = p[n:]
		if !c.flush() {
			return errWrite
		}
		c.out = append(c.out, p...)
		return nil
	}
	if !c.flush() {
		return errWrite
	}
	c.wmu.Lock()
	_, err := c.rwc.Write(p)
	c.wmu.Unlock()
	if err != nil {
		c.broken = true
		return err
	}
	return nil
}

var errWrite = errors.New("h1: write to the client failed")

// reject answers a request that could not be read with its error status,
// unless the client sent nothing or went away.
func (c *conn) reject(err error) {
	var pe *parseError
	if !errors.As(err, &pe) {
		c.flush()
		return
	}
	text := http.StatusText(pe.status)
	c.out = fmt.Appendf(c.out, "HTTP/1.1 %d %s\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%d %s: %s",
		pe.status, text, len(text)+len(pe.msg)+6, pe.status, text, pe.msg)
	c.flush()
	// Let the client read the answer before the close resets it.
	if tc, ok := c.rwc.(interface{ CloseWrite() error }); ok {
		tc.CloseWrite()
		c.setReadDeadlineAt(time.Now().Add(500 * time.Millisecond))
		io.Copy(io.Discard, io.LimitReader(c.rwc, 256<<10))
	}
}

// backgroundRead watches the connection while a handler runs, so that the
// request's context ends when the client goes away. It starts only once
// the context's Done channel is asked for and the request body has been
// read: a request served without either costs no goroutine.
type backgroundRead struct {
	mu       sync.Mutex // protects the fields below
	ctx      *requestContext
	want     bool // Done was asked for before the body was read
	bodyDone bool
	running  bool
	aborted  bool
	done     chan struct{} // closed when the read has returned
	gone     bool          // the client closed or reset the connection
}

func (b *backgroundRead) begin(c *conn, ctx *requestContext) {
	b.mu.Lock()
	b.ctx, b.want, b.running, b.aborted, b.gone = ctx, false, false, false, false
	b.bodyDone = c.req.bodyLen == 0
	b.mu.Unlock()
}

// watch is called when the request's Done channel is first asked for.
func (b *backgroundRead) watch(c *conn, ctx *requestContext) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.ctx != ctx || b.running {
		return
	}
	if !b.bodyDone {
		b.want = true
		return
	}
	b.startLocked(c)
}

// bodyRead is called when the request body has been read to its end.
func (b *backgroundRead) bodyRead(c *conn) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.bodyDone = true
	if b.want && !b.running {
		b.startLocked(c)
	}
}

func (b *backgroundRead) startLocked(c *conn) {
	if c.r == c.w {
		c.r, c.w = 0, 0
	} else if c.w == len(c.buf) {
		if c.r == 0 {
			return // a full buffer of pipelined requests: nothing to watch
		}
		c.compact()
	}
	b.running = true
	b.done = make(chan struct{})
	ctx := b.ctx
	// Cleared here, under mu, so that stop's deadline comes after; stop,
	// in the serving goroutine, tells setReadDeadline (c.readIdle).
	c.rwc.SetReadDeadline(time.Time{})
	go func() {
		defer close(b.done)
		n, err := c.rwc.Read(c.buf[c.w:])
		b.mu.Lock()
		defer b.mu.Unlock()
		c.w += n
		if n == 0 && err != nil && !b.aborted {
			var ne net.Error
			if !(errors.As(err, &ne) && ne.Timeout()) {
				b.gone = true
				ctx.cancel(context.Canceled)
			}
		}
	}()
}

// stop ends a background read and waits for it.
func (b *backgroundRead) stop(c *conn) {
	b.mu.Lock()
	b.ctx = nil
	if !b.running {
		b.mu.Unlock()
		return
	}
	b.running = false
	b.aborted = true
	done := b.done
	c.rwc.SetReadDeadline(aLongTimeAgo)
	b.mu.Unlock()
	<-done
	c.setReadDeadlineAt(time.Time{})
}

// requestContext is a request's context: the connection's values,
// cancelled when the handler returns or, once its Done channel has been
// asked for, when the client goes away.
type requestContext struct {
	context.Context // the connection's
	c               *conn
	mu              sync.Mutex // protects done, err
	done            chan struct{}
	err             error
}

func (x *requestContext) Done() <-chan struct{} {
	x.mu.Lock()
	if x.done != nil {
		d := x.done
		x.mu.Unlock()
		return d
	}
	x.done = make(chan struct{})
	d := x.done
	if x.err != nil {
		close(x.done)
		x.mu.Unlock()
		return d
	}
	x.mu.Unlock()
	x.c.bg.watch(x.c, x)
	return d
}

func (x *requestContext) Err() error {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.err
}

func (x *requestContext) cancel(err error) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.err != nil {
		return
	}
	x.err = err
	if x.done != nil {
		close(x.done)
	}
}

func (x *requestContext) String() string { return "h1.requestContext" }
