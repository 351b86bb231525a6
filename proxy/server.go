// Package proxy is cellar's HTTP front: it receives client requests, answers
// them from the store when the cache policy allows (RFC 9111 §4), collapses
// concurrent misses into one origin fetch, and forwards everything else to
// the origin as a reverse proxy (RFC 9110 §7.6).
package proxy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/cellar-cache/cellar/cache"
	"github.com/cellar-cache/cellar/internal/accesslog"
	"github.com/cellar-cache/cellar/store"
)

// Server is the caching reverse proxy. It is an http.Handler; the caller
// owns the listeners. Close it after the http.Server has shut down.
type Server struct {
	opts      Options
	policy    *cache.Policy
	store     *store.Store
	transport *pool  // the origins, their health and the HTTP transport
	peers     *peers // the cluster's other members (peer.go); nil without Options.Cluster
	pass      *httputil.ReverseProxy
	log       *slog.Logger
	accessLog bool
	// access receives the access lines in accessFormat; ownAccess: the
	// server made it (Options.AccessLogOutput was nil) and Close closes it.
	access       *accesslog.Writer
	accessFormat accesslog.Format
	ownAccess    bool
	via          string
	metrics      *Metrics
	clients      TrustedProxies // decides a request's client address
	edge         edge           // limits, rate limits and header edits (edge.go)

	// clock replaces the real clock (time.Now) when not nil: tests set
	// it before serving. Read it with now.
	clock func() time.Time

	flights flightGroup
	// sliceFlights collapses fetches of one slice (slice.go).
	sliceFlights sliceFlights
	// codings tracks the background jobs that store content-coding variants.
	codings codingJobs
	// prep makes the prepared header of hits (prepared.go).
	prep *hitPreparer

	// responseVia is our Via member on responses to clients; viaValues
	// the Via field of a stored response that had none (shared, no spare
	// capacity).
	responseVia string
	viaValues   []string
	// bgSlots bounds concurrent background revalidations.
	bgSlots chan struct{}

	// bg is the context of work the server owns (fills, background
	// revalidation): cancelled by Close, tracked by wg.
	bg       context.Context
	bgCancel context.CancelFunc
	wg       sync.WaitGroup
}

// New returns a Server that answers from st under policy p and forwards to
// the origins in opts.
func New(opts Options, p *cache.Policy, st *store.Store) (*Server, error) {
	opts.EnsureDefaults()
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	if opts.Metrics == nil {
		opts.Metrics = newMetrics()
	}
	if p == nil || st == nil {
		return nil, errors.New("proxy: a cache policy and a store are required")
	}
	s := &Server{
		opts:      opts,
		policy:    p,
		store:     st,
		log:       opts.Logger,
		accessLog: *opts.AccessLog,
		access:    opts.AccessLogOutput,

		accessFormat: opts.AccessLogFormat,
		via:          opts.Via,
		metrics:      opts.Metrics,

		responseVia: "1.1 " + opts.Via,
		viaValues:   []string{"1.1 " + opts.Via},
		bgSlots:     make(chan struct{}, opts.MaxBackground),
		prep:        newHitPreparer(),
	}
	s.clients, _ = ParseTrustedProxies(opts.TrustedProxies) // checked by Validate
	if s.accessLog && s.access == nil {
		s.access, s.ownAccess = accesslog.New(os.Stderr, accesslog.Options{}), true
	}
	s.bg, s.bgCancel = context.WithCancel(context.Background())
	tr := &http.Transport{
		DialContext: (&net.Dialer{
			Timeout:   opts.ConnectTimeout,
			KeepAlive: 30 * time.Second,
		}).DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          4 * opts.MaxIdleConnsPerHost,
		MaxIdleConnsPerHost:   opts.MaxIdleConnsPerHost,
		IdleConnTimeout:       opts.IdleTimeout,
		ResponseHeaderTimeout: opts.ResponseTimeout,
		TLSHandshakeTimeout:   opts.ConnectTimeout,
		ExpectContinueTimeout: time.Second,
		// The origin's Content-Encoding must reach the store and the client
		// untouched: no transparent gzip.
		DisableCompression: true,
	}
	var err error
	if s.transport, err = newPool(&opts, tr, s.metrics.retries); err != nil {
		return nil, err
	}
	s.metrics.origins.p.Store(s.transport)
	s.transport.observe = s.metrics.http.observeOrigin
	if opts.Cluster != nil {
		if s.metrics.peers == nil {
			s.metrics.peers = newPeerMetrics() // shared by the servers that replace one another
		}
		s.peers = newPeers(opts.Cluster, &s.opts, s.metrics.peers)
	}
	if opts.HealthCheckPath != "" {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.transport.checkHealth(s.bg, opts.HealthCheckPath, opts.HealthCheckInterval)
		}()
	}
	s.pass = s.newPassProxy()
	s.edge = newEdge(&s.opts, s.clients)
	return s, nil
}

// Metrics returns the server's Prometheus collectors.
func (s *Server) Metrics() *Metrics { return s.metrics }

// Close cancels the server's background work (fills in progress, background
// revalidations), waits for it, closes idle upstream connections, and
// writes out the access lines of a log it made itself. Call it after the
// http.Server serving s has shut down.
func (s *Server) Close() error {
	s.bgCancel()
	s.wg.Wait()
	s.transport.CloseIdleConnections()
	if s.peers != nil {
		s.peers.transport.CloseIdleConnections()
	}
	if s.ownAccess {
		return s.access.Close()
	}
	return nil
}

// now is the server's clock: the real one unless a test set clock.
func (s *Server) now() time.Time {
	if s.clock != nil {
		return s.clock()
	}
	return time.Now()
}

// arrival is when a request arrived by the server's clock: the time
// Metrics.Instrument read when it wraps the server (sw is its writer) and
// the clock is the real one, so that a request reads the clock once for
// its metrics, its access line and its freshness.
func (s *Server) arrival(sw *statusWriter) time.Time {
	if sw != nil && s.clock == nil && !sw.start.IsZero() {
		return sw.start
	}
	return s.now()
}

// ServeHTTP answers one client request.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	sw, _ := w.(*statusWriter)
	now := s.arrival(sw)
	if s.accessLog {
		rec := s.startAccess(w, now)
		w = rec
		defer s.logAccess(rec, r, sw)
	}
	w, r, ok := s.admit(w, r)
	if !ok {
		return
	}
	r = markPeerRequest(r)
	if r.Method == "PURGE" && s.opts.Purge != nil {
		s.opts.Purge.ServeHTTP(w, r) // Varnish/Squid/nginx convention
		return
	}
	if isUpgrade(r) {
		s.tunnel(w, r) // upgrade.go: never cached or coalesced
		return
	}
	if !s.policy.Cacheable(r) {
		s.forward(w, traced(w, r))
		return
	}
	s.serveCacheable(w, r, now)
}

// serveCacheable answers a GET or HEAD that the cache may handle: from the
// store when the stored entry may be used (§4), else through a coalesced
// fill (§4.3 validation, or a plain miss). now is the request's arrival.
func (s *Server) serveCacheable(w http.ResponseWriter, r *http.Request, now time.Time) {
	ctx := r.Context()
	primary := s.policy.Key(r)
	if l := s.opts.Limits.MaxTarget; on(l) && len(primary) > l {
		// Keys stay within the target limit: never store this one.
		s.metrics.passes.Inc()
		s.forwardCacheable(w, r, cache.Status{Fwd: "bypass", Detail: "key-too-long"})
		return
	}
	// §5.2.1.7: only-if-cached never goes forward, not even for a key
	// that is marked hit-for-miss.
	if s.flights.hitForMiss(primary, now) && !cache.OnlyIfCached(r) {
		s.metrics.hitForMiss.Inc()
		s.metrics.passes.Inc()
		s.forwardCacheable(w, traced(w, r), cache.Status{Fwd: "miss", Detail: "hit-for-miss"})
		return
	}
	found := s.lookup(ctx, r, primary, now)
	if found.obj != nil && found.obj.Hot() && s.policy.Evaluate(r, &found.obj.Meta, now).Action != cache.Serve {
		// peer.go: a hot copy is served fresh or not at all; never
		// revalidated nor stored here (its owner does that).
		found.obj = nil
	}
	if found.obj != nil {
		lk := s.policy.Evaluate(r, s.hitMeta(found.obj), now)
		switch lk.Action {
		case cache.Serve:
			s.metrics.hits.Inc()
			st := cache.Status{Hit: true, TTL: lk.TTL, HasTTL: true}
			if found.obj.Hot() {
				st.Detail = "hot"
			}
			s.serveObject(w, r, found.obj, lk, st)
			return
		case cache.ServeStale:
			s.metrics.stales.Inc()
			detail := "stale"
			if lk.Background {
				detail = "stale-while-revalidate"
				s.revalidateInBackground(r, found)
			}
			s.serveObject(w, r, found.obj, lk, cache.Status{Hit: true, TTL: lk.TTL, HasTTL: true, Detail: detail})
			return
		}
		// RFC 9211 §2.2: a fresh entry that the request's own directives
		// (no-cache, max-age, min-fresh) refused is fwd=request.
		found.request = lk.TTL > 0 && strings.HasPrefix(lk.Detail, "request-")
		found.reload = lk.Reload
	}
	if cache.OnlyIfCached(r) {
		// §5.2.1.7: no stored response that may be used without contacting
		// the origin.
		s.metrics.misses.Inc()
		st := cache.Status{Fwd: found.fwd(), Detail: "only-if-cached"}
		w.Header().Set("Cache-Status", s.statusValue(st, found.key))
		http.Error(w, "cellar: not in cache (only-if-cached)", http.StatusGatewayTimeout)
		return
	}
	if found.obj == nil && s.peers != nil && !isPeerRequest(r) {
		// Another member owns the key: it coalesces this miss with the
		// other nodes' (peer.go). If it fails, the origin answers.
		if o := s.peers.cluster.Owner(primary, now); !o.Self && s.fetchFromPeer(w, r, o, primary) {
			return
		}
	}
	if found.obj == nil && found.marker == nil && s.slicing(r) && s.serveSliced(w, r, primary) {
		return // slice.go
	}
	s.fetch(w, traced(w, r), found) // counts the outcome: miss, or pass when not shareable
}

// found is the outcome of a store lookup for one request.
type found struct {
	primary string
	key     string        // the key a fill would store under
	obj     *store.Object // nil on a miss
	vary    []string      // Vary fields of the stored marker, when one exists
	marker  *store.Object // the Vary marker at the primary key, when one exists
	request bool          // obj is fresh but the request's directives refused it
	reload  bool          // the request's no-cache is honoured as a reload: no validators go forward
}

// fwd is the RFC 9211 fwd reason for going to the origin after this lookup.
func (f found) fwd() string {
	switch {
	case f.obj != nil && f.request:
		return "request"
	case f.obj != nil:
		return "stale"
	case f.vary != nil:
		return "vary-miss"
	}
	return "uri-miss"
}

// lookup finds the stored response for r (§4): the entry at the primary key,
// or, when that is a Vary marker, the variant selected by r's header fields
// (§4.1). Store errors other than a miss are logged and count as a miss.
// now is the request's arrival (zero: none read).
func (s *Server) lookup(ctx context.Context, r *http.Request, primary string, now time.Time) found {
	f := found{primary: primary, key: primary}
	obj, err := s.storeGet(ctx, primary, now)
	if err != nil {
		s.storeError("get", primary, err)
		return f
	}
	if !isVaryMarker(&obj.Meta) {
		f.obj = obj
		return f
	}
	f.marker = obj
	f.vary, _ = cache.VaryFields(obj.Meta.Header)
	f.key = s.variantKey(primary, f.vary, r.Header)
	obj, err = s.storeGet(ctx, f.key, now)
	if err != nil {
		s.storeError("get", f.key, err)
		return f
	}
	f.obj = obj
	return f
}

// storeGet is the store's Get for a request that arrived at now: when the
// server's clock is the real one (and now was read), the store reads no
// clock of its own for a memory hit.
func (s *Server) storeGet(ctx context.Context, key string, now time.Time) (*store.Object, error) {
	if s.clock == nil && !now.IsZero() {
		return s.store.GetAt(ctx, key, now)
	}
	return s.store.Get(ctx, key)
}

// A Vary marker is stored at a URL's primary key when the origin's response
// varies: it holds only the Vary field (status 0) and points lookups at the
// variants, which are stored under VariantKey.
func isVaryMarker(m *cache.Meta) bool { return m.Status == 0 }

// variantKey is the key of the variant that request fields h select.
func (s *Server) variantKey(primary string, fields []string, h http.Header) string {
	h = s.policy.NormalizeVaried(h)        // cache.Options.VaryNormalize
	fields = withoutAcceptEncoding(fields) // codings.go
	return cache.VariantKey(primary, cache.SecondaryKey(fields, h))
}

// storeError counts and logs a store failure that is not a plain miss, nor
// the end of work that Close abandoned (a variant write cancelled at
// shutdown); storing unavailable is logged at debug level.
func (s *Server) storeError(op, key string, err error) {
	if errors.Is(err, store.ErrNotFound) {
		return
	}
	if errors.Is(err, context.Canceled) && s.bg.Err() != nil {
		s.log.Debug("store operation abandoned at shutdown", "op", op, "key", key)
		return
	}
	s.metrics.storeErrors.Inc()
	if errors.Is(err, store.ErrUnavailable) {
		// Storing is paused or the disk tier is offline: the store logs
		// that once, with its state (Store.DiskState); not per request.
		s.log.Debug("store unavailable", "op", op, "key", key, "err", err)
		return
	}
	s.log.Warn("store error", "op", op, "key", key, "err", err)
}

// statusValue renders Cache-Status, adding the key in debug mode.
func (s *Server) statusValue(st cache.Status, key string) string {
	if s.opts.Debug {
		st.Key = key
	}
	return st.String()
}

// errStatus maps an upstream failure to 504 (timeouts, failed revalidations
// of a stored response, RFC 9111 §4.2.4) or 502.
func errStatus(err error) int {
	var ne net.Error
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, errRevalidate) || (errors.As(err, &ne) && ne.Timeout()) {
		return http.StatusGatewayTimeout
	}
	return http.StatusBadGateway
}

// upstreamFailure names a failed origin request for Cache-Status and the
// client: a connection that could not be made (unreachable), an answer
// that did not come in time (timeout), or a connection the origin accepted
// and then closed or answered with something that is not HTTP (error).
func upstreamFailure(err error, code int) (detail, message string) {
	var op *net.OpError
	switch {
	case code == http.StatusGatewayTimeout:
		return "origin-timeout", "cellar: the origin did not answer in time"
	case errors.As(err, &op) && op.Op == "dial":
		return "origin-unreachable", "cellar: the origin could not be reached"
	}
	return "origin-error", "cellar: the origin closed the connection without a valid response"
}

// writeUpstreamError answers a request whose origin request failed.
func (s *Server) writeUpstreamError(w http.ResponseWriter, r *http.Request, st cache.Status, key string, err error) {
	code := errStatus(err)
	detail, message := upstreamFailure(err, code)
	if st.Detail == "" {
		st.Detail = detail
	}
	s.metrics.upstreamErrors.Inc()
	s.log.Error("origin request failed", "method", r.Method, "url", key, "status", code, "err", err)
	h := w.Header()
	h.Set("Cache-Status", s.statusValue(st, key))
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	fmt.Fprintln(w, message)
}
