package h1test

import (
	"net"
	"sync/atomic"

	"github.com/cellar-cache/cellar/internal/h1"
)

// WriteCounter wraps the connections a listener accepts, as a connection
// limit does, and counts the calls that write to them: Write, and, when
// Vectored, WriteBuffers (passed down with h1.WriteBuffers, so that the
// engine's writev reaches the socket). Set Listener before serving.
type WriteCounter struct {
	net.Listener
	Vectored        bool
	writes, writevs atomic.Int64
}

// Counts returns the Write and WriteBuffers calls made so far.
func (l *WriteCounter) Counts() (writes, writevs int64) {
	return l.writes.Load(), l.writevs.Load()
}

func (l *WriteCounter) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	if l.Vectored {
		return &vectoredConn{countedConn{c, l}}, nil
	}
	return &countedConn{c, l}, nil
}

type countedConn struct {
	net.Conn
	l *WriteCounter
}

func (c *countedConn) Write(p []byte) (int, error) {
	c.l.writes.Add(1)
	return c.Conn.Write(p)
}

type vectoredConn struct{ countedConn }

func (c *vectoredConn) WriteBuffers(v *net.Buffers) (int64, error) {
	c.l.writevs.Add(1)
	return h1.WriteBuffers(c.Conn, v)
}
