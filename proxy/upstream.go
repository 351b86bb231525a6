package proxy

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"
	"time"
)

// pool is the set of origins a Server forwards to, grouped in sites that
// requests are routed to by Host and path prefix: round robin over a site's
// healthy origins. An origin that refuses a connection is marked down for
// a cooldown (passive health checking); with a health-check path, every
// origin is also probed on an interval (active checking). When all of a
// site's origins are down, they are all tried again in turn rather than
// failing outright.
type pool struct {
	sites    []*site              // routed sites in order; the last is the default
	byHost   map[string]*upstream // every origin once, by host:port
	tr       *http.Transport
	cooldown time.Duration
	now      func() time.Time
}

// site is one routing target: the requests whose Host and path match it,
// and its origins.
type site struct {
	hosts   []string // lowercased hosts (ports ignored); "*.example.com" matches subdomains; empty: any host
	prefix  string   // path prefix; "" matches every path
	origins []*upstream
	next    atomic.Uint64 // round-robin cursor
}

// upstream is one origin and its health.
type upstream struct {
	url       *url.URL
	downUntil atomic.Int64 // unix nanoseconds; zero or past: healthy
}

func (u *upstream) healthy(now time.Time) bool { return u.downUntil.Load() <= now.UnixNano() }

// newPool returns a pool routing the given sites, then everything else to
// the default origins. All URLs were validated.
func newPool(sites []Site, defaults []string, tr *http.Transport, cooldown time.Duration) *pool {
	p := &pool{tr: tr, cooldown: cooldown, now: time.Now, byHost: map[string]*upstream{}}
	ups := func(raws []string) []*upstream {
		var out []*upstream
		for _, raw := range raws {
			u, _ := parseOrigin(raw)
			if _, ok := p.byHost[u.Host]; !ok {
				p.byHost[u.Host] = &upstream{url: u}
			}
			out = append(out, p.byHost[u.Host])
		}
		return out
	}
	for _, st := range sites {
		var hosts []string
		for _, h := range st.Hosts {
			hosts = append(hosts, strings.ToLower(h))
		}
		p.sites = append(p.sites, &site{hosts: hosts, prefix: st.PathPrefix, origins: ups(st.Origins)})
	}
	p.sites = append(p.sites, &site{origins: ups(defaults)})
	return p
}

// route returns the first site matching r's Host and path.
func (p *pool) route(r *http.Request) *site {
	if len(p.sites) == 1 {
		return p.sites[0]
	}
	host := strings.ToLower(r.Host)
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	for _, st := range p.sites {
		if st.matches(host, r.URL.Path) {
			return st
		}
	}
	return p.sites[len(p.sites)-1]
}

func (st *site) matches(host, path string) bool {
	if !strings.HasPrefix(path, st.prefix) {
		return false
	}
	if len(st.hosts) == 0 {
		return true
	}
	for _, h := range st.hosts {
		if h == host || strings.HasPrefix(h, "*.") && strings.HasSuffix(host, h[1:]) {
			return true
		}
	}
	return false
}

// pick returns the site's next healthy origin, round robin.
func (st *site) pick(now time.Time) *url.URL {
	n := uint64(len(st.origins))
	if n == 1 {
		return st.origins[0].url
	}
	start := st.next.Add(1) - 1
	for i := range n {
		if u := st.origins[(start+i)%n]; u.healthy(now) {
			return u.url
		}
	}
	return st.origins[start%n].url // all down: keep trying them in turn
}

// pick returns the origin for r.
func (p *pool) pick(r *http.Request) *url.URL { return p.route(r).pick(p.now()) }

// RoundTrip sends req to the origin its URL names. A connection failure
// marks that origin down; an idempotent request without a body is then
// retried once on another healthy origin.
func (p *pool) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := p.tr.RoundTrip(req)
	if err == nil || !connectFailure(req, err) {
		return resp, err
	}
	u := p.byHost[req.URL.Host]
	if u == nil {
		return nil, err
	}
	u.downUntil.Store(p.now().Add(p.cooldown).UnixNano())
	if req.Body != nil && req.Body != http.NoBody || !idempotent(req.Method) {
		return nil, err
	}
	st := p.siteOf(u)
	if st == nil {
		return nil, err
	}
	next := st.pick(p.now())
	if next.Host == u.url.Host {
		return nil, err
	}
	retry := req.Clone(req.Context())
	retry.URL.Scheme, retry.URL.Host = next.Scheme, next.Host
	resp, err = p.tr.RoundTrip(retry) // once: no ping-pong between dead origins
	if err != nil && connectFailure(retry, err) {
		p.byHost[next.Host].downUntil.Store(p.now().Add(p.cooldown).UnixNano())
	}
	return resp, err
}

// siteOf returns the first site that u serves.
func (p *pool) siteOf(u *upstream) *site {
	for _, st := range p.sites {
		if slices.Contains(st.origins, u) {
			return st
		}
	}
	return nil
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
		for _, u := range p.byHost {
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
