package proxy

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httputil"
	"strconv"
	"time"

	"github.com/cellar-cache/cellar/cache"
	"github.com/cellar-cache/cellar/store"
)

// passStatus carries the Cache-Status of a forwarded request from forward to
// the ReverseProxy's response hook.
type passStatus struct{}

// passRequest carries the client's request to the response hook, whose
// resp.Request is the outgoing one: rewritten to the origin's URL and,
// without PreserveHost, its Host.
type passRequest struct{}

// newPassProxy is the reverse proxy for requests the cache does not answer:
// unsafe and unknown methods, bypass rules, hit-for-miss keys and waiters
// released from a fill whose response was not shareable. It streams bodies
// both ways, forwards 1xx responses and protocol upgrades, and removes
// hop-by-hop fields on both legs (RFC 9110 §7.6.1).
func (s *Server) newPassProxy() *httputil.ReverseProxy {
	return &httputil.ReverseProxy{
		Rewrite:        func(pr *httputil.ProxyRequest) { s.rewrite(pr.Out, pr.In) },
		Transport:      s.transport,
		FlushInterval:  100 * time.Millisecond,
		BufferPool:     poolAdapter{},
		ModifyResponse: s.modifyPassResponse,
		ErrorHandler:   s.passError,
		ErrorLog:       slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
}

// rewrite routes out, the origin request made from in, to in's site (the
// pool picks the origin when sending it), adds the forwarding fields and
// applies the site's header rewriting. It replaces *out: the route is in
// its context.
func (s *Server) rewrite(out, in *http.Request) {
	st := s.transport.route(in)
	*out = *out.WithContext(context.WithValue(out.Context(), routeKey{}, &route{site: st, key: s.policy.Key(in), rec: recorderOf(in)}))
	if *s.opts.PreserveHost {
		out.Host = in.Host
	} else {
		out.Host = ""
	}
	s.setForwarded(out.Header, in)
	st.headers.apply(out)
}

// forward passes a request the cache does not handle to the origin.
func (s *Server) forward(w http.ResponseWriter, r *http.Request) {
	st := cache.Status{Fwd: "bypass"}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		st.Fwd = "method"
	}
	s.metrics.passes.Inc()
	s.forwardCacheable(w, r, st)
}

// forwardCacheable passes r to the origin through the reverse proxy,
// answering with Cache-Status st.
func (s *Server) forwardCacheable(w http.ResponseWriter, r *http.Request, st cache.Status) {
	s.metrics.originRequests.Inc()
	ctx := context.WithValue(r.Context(), passStatus{}, &st)
	r = r.WithContext(context.WithValue(ctx, passRequest{}, r))
	s.pass.ServeHTTP(w, r)
}

// modifyPassResponse finishes a forwarded response: invalidation after an
// unsafe method (§4.4), removal of fields aimed only at cellar (RFC 9213),
// Via and Cache-Status.
func (s *Server) modifyPassResponse(resp *http.Response) error {
	r := resp.Request
	in, ok := r.Context().Value(passRequest{}).(*http.Request)
	if !ok {
		in = r
	}
	s.invalidate(in, resp.StatusCode, resp.Header)
	s.policy.StripForClient(resp.Header)
	resp.Header.Add("Via", viaValue(resp.ProtoMajor, resp.ProtoMinor, s.via))
	if st, ok := r.Context().Value(passStatus{}).(*cache.Status); ok {
		st.FwdStatus = resp.StatusCode
		resp.Header.Set("Cache-Status", s.statusValue(*st, s.policy.Key(in)))
	}
	return nil
}

// invalidate purges what a response with status and header to the unsafe
// request in invalidates (§4.4); it does nothing for a safe method.
func (s *Server) invalidate(in *http.Request, status int, header http.Header) {
	if safeMethod(in.Method) {
		return
	}
	// §4.4: the target URI is the client's, the key it is stored under.
	for _, raw := range cache.Invalidations(in, status, header) {
		key, err := s.policy.KeyFromURL(raw)
		if err != nil {
			continue
		}
		// Under the server's context: a client that leaves must not
		// cancel the invalidation its request caused.
		if _, err := s.store.Purge(s.bg, store.Selector{URL: key}, false); err != nil {
			s.storeError("invalidate", key, err)
		}
		s.flights.clearHitForMiss(key)
	}
}

// passError answers a forwarded request whose origin failed.
//
// An unsafe request that failed may still have reached the origin and
// changed the resource (the client left while the origin worked on it, or
// the origin's answer was lost), so its target URI is invalidated as if a
// non-error response had come: a needless invalidation costs one miss, a
// missed one serves a stale object.
func (s *Server) passError(w http.ResponseWriter, r *http.Request, err error) {
	in, ok := r.Context().Value(passRequest{}).(*http.Request)
	if !ok {
		in = r
	}
	s.invalidate(in, http.StatusOK, nil)
	if code := clientFailure(r); code != 0 {
		// The client's body failed (clientbody.go), not the origin. (A
		// stalled body also cancelled r's context.)
		s.metrics.refused.WithLabelValues(strconv.Itoa(code)).Inc()
		refuse(w, code, "the request body could not be read: "+err.Error())
		return
	}
	if r.Context().Err() != nil {
		return // the client went away; nobody to answer
	}
	st, _ := r.Context().Value(passStatus{}).(*cache.Status)
	if st == nil {
		st = &cache.Status{Fwd: "bypass"}
	}
	s.writeUpstreamError(w, r, *st, r.URL.String(), err)
}

// safeMethod reports the methods of RFC 9110 §9.2.1 that do not invalidate.
func safeMethod(m string) bool {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace:
		return true
	}
	return false
}

// writeResponse streams an origin response that is not stored to the
// client. If the body fails midway the client's response is aborted.
func (s *Server) writeResponse(w http.ResponseWriter, r *http.Request, resp *http.Response, st cache.Status, key string) {
	defer resp.Body.Close()
	h := w.Header()
	for k, v := range resp.Header {
		h[k] = v
	}
	s.policy.StripForClient(h)
	h.Add("Via", viaValue(resp.ProtoMajor, resp.ProtoMinor, s.via))
	h.Set("Cache-Status", s.statusValue(st, key))
	w.WriteHeader(resp.StatusCode)
	if r.Method == http.MethodHead {
		return
	}
	if err := copyFlush(w, resp.Body); err != nil {
		if r.Context().Err() == nil {
			s.metrics.upstreamErrors.Inc()
			s.log.Warn("origin body failed", "url", key, "err", err)
		}
		panic(http.ErrAbortHandler)
	}
}

// poolAdapter lends ReverseProxy the shared 32 KiB buffers.
type poolAdapter struct{}

func (poolAdapter) Get() []byte  { return *bufPool.Get().(*[]byte) }
func (poolAdapter) Put(b []byte) { bufPool.Put(&b) }
