package proxy

import (
	"context"
	"io"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"strings"
	"sync"
	"time"

	"github.com/cellar-cache/cellar/cache"
	"github.com/cellar-cache/cellar/store"
)

// flightGroup collapses concurrent fills of one key into one origin request
// ([gc] singleflight), and remembers keys whose responses turned out not to
// be shareable (hit-for-miss) so that later requests for them go straight to
// the origin in parallel instead of queueing behind each other.
type flightGroup struct {
	mu  sync.Mutex           // protects m and hfm
	m   map[string]*flight   // fills in progress by key
	hfm map[string]time.Time // hit-for-miss keys and when that ends
}

// flight is one fill. Its leader publishes the result once, closing ready;
// waiters read res only after ready is closed.
type flight struct {
	ready chan struct{}
	res   fillResult
}

// resultKind says how clients of a flight are answered.
type resultKind int

const (
	resultStream resultKind = iota // follow the store writer (read while write)
	resultObject                   // serve a stored object (freshened by a 304, or stale)
	resultPass                     // not shareable: every waiter asks the origin itself
	resultError                    // the origin failed and nothing stored may be used
)

// fillResult is what a flight's leader learned from the origin.
type fillResult struct {
	kind      resultKind
	meta      cache.Meta    // resultStream: the response being stored
	writer    *store.Writer // resultStream
	size      int64         // resultStream: body length, -1 unknown
	key       string        // the key the response is stored under
	vary      []string      // the response's Vary fields (resultStream)
	obj       *store.Object // resultObject
	stale     bool          // resultObject: a stale entry served on error
	fwdStatus int           // the origin's status, for Cache-Status
	err       error         // resultError
}

// join returns the flight for key, creating it (leader true) when none is in
// progress.
func (g *flightGroup) join(key string) (fl *flight, leader bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if fl, ok := g.m[key]; ok {
		return fl, false
	}
	if g.m == nil {
		g.m = make(map[string]*flight)
	}
	fl = &flight{ready: make(chan struct{})}
	g.m[key] = fl
	return fl, true
}

// forget ends fl's life as the flight for key: later requests look in the
// store again.
func (g *flightGroup) forget(key string, fl *flight) {
	g.mu.Lock()
	if g.m[key] == fl {
		delete(g.m, key)
	}
	g.mu.Unlock()
}

// markHitForMiss makes requests for key skip the cache until `until`.
func (g *flightGroup) markHitForMiss(key string, until time.Time) {
	g.mu.Lock()
	if g.hfm == nil {
		g.hfm = make(map[string]time.Time)
	}
	g.hfm[key] = until
	g.mu.Unlock()
}

// hitForMiss reports whether key is marked hit-for-miss at now.
func (g *flightGroup) hitForMiss(key string, now time.Time) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	until, ok := g.hfm[key]
	if ok && !now.Before(until) {
		delete(g.hfm, key)
		ok = false
	}
	return ok
}

// clearHitForMiss forgets a hit-for-miss mark, once a response for key was
// stored again.
func (g *flightGroup) clearHitForMiss(key string) {
	g.mu.Lock()
	delete(g.hfm, key)
	g.mu.Unlock()
}

// fetch answers r through the origin: as the leader of a new fill of f.key,
// or as a waiter on the fill in progress.
func (s *Server) fetch(w http.ResponseWriter, r *http.Request, f found) {
	fl, leader := s.flights.join(f.key)
	collapsed := !leader
	var direct *http.Response
	var done func()
	if leader {
		direct, done = s.lead(r, f, fl, w)
	} else {
		s.metrics.collapsed.Inc()
		select {
		case <-fl.ready:
		case <-r.Context().Done():
			return
		}
	}
	res := fl.res
	st := cache.Status{Fwd: f.fwd(), FwdStatus: res.fwdStatus, Collapsed: collapsed}
	switch res.kind {
	case resultError:
		s.writeUpstreamError(w, r, st, f.key, res.err)
	case resultPass:
		if direct != nil {
			defer done()
			s.writeResponse(w, r, direct, st, f.key)
			return
		}
		st.Detail = "not-shareable"
		s.forwardCacheable(w, r, st)
	case resultObject:
		lk := s.policy.Evaluate(r, &res.obj.Meta, s.now())
		st.TTL, st.HasTTL = lk.TTL, true
		if res.stale {
			st.Detail = "stale-if-error"
		}
		s.serveObject(w, r, res.obj, lk, st)
	case resultStream:
		if len(res.vary) > 0 && variantKey(f.primary, res.vary, r.Header) != res.key {
			// §4.1: the response varies and this request selects another
			// variant: fetch that one (coalesced with its own flight).
			s.fetch(w, r, found{primary: f.primary, key: variantKey(f.primary, res.vary, r.Header), vary: res.vary})
			return
		}
		st.Stored = true
		s.serveStream(w, r, res, st)
	}
}

// lead performs the origin request of flight fl for r and publishes the
// result. When the response is not shareable it is returned to the caller
// (the leader's client) with done, which the caller must call after reading
// it; waiters are told to go to the origin themselves.
//
// The origin request runs under a context owned by the server with its own
// timeout, not under the client's: a client that disconnects does not fail
// the fill for the others.
func (s *Server) lead(r *http.Request, f found, fl *flight, w http.ResponseWriter) (direct *http.Response, done func()) {
	publish := func(res fillResult) {
		fl.res = res
		close(fl.ready)
	}
	ctx, cancel := context.WithTimeout(s.bg, s.opts.FillTimeout)

	// Another flight may have stored the object between our lookup and
	// joining ([gc] groupcache load): look again.
	if f.obj == nil {
		if again := s.lookup(ctx, r, f.primary); again.obj != nil && again.key == f.key {
			if lk := s.policy.Evaluate(r, &again.obj.Meta, s.now()); lk.Action == cache.Serve {
				cancel()
				publish(fillResult{kind: resultObject, obj: again.obj, key: f.key})
				s.flights.forget(f.key, fl)
				return nil, nil
			}
		}
	}

	out := s.outgoing(ctx, r)
	if f.obj != nil {
		cache.Conditional(out.Header, &f.obj.Meta) // §4.3.1
	}
	if w != nil {
		out = out.WithContext(httptrace.WithClientTrace(ctx, s.interimTrace(w)))
	}
	reqTime := s.now()
	s.metrics.originRequests.Inc()
	resp, err := s.transport.RoundTrip(out)
	respTime := s.now()
	if err != nil {
		cancel()
		s.flights.forget(f.key, fl)
		if f.obj != nil && s.policy.Evaluate(r, &f.obj.Meta, respTime).StaleIfError {
			publish(fillResult{kind: resultObject, obj: f.obj, key: f.key, stale: true})
			return nil, nil
		}
		publish(fillResult{kind: resultError, err: err})
		return nil, nil
	}
	removeHopByHop(resp.Header)

	if f.obj != nil {
		if obj, ok := s.revalidated(ctx, r, f, resp, reqTime, respTime); ok {
			drain(resp)
			cancel()
			s.flights.forget(f.key, fl)
			publish(fillResult{kind: resultObject, obj: obj, key: f.key, stale: obj == f.obj, fwdStatus: resp.StatusCode})
			return nil, nil
		}
	}

	// The fill was a GET even when the client sent HEAD: judge and store it
	// as the GET it was.
	if r.Method == http.MethodHead {
		g := *r
		g.Method = http.MethodGet
		r = &g
	}
	ok, reason := s.policy.Storable(r, resp.StatusCode, resp.Header)
	fields, star := cache.VaryFields(resp.Header)
	if ok && star {
		ok, reason = false, "vary-star" // §4.1: Vary: * never matches
	}
	var wr *store.Writer
	key := f.key
	var meta cache.Meta
	if ok {
		if len(fields) > 0 {
			key = variantKey(f.primary, fields, r.Header)
		}
		meta = s.policy.NewMeta(r, resp.StatusCode, resp.Header, reqTime, respTime)
		wr, err = s.store.Create(ctx, key, meta, store.CreateOptions{
			Tags:      cache.Tags(resp.Header),
			KeepUntil: s.policy.KeepUntil(&meta, s.opts.Keep),
			SizeHint:  resp.ContentLength,
		})
		if err != nil {
			s.storeError("create", key, err)
			ok, reason = false, "store-unavailable"
		}
	}
	if !ok {
		s.flights.forget(f.key, fl)
		if reason != "store-unavailable" && resp.StatusCode < 500 {
			s.flights.markHitForMiss(f.primary, s.now().Add(s.opts.HitForMiss))
		}
		publish(fillResult{kind: resultPass, fwdStatus: resp.StatusCode})
		return resp, cancel
	}
	s.flights.clearHitForMiss(f.primary)
	s.metrics.fills.Inc()
	s.wg.Add(1)
	go s.copyFill(ctx, cancel, resp, wr, f, fl, key, fields, meta)
	publish(fillResult{kind: resultStream, meta: meta, writer: wr, size: resp.ContentLength, key: key, vary: fields, fwdStatus: resp.StatusCode})
	return nil, nil
}

// revalidated handles the origin's answer to a conditional request for the
// stale entry f.obj (§4.3.3). A 304 that selects the entry freshens it
// (§4.3.4) and returns it; a 500, 502, 503 or 504 returns the stale entry
// itself when stale-if-error allows (RFC 5861 §4). Anything else is a new
// response for the caller to handle.
func (s *Server) revalidated(ctx context.Context, r *http.Request, f found, resp *http.Response, reqTime, respTime time.Time) (*store.Object, bool) {
	switch resp.StatusCode {
	case http.StatusNotModified:
		if !cache.Matches304(&f.obj.Meta, resp.Header) {
			return nil, false
		}
		m := s.policy.Freshen(&f.obj.Meta, resp.Header, reqTime, respTime)
		keep := s.policy.KeepUntil(&m, s.opts.Keep)
		if err := s.store.UpdateMeta(ctx, f.key, m, keep); err != nil {
			s.storeError("update", f.key, err)
		}
		obj := *f.obj
		obj.Meta = m
		obj.KeepUntil = keep
		return &obj, true
	case http.StatusInternalServerError, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		if s.policy.Evaluate(r, &f.obj.Meta, respTime).StaleIfError {
			return f.obj, true
		}
	}
	return nil, false
}

// copyFill copies the origin's body into the store writer. It runs under
// the server's context (tracked by s.wg), so the fill completes even when
// every client has gone. A short or failed body aborts the fill: nothing
// partial is ever stored, and readers following it get an error.
func (s *Server) copyFill(ctx context.Context, cancel context.CancelFunc, resp *http.Response, wr *store.Writer, f found, fl *flight, key string, vary []string, meta cache.Meta) {
	defer s.wg.Done()
	defer cancel()
	defer s.flights.forget(f.key, fl)
	defer resp.Body.Close()
	bufp := bufPool.Get().(*[]byte)
	n, err := io.CopyBuffer(wr, resp.Body, *bufp)
	bufPool.Put(bufp)
	if err == nil && resp.ContentLength >= 0 && n != resp.ContentLength {
		err = io.ErrUnexpectedEOF
	}
	if err != nil {
		wr.Abort()
		s.metrics.fillErrors.Inc()
		s.log.Warn("fill aborted", "key", key, "bytes", n, "err", err)
		return
	}
	if _, err := wr.Commit(ctx); err != nil {
		s.storeError("commit", key, err)
		return
	}
	if len(vary) > 0 {
		s.putVaryMarker(ctx, f.primary, vary, meta)
	}
}

// putVaryMarker stores the marker that sends lookups of primary to its
// variants (§4.1), unless an identical one is there.
func (s *Server) putVaryMarker(ctx context.Context, primary string, vary []string, meta cache.Meta) {
	if old, err := s.store.Get(ctx, primary); err == nil && isVaryMarker(&old.Meta) {
		if f, _ := cache.VaryFields(old.Meta.Header); strings.Join(f, ",") == strings.Join(vary, ",") {
			return
		}
	}
	marker := cache.Meta{
		Header:       http.Header{"Vary": {strings.Join(vary, ", ")}},
		RequestTime:  meta.RequestTime,
		ResponseTime: meta.ResponseTime,
	}
	wr, err := s.store.Create(ctx, primary, marker, store.CreateOptions{KeepUntil: s.policy.KeepUntil(&meta, s.opts.Keep), SizeHint: 0})
	if err != nil {
		s.storeError("create", primary, err)
		return
	}
	if _, err := wr.Commit(ctx); err != nil {
		s.storeError("commit", primary, err)
	}
}

// revalidateInBackground starts one background revalidation of a stale
// entry (RFC 5861 §3), unless one is already running for its key or the
// server's background budget is used up. It runs under the server's
// context, never the client's.
func (s *Server) revalidateInBackground(r *http.Request, f found) {
	select {
	case s.bgSlots <- struct{}{}:
	default:
		return
	}
	fl, leader := s.flights.join(f.key)
	if !leader {
		<-s.bgSlots
		return
	}
	req := r.Clone(s.bg)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer func() { <-s.bgSlots }()
		s.metrics.backgroundRevalidations.Inc()
		if direct, done := s.lead(req, f, fl, nil); direct != nil {
			drain(direct)
			done()
		}
	}()
}

// outgoing builds the request of a cache fill from the client's request:
// always a GET of the whole representation (a HEAD or Range request fills
// the full response, which then answers it), without the client's own
// validators (§4.3.2: the stored response must be complete), with hop-by-hop
// fields removed and forwarding fields added.
func (s *Server) outgoing(ctx context.Context, in *http.Request) *http.Request {
	out := in.Clone(ctx)
	out.Method = http.MethodGet
	out.RequestURI = ""
	out.Body = nil
	out.ContentLength = 0
	out.Close = false
	removeHopByHop(out.Header)
	for _, f := range []string{"If-None-Match", "If-Modified-Since", "If-Match", "If-Unmodified-Since", "If-Range", "Range", "X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto"} {
		delete(out.Header, f)
	}
	s.rewrite(out, in)
	return out
}

// interimTrace forwards 1xx interim responses such as 103 Early Hints to
// the client (RFC 9110 §15.2); they are never stored.
func (s *Server) interimTrace(w http.ResponseWriter) *httptrace.ClientTrace {
	return &httptrace.ClientTrace{
		Got1xxResponse: func(code int, header textproto.MIMEHeader) error {
			if code == http.StatusContinue || code == http.StatusSwitchingProtocols {
				return nil
			}
			h := w.Header()
			for k, v := range header {
				h[k] = v
			}
			w.WriteHeader(code)
			for k := range header {
				delete(h, k)
			}
			return nil
		},
	}
}

// drain reads a little of what is left of resp's body, so that the
// connection can be reused, and closes it.
func drain(resp *http.Response) {
	io.CopyN(io.Discard, resp.Body, 64<<10)
	resp.Body.Close()
}

// bufPool holds the 32 KiB copy buffers of fills and streams.
var bufPool = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}
