package proxy

import (
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"sync"
	"time"
)

// clientBody is a forwarded request's body as the proxy reads it from the
// client: each Read must make progress within the client body timeout
// (an idle-progress timeout, so long uploads are not capped), the body
// may not grow past Limits.MaxBody, and a read that fails through the
// client's fault (a malformed chunked body, a stall, too many bytes) is
// remembered, so that the failed request is answered 400, 408 or 413
// instead of being blamed on the origin.
type clientBody struct {
	rc   io.ReadCloser
	ctl  *http.ResponseController
	idle time.Duration // 0: no timeout
	max  int64         // 0: no limit
	n    int64         // bytes read; only the reader touches it

	mu     sync.Mutex // protects status
	status int        // the client's fault: 400, 408 or 413; 0 if none
}

// errBodyTooLarge fails a request body longer than Limits.MaxBody.
var errBodyTooLarge = errors.New("proxy: request body larger than the limit")

// clientBodyKey is the context key of a request's clientBody: net/http's
// ReverseProxy replaces the request's Body with its own wrapper.
type clientBodyKey struct{}

// wrapBody puts a clientBody around r's body when it has one and a
// timeout or size limit applies, and returns r with it in its context.
func (s *Server) wrapBody(w http.ResponseWriter, r *http.Request) *http.Request {
	if r.Body == nil || r.Body == http.NoBody || r.ContentLength == 0 {
		return r
	}
	idle, max := s.opts.ClientBodyTimeout, s.opts.Limits.MaxBody
	if idle <= 0 && max <= 0 {
		return r
	}
	b := &clientBody{rc: r.Body, ctl: http.NewResponseController(w), idle: max0(idle), max: max0(max)}
	r = r.WithContext(context.WithValue(r.Context(), clientBodyKey{}, b))
	r.Body = b
	return r
}

func max0[T int64 | time.Duration](v T) T { return max(v, 0) }

func (b *clientBody) Read(p []byte) (int, error) {
	if b.idle > 0 {
		b.ctl.SetReadDeadline(time.Now().Add(b.idle))
	}
	n, err := b.rc.Read(p)
	b.n += int64(n)
	if b.max > 0 && b.n > b.max {
		n -= int(b.n - b.max)
		b.n = b.max
		err = errBodyTooLarge
	}
	if err != nil {
		if b.idle > 0 {
			// Done with the body: net/http's own background read of the
			// connection must not inherit our deadline.
			b.ctl.SetReadDeadline(time.Time{})
		}
		if err != io.EOF {
			b.blame(err)
		}
	}
	return n, err
}

func (b *clientBody) Close() error { return b.rc.Close() }

// blame records the status that answers a body read that failed with err.
func (b *clientBody) blame(err error) {
	code := http.StatusBadRequest // malformed framing, or the client hung up
	switch {
	case errors.Is(err, errBodyTooLarge):
		code = http.StatusRequestEntityTooLarge
	case errors.Is(err, os.ErrDeadlineExceeded):
		code = http.StatusRequestTimeout
	}
	b.mu.Lock()
	if b.status == 0 {
		b.status = code
	}
	b.mu.Unlock()
}

// failure is the status that blames the client for a failed forward, or 0
// when the body read fine.
func (b *clientBody) failure() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.status
}

// clientFailure is the status blaming r's client for a failed forward
// (see clientBody), or 0.
func clientFailure(r *http.Request) int {
	if b, ok := r.Context().Value(clientBodyKey{}).(*clientBody); ok {
		return b.failure()
	}
	return 0
}
