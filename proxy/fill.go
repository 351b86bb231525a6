package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cellar-cache/cellar/cache"
	"github.com/cellar-cache/cellar/store"
)

// flightGroup collapses concurrent fills of one key into one origin request
// ([gc] singleflight), and remembers keys whose responses turned out not to
// be shareable (hit-for-miss) so that later requests for them go straight to
// the origin in parallel instead of queueing behind each other.
type flightGroup struct {
	mu      sync.Mutex           // protects m, hfm, sweepAt and every flight's waiting
	m       map[string]*flight   // fills in progress by key
	hfm     map[string]time.Time // hit-for-miss keys and when that ends
	sweepAt int                  // len(hfm) at which expired marks are swept
	running int                  // flights not yet ended, including replaced ones
}

// maxHitForMiss bounds the hit-for-miss marks kept at once, so that a
// stream of distinct uncacheable URLs cannot grow the map without end.
// Past it, arbitrary marks are dropped: the cost is one collapsed request.
const maxHitForMiss = 1 << 16

// flight is one fill. Its leader publishes the result once, closing ready;
// waiters read res only after ready is closed.
type flight struct {
	ready   chan struct{}
	res     fillResult
	waiting int           // requests waiting for ready; guarded by flightGroup.mu
	ended   bool          // forgotten; guarded by flightGroup.mu
	ticket  *store.Ticket // taken when the flight began; released when it ends
	// sealed is set once the whole body has arrived and the commit
	// began; done is closed when the flight ends. A request that finds a
	// sealed flight waits for done and looks in the store again, so that
	// a client's next request after a miss is a hit.
	sealed atomic.Bool
	done   chan struct{}
}

// errRevalidate marks an origin failure while validating a stored response
// that may not be served stale (must-revalidate, proxy-revalidate,
// s-maxage, no-cache, or past the stale-if-error window): RFC 9111 §4.2.4
// and §5.2.2.2 answer it with 504.
var errRevalidate = errors.New("proxy: revalidation failed and the stored response may not be served stale")

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
	kind   resultKind
	meta   cache.Meta    // resultStream: the response being stored
	writer *store.Writer // resultStream
	size   int64         // resultStream: body length, -1 unknown
	key    string        // the key the response is stored under
	vary   []string      // the response's Vary fields (resultStream)
	// header is the origin's response header (resultStream), hop-by-hop
	// fields removed. Only the leader's own client is answered with it:
	// the fields that are not stored (private="f", no-cache="f") and
	// Set-Cookie are meant for that client (RFC 9111 §3.1, §5.2.2.7).
	header    http.Header
	obj       *store.Object // resultObject; resultError, resultPass after a 5xx: the stored entry that could not be revalidated
	stale     bool          // resultObject: a stale entry served on error
	stored    bool          // resultObject: found in the store on a second look, not fetched
	fwdStatus int           // the origin's status, for Cache-Status
	err       error         // resultError
	// detail is the Cache-Status detail of a resultPass that is shareable
	// but could not be stored ("store-unavailable"); empty otherwise.
	detail string
	// notShareable marks a resultPass whose response the policy refused
	// to store (no-store, private, ...): the request counts as a pass.
	notShareable bool
}

// join returns the flight for key, creating it (leader true) when none is in
// progress. A request that would wait beyond maxWaiters others on the
// flight gets ok false and must not wait; a waiter that gets ok true calls
// leave once it stops waiting.
//
// A flight that a purge of key overtook is not joined: its response may be
// one the purge removed (RFC 9111 §4.4 and the purge API's promise that a
// purge wins over a fill in progress), so a new flight replaces it for
// later requests while it finishes for its own clients; the store commits
// it Invalid. Purges of other keys do not matter. A new flight takes its
// ticket from newTicket.
func (g *flightGroup) join(key string, maxWaiters int, newTicket func() *store.Ticket) (fl *flight, leader, ok bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if fl, found := g.m[key]; found && !fl.ticket.MayBePurged(key) {
		if fl.waiting >= maxWaiters {
			return fl, false, false
		}
		fl.waiting++
		return fl, false, true
	}
	if g.m == nil {
		g.m = make(map[string]*flight)
	}
	fl = &flight{ready: make(chan struct{}), done: make(chan struct{}), ticket: newTicket()}
	g.m[key] = fl
	g.running++
	return fl, true, true
}

// leave takes a waiter off fl's waiting list.
func (g *flightGroup) leave(fl *flight) {
	g.mu.Lock()
	fl.waiting--
	g.mu.Unlock()
}

// forget ends fl's life as the flight for key, if a newer flight has not
// replaced it already: later requests look in the store again. It reports
// whether this call ended fl (true once per flight).
func (g *flightGroup) forget(key string, fl *flight) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.m[key] == fl {
		delete(g.m, key)
	}
	if fl.ended {
		return false
	}
	fl.ended = true
	close(fl.done)
	g.running--
	return true
}

// inProgress returns the number of flights in progress.
func (g *flightGroup) inProgress() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.running
}

// markHitForMiss makes requests for key skip the cache for d from now.
// Expired marks of other keys are swept once the map has doubled since the
// last sweep, and it never holds more than maxHitForMiss marks.
func (g *flightGroup) markHitForMiss(key string, now time.Time, d time.Duration) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.hfm == nil {
		g.hfm = make(map[string]time.Time)
	}
	_, marked := g.hfm[key]
	if !marked && len(g.hfm) >= max(g.sweepAt, 1024) {
		for k, until := range g.hfm {
			if !now.Before(until) {
				delete(g.hfm, k)
			}
		}
		g.sweepAt = 2 * len(g.hfm)
	}
	if !marked && len(g.hfm) >= maxHitForMiss {
		for k := range g.hfm { // drop an arbitrary mark
			delete(g.hfm, k)
			break
		}
	}
	g.hfm[key] = now.Add(d)
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
	s.fetchVariant(w, r, f, 0)
}

// fetchVariant is fetch after redirects re-dispatches to another variant's
// flight (§4.1). A waiter is answered from the fill when it may share it;
// it goes to the origin itself, uncollapsed, when the waiting list is full,
// when the response header does not come within WaitTimeout, and when the
// response turns out not to be shareable.
func (s *Server) fetchVariant(w http.ResponseWriter, r *http.Request, f found, redirects int) {
	fl, leader, ok := s.flights.join(f.key, s.opts.MaxWaiters, s.store.Ticket)
	if !ok {
		s.metrics.misses.Inc()
		s.metrics.collapseReleased.Inc()
		s.forwardCacheable(w, r, cache.Status{Fwd: f.fwd(), Detail: "waiting-list-full"})
		return
	}
	if !leader && fl.sealed.Load() && redirects == 0 {
		// The body is whole and being committed: wait for the commit
		// (one fsync) and answer from the store.
		s.flights.leave(fl)
		select {
		case <-fl.done:
			s.serveCacheable(w, r)
		case <-r.Context().Done():
		}
		return
	}
	collapsed := !leader
	var direct *http.Response
	var done func()
	if leader {
		s.metrics.fillsInProgress.Inc()
		direct, done = s.lead(r, f, fl, w)
	} else {
		s.metrics.collapsed.Inc()
		timer := time.NewTimer(s.opts.WaitTimeout)
		select {
		case <-fl.ready:
		case <-timer.C:
		case <-r.Context().Done():
		}
		timer.Stop()
		s.flights.leave(fl)
		select {
		case <-fl.ready:
		default:
			if r.Context().Err() != nil {
				return // the client went away; the fill goes on for the others
			}
			s.metrics.misses.Inc()
			s.metrics.collapseReleased.Inc()
			s.forwardCacheable(w, r, cache.Status{Fwd: f.fwd(), Detail: "wait-timeout"})
			return
		}
	}
	res := fl.res
	if redirects == 0 {
		// A response that may not be shared (no-store, private, ...) is a
		// pass; anything else that went to the origin is a miss.
		if res.kind == resultPass && res.notShareable {
			s.metrics.passes.Inc()
		} else {
			s.metrics.misses.Inc()
		}
	}
	st := cache.Status{Fwd: f.fwd(), FwdStatus: res.fwdStatus, Collapsed: collapsed}
	switch res.kind {
	case resultError:
		if res.obj != nil {
			// RFC 5861 §4, RFC 9111 §4.2.4: each client's own request
			// decides whether the stale entry may answer it.
			lk := s.policy.Evaluate(r, &res.obj.Meta, s.now())
			if lk.StaleIfError {
				st.Fwd, st.TTL, st.HasTTL, st.Detail = "stale", lk.TTL, true, "stale-if-error"
				s.serveObject(w, r, res.obj, lk, st)
				return
			}
			st.Detail = "stale-forbidden"
			s.writeUpstreamError(w, r, st, f.key, fmt.Errorf("%w: %w", errRevalidate, res.err))
			return
		}
		s.writeUpstreamError(w, r, st, f.key, res.err)
	case resultPass:
		if direct != nil {
			defer done()
			if direct.StatusCode == http.StatusNotModified {
				// §4.3.4: the 304 answered our validators but selects no
				// stored response; it means nothing to this client. Send
				// the client's own request instead.
				drain(direct)
				st.FwdStatus, st.Detail = 0, "304-mismatch"
				s.forwardCacheable(w, r, st)
				return
			}
			st.Detail = res.detail
			s.writeResponse(w, r, direct, st, f.key)
			return
		}
		if res.obj != nil {
			if lk := s.policy.Evaluate(r, &res.obj.Meta, s.now()); lk.StaleIfError {
				st.Fwd, st.TTL, st.HasTTL, st.Detail = "stale", lk.TTL, true, "stale-if-error"
				s.serveObject(w, r, res.obj, lk, st)
				return
			}
		}
		st.Detail = "not-shareable"
		if res.detail != "" {
			st.Detail = res.detail
		}
		s.forwardCacheable(w, r, st)
	case resultObject:
		lk := s.policy.Evaluate(r, &res.obj.Meta, s.now())
		if res.stored {
			// Another fill stored it meanwhile: a hit, nothing went forward.
			st = cache.Status{Hit: true, Collapsed: collapsed}
		}
		st.TTL, st.HasTTL = lk.TTL, true
		if res.stale {
			if !lk.StaleIfError {
				// The leader's request allowed the stale answer; this
				// one does not (no-cache, say): ask the origin itself.
				st.Detail = "stale-forbidden"
				s.forwardCacheable(w, r, st)
				return
			}
			st.Detail = "stale-if-error"
		}
		s.serveObject(w, r, res.obj, lk, st)
	case resultStream:
		if len(res.vary) > 0 {
			if vk := variantKey(f.primary, res.vary, r.Header); vk != res.key {
				// §4.1: the response varies and this request selects
				// another variant: fetch that one, coalesced with its own
				// flight. An origin whose Vary keeps changing is not chased
				// further.
				if redirects > 0 {
					st.Detail = "vary-mismatch"
					s.forwardCacheable(w, r, st)
					return
				}
				s.fetchVariant(w, r, found{primary: f.primary, key: vk, vary: res.vary}, redirects+1)
				return
			}
		}
		st.Stored = true
		if !leader {
			res.header = nil
		}
		s.serveStream(w, r, res, st)
	}
}

// endFlight ends fl as the flight for key (see forget), counts it out and
// releases its store ticket.
func (s *Server) endFlight(key string, fl *flight) {
	if s.flights.forget(key, fl) {
		s.metrics.fillsInProgress.Dec()
		fl.ticket.Release()
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
				publish(fillResult{kind: resultObject, obj: again.obj, key: f.key, stored: true})
				s.endFlight(f.key, fl)
				return nil, nil
			}
		}
	}

	out := s.outgoing(ctx, r)
	if f.obj != nil && !f.reload {
		cache.Conditional(out.Header, &f.obj.Meta) // §4.3.1
	}
	if !f.reload {
		addVariantETags(out.Header, f) // §4.3.1: every stored variant's ETag
	}
	if w != nil {
		out = out.WithContext(httptrace.WithClientTrace(out.Context(), s.interimTrace(w))) // keeps the route (rewrite)
	}
	// A purge from when the flight began wins over this fill: fl.ticket.
	reqTime := s.now()
	s.metrics.originRequests.Inc()
	resp, err := s.transport.RoundTrip(out)
	respTime := s.now()
	if err != nil {
		// A connection error or timeout (RFC 5861 §4): every client
		// decides for itself whether the stale entry, if any, may answer.
		cancel()
		s.endFlight(f.key, fl)
		publish(fillResult{kind: resultError, obj: f.obj, key: f.key, err: err})
		return nil, nil
	}
	removeHopByHop(resp.Header)
	if s.policy.StripSetCookie(r) {
		delete(resp.Header, "Set-Cookie") // cache.Rule.StripSetCookie
	}

	if f.obj != nil {
		if obj, ok := s.revalidated(ctx, r, f, resp, reqTime, respTime, fl.ticket); ok {
			drain(resp)
			cancel()
			s.endFlight(f.key, fl)
			publish(fillResult{kind: resultObject, obj: obj, key: f.key, stale: obj == f.obj, fwdStatus: resp.StatusCode})
			return nil, nil
		}
	}

	if resp.StatusCode == http.StatusNotModified && f.marker != nil {
		if obj, key, ok := s.revalidatedVariant(ctx, f, resp, reqTime, respTime, fl.ticket); ok {
			drain(resp)
			cancel()
			s.endFlight(f.key, fl)
			publish(fillResult{kind: resultObject, obj: obj, key: key, fwdStatus: resp.StatusCode})
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
			Tags:      s.policy.Tags(resp.Header),
			KeepUntil: s.policy.KeepUntil(&meta, s.opts.Keep),
			SizeHint:  resp.ContentLength,
			Ticket:    fl.ticket,
		})
		if err != nil {
			s.storeError("create", key, err)
			ok, reason = false, "store-unavailable"
		}
	}
	if !ok {
		s.endFlight(f.key, fl)
		detail := ""
		if reason == "store-unavailable" {
			detail = reason
		} else if resp.StatusCode < 500 {
			s.flights.markHitForMiss(f.primary, s.now(), s.opts.HitForMiss)
		}
		res := fillResult{kind: resultPass, fwdStatus: resp.StatusCode, detail: detail, notShareable: reason != "store-unavailable"}
		switch resp.StatusCode {
		case http.StatusInternalServerError, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
			// The leader's own request forbade the stale entry (else
			// revalidated would have used it); a waiter's may allow it
			// (RFC 5861 §4): each one decides.
			res.obj = f.obj
		}
		publish(res)
		return resp, cancel
	}
	s.flights.clearHitForMiss(f.primary)
	s.metrics.fills.Inc()
	s.wg.Add(1)
	go s.copyFill(ctx, cancel, resp, wr, f, fl, key, fields, meta)
	publish(fillResult{kind: resultStream, meta: meta, writer: wr, size: resp.ContentLength, key: key, vary: fields, header: resp.Header, fwdStatus: resp.StatusCode})
	return nil, nil
}

// revalidated handles the origin's answer to a conditional request for the
// stale entry f.obj (§4.3.3). A 304 that selects the entry freshens it
// (§4.3.4) and returns it; a 500, 502, 503 or 504 returns the stale entry
// itself when stale-if-error allows (RFC 5861 §4). Anything else is a new
// response for the caller to handle.
func (s *Server) revalidated(ctx context.Context, r *http.Request, f found, resp *http.Response, reqTime, respTime time.Time, t *store.Ticket) (*store.Object, bool) {
	switch resp.StatusCode {
	case http.StatusNotModified:
		if !cache.Matches304(&f.obj.Meta, resp.Header) {
			return nil, false
		}
		m := s.policy.Freshen(&f.obj.Meta, resp.Header, reqTime, respTime)
		keep := s.policy.KeepUntil(&m, s.opts.Keep)
		// A purge since the request started keeps the entry Invalid; a
		// fill that replaced the entry meanwhile keeps its own metadata.
		if err := s.store.UpdateObjectMeta(ctx, t, f.obj, m, keep); err != nil && !errors.Is(err, store.ErrSuperseded) {
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
// partial is ever stored, and readers following it get an error. When
// storing stops mid-body (a full disk) the store keeps feeding the fill's
// readers from memory and the commit fails with store.ErrUnavailable,
// counted as a store error: the clients get the whole body, nothing is
// stored.
func (s *Server) copyFill(ctx context.Context, cancel context.CancelFunc, resp *http.Response, wr *store.Writer, f found, fl *flight, key string, vary []string, meta cache.Meta) {
	defer s.wg.Done()
	defer cancel()
	defer s.endFlight(f.key, fl)
	defer resp.Body.Close()
	bufp := bufPool.Get().(*[]byte)
	n, err := io.CopyBuffer(wr, resp.Body, *bufp)
	bufPool.Put(bufp)
	if err == nil && resp.ContentLength >= 0 && n != resp.ContentLength {
		err = io.ErrUnexpectedEOF
	}
	if err != nil {
		// End the flight before readers see the abort: a client that
		// retries at once must start a new fill, not join this dead one.
		s.endFlight(f.key, fl)
		wr.Abort()
		if errors.Is(err, store.ErrUnavailable) {
			s.storeError("write", key, err)
			return
		}
		s.metrics.fillErrors.Inc()
		s.log.Warn("fill aborted", "key", key, "bytes", n, "err", err)
		return
	}
	// The body is whole: clients following the fill finish now, without
	// waiting for the commit's fsync.
	wr.Seal()
	fl.sealed.Store(true)
	obj, err := wr.Commit(ctx)
	if errors.Is(err, store.ErrSuperseded) {
		// A purge overtook this fill and a newer response is stored.
		s.log.Debug("fill superseded after a purge", "key", key)
		return
	}
	if errors.Is(err, store.ErrTooLarge) {
		// Chunked and past the size limit: it streamed to its clients
		// without being stored; later requests go straight to the origin.
		s.log.Debug("fill too large to store", "key", key, "err", err)
		s.flights.markHitForMiss(f.primary, s.now(), s.opts.HitForMiss)
		return
	}
	if err != nil {
		s.storeError("commit", key, err)
		return
	}
	s.scheduleVariants(obj) // variants.go
	if len(vary) > 0 {
		s.noteVariant(ctx, f.primary, vary, key, meta)
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
	fl, leader, _ := s.flights.join(f.key, 0, s.store.Ticket)
	if !leader {
		<-s.bgSlots
		return
	}
	s.metrics.fillsInProgress.Inc()
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
	if s.opts.CompressWorkers >= 0 {
		// cellar makes and negotiates the codings itself (variants.go): fill
		// with the identity body, so that one stored response serves every
		// client's Accept-Encoding.
		out.Header["Accept-Encoding"] = []string{"identity"}
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
