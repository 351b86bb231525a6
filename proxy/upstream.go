package proxy

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/prometheus/client_golang/prometheus"
)

// pool is the set of origins a Server forwards to, grouped in sites that
// requests are routed to by Host and path prefix. Each site chooses among
// its usable origins with its balance policy (balance.go); backup origins
// are used only while all the others are down. A failed attempt (connection
// error, timeout, retried status) counts against the origin, and MaxFails
// in a row mark it down for the cooldown (passive health checking); with a
// health-check path, every origin is also probed on an interval (active
// checking). When all of a site's origins are down, they are all tried
// again rather than failing outright. pool is the http.RoundTripper of
// every origin request; it retries on another origin as Options.Retries
// says.
type pool struct {
	sites    []*site              // routed sites in order; the last is the default
	byHost   map[string]*upstream // every origin once, by host:port
	retries  Retries
	statuses map[int]bool // retries.Statuses
	maxFails int32
	cooldown time.Duration
	retried  prometheus.Counter // attempts after the first
	now      func() time.Time
	// observe, when set, is told each attempt's time to the response
	// header, or its failure, by origin host.
	observe func(host string, d time.Duration, err error)
}

// site is one routing target: the requests whose Host and path match it,
// and its origins.
type site struct {
	hosts   []string // lowercased hosts (ports ignored); "*.example.com" matches subdomains; empty: any host
	prefix  string   // path prefix; "" matches every path
	primary []candidate
	backup  []candidate
	policy  selector
	headers HeaderRewrite
}

// upstream is one origin, its connections and its health.
type upstream struct {
	url       *url.URL
	seed      uint64          // hash of url.Host, for rendezvous hashing (balance.go)
	tr        *http.Transport // its own keep-alive pool and TLS settings
	conns     atomic.Int64    // requests in flight, until their body is closed
	fails     atomic.Int32    // failures in a row
	downUntil atomic.Int64    // unix nanoseconds; zero or past: healthy
}

func (u *upstream) healthy(now time.Time) bool { return u.downUntil.Load() <= now.UnixNano() }

// newPool returns a pool routing opts.Sites, then everything else to the
// default origins. base is copied for each origin's transport. All URLs
// were validated; a CA file that does not load is an error.
func newPool(opts *Options, base *http.Transport, retried prometheus.Counter) (*pool, error) {
	p := &pool{
		byHost:   map[string]*upstream{},
		retries:  opts.Retries,
		statuses: map[int]bool{},
		maxFails: int32(opts.MaxFails),
		cooldown: opts.FailCooldown,
		retried:  retried,
		now:      time.Now,
	}
	for _, code := range opts.Retries.Statuses {
		p.statuses[code] = true
	}
	var errs []error
	add := func(st *site, origins []string, more []Origin) {
		var all []Origin
		for _, raw := range origins {
			all = append(all, Origin{URL: raw})
		}
		for _, o := range append(all, more...) {
			u, err := p.upstream(o, base, opts.MaxIdleConnsPerHost)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			c := candidate{u: u, weight: max(o.Weight, 1)}
			if o.Backup {
				st.backup = append(st.backup, c)
			} else {
				st.primary = append(st.primary, c)
			}
		}
	}
	for _, cfg := range opts.Sites {
		st := &site{prefix: cfg.PathPrefix, policy: newSelector(cfg.Balance), headers: cfg.Headers}
		for _, h := range cfg.Hosts {
			st.hosts = append(st.hosts, strings.ToLower(h))
		}
		add(st, cfg.Origins, cfg.Pool)
		p.sites = append(p.sites, st)
	}
	def := &site{policy: newSelector(opts.Balance), headers: opts.Headers}
	add(def, opts.Origins, opts.Pool)
	p.sites = append(p.sites, def)
	return p, errors.Join(errs...)
}

// upstream returns the origin o names, made on first use. An origin named
// in several pools shares its connections and health; the first mention's
// connection settings apply.
func (p *pool) upstream(o Origin, base *http.Transport, idle int) (*upstream, error) {
	u, _ := parseOrigin(o.URL)
	if up, ok := p.byHost[u.Host]; ok {
		return up, nil
	}
	tr := base.Clone()
	if o.MaxIdleConns > 0 {
		idle = o.MaxIdleConns
	}
	tr.MaxIdleConnsPerHost, tr.MaxIdleConns = idle, idle
	if u.Scheme == "https" {
		tc := &tls.Config{ServerName: o.ServerName, InsecureSkipVerify: o.InsecureSkipVerify, MinVersion: tls.VersionTLS12}
		if o.CAFile != "" {
			pem, err := os.ReadFile(o.CAFile)
			if err != nil {
				return nil, fmt.Errorf("proxy: origin %s: ca_file: %w", o.URL, err)
			}
			tc.RootCAs = x509.NewCertPool()
			if !tc.RootCAs.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("proxy: origin %s: ca_file %s: no PEM certificate in it", o.URL, o.CAFile)
			}
		}
		tr.TLSClientConfig = tc
	}
	up := &upstream{url: u, tr: tr, seed: xxhash.Sum64String(u.Host)}
	p.byHost[u.Host] = up
	return up, nil
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

// pick chooses the origin for a request with cache key key, skipping those
// already tried: among the healthy primary origins; when none is left,
// among the healthy backups; when none of those either, among all
// untried origins, in case the health marks are out of date. nil: every
// origin was tried.
func (st *site) pick(key string, tried []*upstream, now time.Time) *upstream {
	usable := func(c candidate) bool { return !slices.Contains(tried, c.u) && c.u.healthy(now) }
	untried := func(c candidate) bool { return !slices.Contains(tried, c.u) }
	for _, keep := range []func(candidate) bool{usable, untried} {
		for _, group := range [][]candidate{st.primary, st.backup} {
			var cands []candidate
			for _, c := range group {
				if keep(c) {
					cands = append(cands, c)
				}
			}
			if len(cands) > 0 {
				return st.policy.pick(cands, key)
			}
		}
	}
	return nil
}

// untried reports whether an origin of st has not been tried yet.
func (st *site) untried(tried []*upstream) bool {
	for _, c := range slices.Concat(st.primary, st.backup) {
		if !slices.Contains(tried, c.u) {
			return true
		}
	}
	return false
}

// route is what the pool needs of the client's request to choose the
// origins of an origin request: its site and cache key. rewrite puts it in
// the origin request's context.
type route struct {
	site *site
	key  string
	rec  *recorder // the client request's access line, or nil (accesslog.go)
}

type routeKey struct{}

// RoundTrip sends req to an origin of its route (a request without one, such
// as a health probe, goes to the origin its URL names) and tries again on
// another as p.retries says. The returned response's body holds the
// origin's in-flight count until it is closed.
func (p *pool) RoundTrip(req *http.Request) (*http.Response, error) {
	rt, ok := req.Context().Value(routeKey{}).(*route)
	if !ok {
		u := p.byHost[req.URL.Host]
		if u == nil {
			return nil, fmt.Errorf("proxy: %s is not an origin", req.URL.Host)
		}
		return u.tr.RoundTrip(req)
	}
	start := p.now()
	var tried []*upstream
	for attempt := 1; ; attempt++ {
		u := rt.site.pick(rt.key, tried, p.now())
		if u == nil { // unreachable: the first attempt always has an origin
			return nil, errors.New("proxy: no origin left to try")
		}
		out := req
		if attempt > 1 {
			out = req.Clone(req.Context())
			if req.GetBody != nil {
				body, err := req.GetBody()
				if err != nil {
					return nil, err
				}
				out.Body = body
			}
		}
		out.URL.Scheme, out.URL.Host = u.url.Scheme, u.url.Host
		u.conns.Add(1)
		sent := time.Now()
		resp, err := u.tr.RoundTrip(out)
		if p.observe != nil && req.Context().Err() == nil {
			p.observe(u.url.Host, time.Since(sent), err)
		}
		rt.rec.noteOrigin(u.url.Host, p.now().Sub(start))
		if req.Context().Err() != nil {
			// The client or the fill went away: not the origin's fault.
			return p.hold(u, resp, err)
		}
		if err == nil && !p.statuses[resp.StatusCode] {
			u.fails.Store(0)
			return p.hold(u, resp, nil)
		}
		p.failed(u)
		tried = append(tried, u)
		if attempt >= p.retries.Tries || p.now().Sub(start) >= p.retries.Budget || !replayable(req) ||
			!rt.site.untried(tried) {
			return p.hold(u, resp, err)
		}
		if resp != nil {
			drain(resp)
		}
		u.conns.Add(-1)
		p.retried.Inc()
	}
}

// failed counts a failure of u, marking it down after maxFails in a row.
func (p *pool) failed(u *upstream) {
	if n := u.fails.Add(1); n >= p.maxFails {
		u.fails.Store(0)
		u.downUntil.Store(p.now().Add(p.cooldown).UnixNano())
	}
}

// hold returns resp with a body that releases u's in-flight count when
// closed; without a response the count is released now.
func (p *pool) hold(u *upstream, resp *http.Response, err error) (*http.Response, error) {
	if resp == nil {
		u.conns.Add(-1)
		return nil, err
	}
	resp.Body = &inFlightBody{ReadCloser: resp.Body, u: u}
	return resp, err
}

// inFlightBody is an origin response body that counts as a request in
// flight to its origin until closed. It keeps io.ReadWriteCloser for a
// switch of protocols, whose body is the connection.
type inFlightBody struct {
	io.ReadCloser
	u    *upstream
	done atomic.Bool
}

func (b *inFlightBody) Close() error {
	if b.done.CompareAndSwap(false, true) {
		b.u.conns.Add(-1)
	}
	return b.ReadCloser.Close()
}

// Write passes through to an upgraded connection's body.
func (b *inFlightBody) Write(p []byte) (int, error) {
	if w, ok := b.ReadCloser.(io.Writer); ok {
		return w.Write(p)
	}
	return 0, errors.New("proxy: response body is not writable")
}

// replayable reports whether req may be sent again: an idempotent method
// (RFC 9110 §9.2.2) and a body that is absent or can be produced again.
func replayable(req *http.Request) bool {
	return idempotent(req.Method) && (req.Body == nil || req.Body == http.NoBody || req.GetBody != nil)
}

// CloseIdleConnections closes the idle upstream connections.
func (p *pool) CloseIdleConnections() {
	for _, u := range p.byHost {
		u.tr.CloseIdleConnections()
	}
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
	client := &http.Client{Transport: p, Timeout: interval, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
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
				u.fails.Store(0)
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

var (
	originUpDesc = prometheus.NewDesc("cellar_origin_up",
		"1 while the origin is taken to be healthy (passive and active checks), 0 while it is marked down.", []string{"origin"}, nil)
	originInFlightDesc = prometheus.NewDesc("cellar_origin_in_flight",
		"Requests to the origin whose response has not been fully read.", []string{"origin"}, nil)
)

// Describe and Collect make the pool a Prometheus collector of its
// origins' health and load, read when scraped.
func (p *pool) Describe(ch chan<- *prometheus.Desc) {
	ch <- originUpDesc
	ch <- originInFlightDesc
}

func (p *pool) Collect(ch chan<- prometheus.Metric) {
	now := p.now()
	for host, u := range p.byHost {
		up := 0.0
		if u.healthy(now) {
			up = 1
		}
		ch <- prometheus.MustNewConstMetric(originUpDesc, prometheus.GaugeValue, up, host)
		ch <- prometheus.MustNewConstMetric(originInFlightDesc, prometheus.GaugeValue, float64(u.conns.Load()), host)
	}
}
