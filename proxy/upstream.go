package proxy

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/url"
	"sync/atomic"
	"time"
)

// pool is the set of origins a Server forwards to: round robin over the
// healthy ones. An origin that refuses or drops a connection is marked down
// for a cooldown (passive health checking); with a health-check path, each
// origin is also probed on an interval (active checking). When every
// origin is down, all of them are tried again rather than failing outright.
type pool struct {
	origins  []*upstream
	next     atomic.Uint64 // round-robin cursor
	tr       *http.Transport
	cooldown time.Duration
	now      func() time.Time
}

// upstream is one origin and its health.
type upstream struct {
	url       *url.URL
	downUntil atomic.Int64 // unix nanoseconds; zero or past: healthy
}

func (u *upstream) healthy(now time.Time) bool { return u.downUntil.Load() <= now.UnixNano() }

// newPool returns a pool over the origins; their URLs were validated.
func newPool(origins []*url.URL, tr *http.Transport, cooldown time.Duration) *pool {
	p := &pool{tr: tr, cooldown: cooldown, now: time.Now}
	for _, u := range origins {
		p.origins = append(p.origins, &upstream{url: u})
	}
	return p
}

// pick returns the next healthy origin, round robin.
func (p *pool) pick() *url.URL {
	n := uint64(len(p.origins))
	if n == 1 {
		return p.origins[0].url
	}
	now := p.now()
	start := p.next.Add(1) - 1
	for i := range n {
		if u := p.origins[(start+i)%n]; u.healthy(now) {
			return u.url
		}
	}
	return p.origins[start%n].url // all down: keep trying them in turn
}

// byHost finds the upstream a request was sent to.
func (p *pool) byHost(host string) *upstream {
	for _, u := range p.origins {
		if u.url.Host == host {
			return u
		}
	}
	return nil
}

// RoundTrip sends req to the origin its URL names. A connection failure
// marks that origin down; an idempotent request without a body is then
// retried once on another healthy origin.
func (p *pool) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := p.tr.RoundTrip(req)
	if err == nil || !connectFailure(req, err) {
		return resp, err
	}
	u := p.byHost(req.URL.Host)
	if u == nil {
		return nil, err
	}
	u.downUntil.Store(p.now().Add(p.cooldown).UnixNano())
	if len(p.origins) == 1 || req.Body != nil && req.Body != http.NoBody || !idempotent(req.Method) {
		return nil, err
	}
	next := p.pick()
	if next.Host == u.url.Host {
		return nil, err
	}
	retry := req.Clone(req.Context())
	retry.URL.Scheme, retry.URL.Host = next.Scheme, next.Host
	return p.RoundTrip(retry)
}

// CloseIdleConnections closes the idle upstream connections.
func (p *pool) CloseIdleConnections() { p.tr.CloseIdleConnections() }

// connectFailure reports whether err means the origin could not be
// reached (as opposed to the request's own context ending).
func connectFailure(req *http.Request, err error) bool {
	if req.Context().Err() != nil {
		return false
	}
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

func idempotent(m string) bool {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace, http.MethodPut, http.MethodDelete:
		return true
	}
	return false
}

// checkHealth probes every origin's path each interval until ctx ends: a
// 2xx or 3xx answer marks it up, anything else down until the next probe.
func (p *pool) checkHealth(ctx context.Context, path string, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	client := &http.Client{Transport: p.tr, Timeout: interval, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for {
		for _, u := range p.origins {
			up := false
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.url.String()+path, nil)
			if err == nil {
				if resp, err := client.Do(req); err == nil {
					drain(resp)
					up = resp.StatusCode < 400
				}
			}
			if ctx.Err() != nil {
				return
			}
			if up {
				u.downUntil.Store(0)
			} else {
				u.downUntil.Store(p.now().Add(interval + p.cooldown).UnixNano())
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
