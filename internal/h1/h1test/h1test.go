// Package h1test starts an httptest.Server whose connections are served
// by cellar's HTTP/1.x engine (internal/h1) instead of net/http, so that
// a test suite written against httptest runs through the engine cellar
// serves with, as cellar serves by default (with its keep-alive poller,
// where epoll exists); WriteCounter counts the writes that reach a listener's
// connections (one writev per response, or not).
package h1test

import (
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"

	"github.com/cellar-cache/cellar/internal/h1"
	"github.com/cellar-cache/cellar/internal/poller"
)

// Start starts ts (unstarted, plain HTTP) so that its Listener is served
// by the engine with ts.Config's settings (after the caller configured
// them) and a poller of its own (package poller; none without epoll);
// net/http serves nothing. ts.URL, ts.Client and ts.Close work as usual:
// Close also closes the engine, its connections and its poller.
func Start(ts *httptest.Server) {
	real := ts.Listener
	f := &front{Listener: real, closed: make(chan struct{})}
	ts.Listener = f
	// Start sets ts.Config.ConnState (it tracks connections, the
	// engine's too); the engine reads the settings after it.
	ts.Start()
	f.s = h1.New(ts.Config)
	if p, err := poller.New(); err == nil {
		f.p = p
		f.s.SetPoller(p)
	}
	go func() {
		if err := f.s.Serve(real); err != nil && !errors.Is(err, http.ErrServerClosed) {
			panic("h1test: " + err.Error())
		}
	}()
}

// front is the listener httptest's own server accepts on: it yields no
// connection, and closing it closes the engine.
type front struct {
	net.Listener // the real one, served by s
	s            *h1.Server
	p            *poller.Poller // s's, or nil
	once         sync.Once
	closed       chan struct{}
}

func (f *front) Accept() (net.Conn, error) {
	<-f.closed
	return nil, net.ErrClosed
}

func (f *front) Close() error {
	f.once.Do(func() {
		close(f.closed)
		// Not waiting for Serve to return: httptest's Close calls this
		// with a lock that the engine's ConnState hook takes.
		f.s.Close()
		if f.p != nil {
			f.p.Close() // wakes what still waits on it
		}
	})
	return nil
}
