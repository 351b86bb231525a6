package proxy

import (
	"math"
	"net/http"
	"slices"
	"strconv"

	"github.com/cellar-cache/cellar/cache"
)

// edge is what every client request passes before the cache sees it: the
// request limits (limits.go), the rate limits per client and the response
// header edits, both per site.
type edge struct {
	sites   []edgeSite // by site index as routed; the last is the default
	routed  bool       // some site has its own rate or headers: route each request
	clients TrustedProxies
}

// edgeSite is one site's rate limiter (nil: no limit) and header edits.
type edgeSite struct {
	rate  *rateLimiter
	edits []*headerEdit
}

func newEdge(o *Options, clients TrustedProxies) edge {
	global := newRateLimiter(o.Limits.Rate)
	var edits []*headerEdit
	if e := newHeaderEdit(o.ResponseHeaders); e != nil {
		edits = []*headerEdit{e}
	}
	e := edge{clients: clients}
	for _, st := range o.Sites {
		es := edgeSite{rate: global, edits: edits}
		if st.Rate != nil {
			es.rate = newRateLimiter(*st.Rate)
			e.routed = true
		}
		if se := newHeaderEdit(st.ResponseHeaders); se != nil {
			es.edits = append(slices.Clip(edits), se)
			e.routed = true
		}
		e.sites = append(e.sites, es)
	}
	e.sites = append(e.sites, edgeSite{rate: global, edits: edits})
	return e
}

// site returns the edge settings of r's site.
func (s *Server) edgeSite(r *http.Request) *edgeSite {
	e := &s.edge
	if !e.routed {
		return &e.sites[len(e.sites)-1]
	}
	i := slices.Index(s.transport.sites, s.transport.route(r))
	if i < 0 || i >= len(e.sites) {
		i = len(e.sites) - 1
	}
	return &e.sites[i]
}

// admit applies the edge to r. It returns the writer and request the rest
// of the exchange must use (with the site's header edits, the body's
// limits) and false when it has already answered r (a broken limit, or
// the client's rate).
func (s *Server) admit(w http.ResponseWriter, r *http.Request) (http.ResponseWriter, *http.Request, bool) {
	es := s.edgeSite(r)
	if len(es.edits) > 0 {
		w = &headerWriter{ResponseWriter: w, edits: es.edits}
	}
	if badFraming(r) {
		// RFC 9112 §6.1: a request with both framings may be smuggling.
		s.metrics.refused.WithLabelValues("400").Inc()
		refuse(w, http.StatusBadRequest, "both Content-Length and Transfer-Encoding")
		return w, r, false
	}
	if code, reason := s.opts.Limits.check(r); code != 0 {
		s.metrics.refused.WithLabelValues(strconv.Itoa(code)).Inc()
		refuse(w, code, reason)
		return w, r, false
	}
	if es.rate != nil {
		if wait, ok := es.rate.allow(s.edge.clients.ClientAddr(r), s.now()); !ok {
			s.metrics.rateLimited.Inc()
			secs := int64(math.Ceil(wait.Seconds()))
			w.Header().Set("Retry-After", strconv.FormatInt(max(secs, 1), 10))
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			w.Header().Set("Cache-Control", "no-store")
			w.WriteHeader(http.StatusTooManyRequests)
			w.Write([]byte("cellar: too many requests from your address; retry later\n"))
			return w, r, false
		}
	}
	// The Host of the cache key is the Host the origin sees: lowercased,
	// without the scheme's default port.
	r.Host = cache.NormalizeHost(scheme(r), r.Host)
	return w, s.wrapBody(w, r), true
}

// scheme is the scheme a client used for r.
func scheme(r *http.Request) string {
	if r.TLS != nil {
		return "https"
	}
	return "http"
}
