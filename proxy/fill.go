package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/cellar-cache/cellar/cache"
	"github.com/cellar-cache/cellar/store"
)

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

// fetch answers r through the origin: as the leader of a new fill of f.key,
// or as a waiter on the fill in progress.
func (s *Server) fetch(w http.ResponseWriter, r *http.Request, f found) {
	s.fetchVariant(w, r, f, 0)
}

// answerPass answers the leader's client with the fill's response that is
// not stored, under the client's lifetime. When the client's request asked
// for something the fill's request did not (a Range, validators, codings
// other than identity), or the response is a 304 that selects nothing
// stored (§4.3.4), the client's own request goes to the origin instead, as
// any pass does.
func (s *Server) answerPass(w http.ResponseWriter, r *http.Request, p *passThrough, res fillResult, st cache.Status, key string) {
	resp := p.resp
	if resp.StatusCode == http.StatusNotModified || s.asksMoreThanFill(r, resp.Header) {
		p.close() // unread: the body may be long and slow
		st.FwdStatus = 0
		if resp.StatusCode == http.StatusNotModified {
			st.Detail = "304-mismatch"
		} else {
			st.Detail = "not-shareable"
			if res.detail != "" {
				st.Detail = res.detail
			}
		}
		s.forwardCacheable(w, r, st)
		return
	}
	defer p.close()
	st.Detail = res.detail
	s.writeResponse(w, r, resp, st, key)
}

// asksMoreThanFill reports whether r has fields that outgoing removed and
// that change the origin's answer: a Range or conditionals, or an
// Accept-Encoding (fills ask for identity) when the response h names it in
// Vary. (Vary: * is not taken to mean Accept-Encoding: every Go and browser
// client sends one, and each such response would be fetched twice.)
func (s *Server) asksMoreThanFill(r *http.Request, h http.Header) bool {
	q := r.Header
	if q["Range"] != nil || q["If-Range"] != nil || q["If-None-Match"] != nil || q["If-Modified-Since"] != nil ||
		q["If-Match"] != nil || q["If-Unmodified-Since"] != nil {
		return true
	}
	if s.opts.CompressWorkers < 0 || q["Accept-Encoding"] == nil {
		return false
	}
	fields, _ := cache.VaryFields(h)
	return slices.ContainsFunc(fields, func(f string) bool { return strings.EqualFold(f, "Accept-Encoding") })
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
			s.serveCacheable(w, r, s.now())
		case <-r.Context().Done():
		}
		return
	}
	collapsed := !leader
	var pass *passThrough
	if leader {
		s.metrics.fillsInProgress.Inc()
		pass = s.newFill(r, f, fl).run(w, r.Context())
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
	if collapsed && res.kind == resultObject && res.stored && res.key != f.key {
		// The leader found its own variant stored meanwhile under a Vary
		// marker; this request may select another: it looks up its own
		// (and is counted there).
		s.serveCacheable(w, r, s.now())
		return
	}
	if redirects == 0 {
		// A response that may not be shared (no-store, private, ...) is a
		// pass; one another fill stored meanwhile is a hit; anything else
		// that went to the origin is a miss.
		switch {
		case res.kind == resultPass && res.notShareable:
			s.metrics.passes.Inc()
		case res.kind == resultObject && res.stored:
			s.metrics.hits.Inc()
		default:
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
		if pass != nil {
			s.answerPass(w, r, pass, res, st, f.key)
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
			if vk := s.variantKey(f.primary, res.vary, r.Header); vk != res.key {
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

// Errors of a fill's body transfer, for readers following it (errStatus
// maps them to 504 and 502).
var (
	// errBetweenBytes: the origin sent no body bytes for
	// Options.BetweenBytes.
	errBetweenBytes = fmt.Errorf("proxy: the origin sent no body bytes within the between-bytes timeout: %w", context.DeadlineExceeded)
	// errFillCap: the fill took longer than Options.FillTimeout.
	errFillCap = fmt.Errorf("proxy: the fill took longer than the fill timeout: %w", context.DeadlineExceeded)
)

// fill is one origin fetch of a cacheable key, run by its flight's leader:
// the origin request, its context, the store ticket (the flight's), the
// response, the store writer, and a single finish that ends them all.
//
// The fetch runs under a context of the server's (Close cancels it), not
// the leader's client's, so a client that disconnects does not fail it for
// the others. No deadline caps the whole transfer unless FillTimeout is
// set: the header comes within ResponseTimeout (the transport's), and then
// every body read within BetweenBytes. An uncacheable response is handed
// off to the leader's client (passThrough) and lives as long as that
// client does.
type fill struct {
	s  *Server
	fl *flight
	f  found
	// r is the leader's request, as the GET the fill sends even for a
	// HEAD: the response is judged and stored as that GET's.
	r      *http.Request
	ctx    context.Context
	cancel context.CancelCauseFunc // nil once handed off
	cap    *time.Timer             // FillTimeout; nil when off

	reqTime, respTime time.Time
	resp              *http.Response // nil before the header, and once handed off
	wr                *store.Writer  // the store writer of a storable response
	key               string         // where the response is stored
	vary              []string       // its Vary fields
	meta              cache.Meta     // its stored metadata
	err               error          // why the body transfer failed, for readers
}

// newFill starts the fill of flight fl for r (the leader's request).
func (s *Server) newFill(r *http.Request, f found, fl *flight) *fill {
	ctx, cancel := context.WithCancelCause(s.bg)
	fi := &fill{s: s, fl: fl, f: f, r: r, ctx: ctx, cancel: cancel, key: f.key}
	if r.Method == http.MethodHead {
		g := *r
		g.Method = http.MethodGet
		fi.r = &g
	}
	if s.opts.FillTimeout > 0 {
		fi.cap = time.AfterFunc(s.opts.FillTimeout, func() { cancel(errFillCap) })
	}
	return fi
}

// run performs the fill and publishes its result to the flight. A response
// that may not be stored is returned to the leader's client as a
// passThrough (nil otherwise), which it must close. w is the leader's
// client (nil for a background revalidation), for 1xx responses.
func (fi *fill) run(w http.ResponseWriter, client context.Context) *passThrough {
	streaming := false
	defer func() {
		if !streaming {
			fi.finish()
		}
	}()
	if res, ok := fi.storedMeanwhile(); ok {
		fi.publish(res)
		return nil
	}
	if err := fi.roundTrip(w); err != nil {
		// A connection error or timeout (RFC 5861 §4): every client
		// decides for itself whether the stale entry, if any, may answer.
		fi.publish(fillResult{kind: resultError, obj: fi.f.obj, key: fi.f.key, err: err})
		return nil
	}
	if res, ok := fi.revalidated(); ok {
		drain(fi.resp)
		fi.publish(res)
		return nil
	}
	res := fi.startStoring()
	if res.kind == resultPass {
		fi.publish(res)
		return fi.handOff(client)
	}
	streaming = true
	fi.s.wg.Add(1)
	go fi.copy()
	fi.publish(res)
	return nil
}

// publish hands the result to the flight's waiters. A final result (not a
// stream) ends the flight first, so that a request arriving from now on
// looks in the store or goes to the origin, never joins a finished flight.
func (fi *fill) publish(res fillResult) {
	if res.kind != resultStream {
		fi.s.endFlight(fi.f.key, fi.fl)
	}
	fi.fl.res = res
	close(fi.fl.ready)
}

// finish is the fill's one exit, on every path: the flight ends (before
// readers see an abort, so that a client retrying at once starts a new
// fill), an uncommitted writer is discarded with the reason, the response
// body is closed and the context released.
func (fi *fill) finish() {
	fi.s.endFlight(fi.f.key, fi.fl)
	if fi.wr != nil {
		cause := fi.err
		if cause == nil {
			cause = errors.New("proxy: fill ended before its commit")
		}
		fi.wr.Fail(cause) // a no-op after Commit
	}
	if fi.resp != nil {
		fi.resp.Body.Close()
	}
	if fi.cap != nil {
		fi.cap.Stop()
	}
	if fi.cancel != nil {
		fi.cancel(context.Canceled)
	}
}

// storedMeanwhile looks in the store again: another flight may have stored
// the object between our lookup and joining ([gc] groupcache load). That
// includes the variant this request selects under a Vary marker stored
// meanwhile: the lookup found nothing at the URL, the flight keyed by it
// ended with the marker's commit, and the variant is stored (its key is
// not the flight's; fetch has each waiter look up its own).
func (fi *fill) storedMeanwhile() (fillResult, bool) {
	s, f := fi.s, fi.f
	if f.obj != nil {
		return fillResult{}, false
	}
	again := s.lookup(fi.ctx, fi.r, f.primary, time.Time{})
	if again.obj == nil || again.key != f.key && (f.marker != nil || again.marker == nil) {
		return fillResult{}, false
	}
	if lk := s.policy.Evaluate(fi.r, &again.obj.Meta, s.now()); lk.Action != cache.Serve {
		return fillResult{}, false
	}
	return fillResult{kind: resultObject, obj: again.obj, key: again.key, stored: true}, true
}

// roundTrip sends the fill's request: conditional on the stored entries
// (§4.3.1), 1xx responses forwarded to w.
func (fi *fill) roundTrip(w http.ResponseWriter) error {
	s, f := fi.s, fi.f
	out := s.outgoing(fi.ctx, fi.r)
	if f.obj != nil && !f.reload {
		cache.Conditional(out.Header, &f.obj.Meta) // §4.3.1
	}
	if !f.reload {
		addVariantETags(out.Header, f) // §4.3.1: every stored variant's ETag
	}
	if w != nil {
		out = out.WithContext(httptrace.WithClientTrace(out.Context(), s.interimTrace(w))) // keeps the route (rewrite)
	}
	fi.reqTime = s.now()
	s.metrics.originRequests.Inc()
	resp, err := s.transport.RoundTrip(out)
	fi.respTime = s.now()
	if err != nil {
		if cause := context.Cause(fi.ctx); cause != nil && cause != context.Canceled {
			err = cause
		}
		return err
	}
	removeHopByHop(resp.Header)
	if s.policy.StripSetCookie(fi.r) {
		delete(resp.Header, "Set-Cookie") // cache.Rule.StripSetCookie
	}
	resp.Body = newStallReader(fi.ctx, fi.cancel, resp.Body, s.opts.BetweenBytes)
	fi.resp = resp
	return nil
}

// revalidated handles the origin's answer to a conditional request (§4.3.3)
// for the stale entry f.obj or one of the variants listed in f.marker. A
// 304 that selects a stored response freshens it (§4.3.4) and answers; a
// 500, 502, 503 or 504 answers with the stale entry itself when
// stale-if-error allows (RFC 5861 §4). Anything else is a new response.
func (fi *fill) revalidated() (fillResult, bool) {
	s, f, resp := fi.s, fi.f, fi.resp
	res := fillResult{kind: resultObject, key: f.key, fwdStatus: resp.StatusCode}
	if f.obj != nil {
		switch resp.StatusCode {
		case http.StatusNotModified:
			if cache.Matches304(&f.obj.Meta, resp.Header) {
				m := s.policy.Freshen(&f.obj.Meta, resp.Header, fi.reqTime, fi.respTime)
				keep := s.policy.KeepUntil(&m, s.opts.Keep)
				// A purge since the request started keeps the entry
				// Invalid; a fill that replaced the entry meanwhile keeps
				// its own metadata.
				if err := s.store.UpdateObjectMeta(fi.ctx, fi.fl.ticket, f.obj, m, keep); err != nil && !errors.Is(err, store.ErrSuperseded) {
					s.storeError("update", f.key, err)
				}
				obj := *f.obj
				obj.Meta, obj.KeepUntil = m, keep
				res.obj = &obj
				return res, true
			}
		case http.StatusInternalServerError, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
			if s.policy.Evaluate(fi.r, &f.obj.Meta, fi.respTime).StaleIfError {
				res.obj, res.stale = f.obj, true
				return res, true
			}
		}
	}
	if resp.StatusCode == http.StatusNotModified && f.marker != nil {
		if obj, key, ok := s.revalidatedVariant(fi.ctx, f, resp, fi.reqTime, fi.respTime, fi.fl.ticket); ok {
			res.obj, res.key = obj, key
			return res, true
		}
	}
	return fillResult{}, false
}

// startStoring judges the response (§3) and, when it may be stored,
// creates its store writer: a resultStream. Otherwise it returns a
// resultPass and marks the URL hit-for-miss when the response may not be
// shared.
func (fi *fill) startStoring() fillResult {
	s, f, resp := fi.s, fi.f, fi.resp
	ok, reason := s.policy.Storable(fi.r, resp.StatusCode, resp.Header)
	fields, star := cache.VaryFields(resp.Header)
	if ok && star {
		ok, reason = false, "vary-star" // §4.1: Vary: * never matches
	}
	if ok {
		if len(fields) > 0 {
			fi.key = s.variantKey(f.primary, fields, fi.r.Header)
		}
		fi.vary = fields
		fi.meta = s.policy.NewMeta(fi.r, resp.StatusCode, resp.Header, fi.reqTime, fi.respTime)
		wr, err := s.store.Create(fi.ctx, fi.key, fi.meta, store.CreateOptions{
			Tags:      s.policy.Tags(resp.Header),
			KeepUntil: s.policy.KeepUntil(&fi.meta, s.opts.Keep),
			SizeHint:  resp.ContentLength,
			Ticket:    fi.fl.ticket,
		})
		if err == nil {
			fi.wr = wr
			s.flights.clearHitForMiss(f.primary)
			s.metrics.fills.Inc()
			return fillResult{kind: resultStream, meta: fi.meta, writer: wr, size: resp.ContentLength, key: fi.key, vary: fields, header: resp.Header, fwdStatus: resp.StatusCode}
		}
		if errors.Is(err, store.ErrTooLarge) {
			// Larger than the store takes: not storable, like no-store.
			ok, reason = false, "too-large"
		} else {
			s.storeError("create", fi.key, err)
			ok, reason = false, "store-unavailable"
		}
	}
	res := fillResult{kind: resultPass, fwdStatus: resp.StatusCode, notShareable: reason != "store-unavailable"}
	if reason == "store-unavailable" {
		res.detail = reason
	} else if resp.StatusCode < 500 {
		s.flights.markHitForMiss(f.primary, s.now(), s.opts.HitForMiss)
	}
	switch resp.StatusCode {
	case http.StatusInternalServerError, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		// The leader's own request forbade the stale entry (else
		// revalidated would have used it); a waiter's may allow it
		// (RFC 5861 §4): each one decides.
		res.obj = f.obj
	}
	return res
}

// copy copies the origin's body into the store writer and commits it. It
// runs under the fill's context (tracked by s.wg), so the fill completes
// even when every client has gone. A short or failed body aborts the fill:
// nothing partial is ever stored, and readers following it get the reason.
// When storing stops mid-body (a full disk, or a chunked body past the
// size limit) the store keeps feeding the fill's readers and the commit
// fails: the clients get the whole body, nothing is stored.
func (fi *fill) copy() {
	s := fi.s
	defer s.wg.Done()
	defer fi.finish()
	bufp := bufPool.Get().(*[]byte)
	n, err := io.CopyBuffer(fi.wr, fi.resp.Body, *bufp)
	bufPool.Put(bufp)
	if err == nil && fi.resp.ContentLength >= 0 && n != fi.resp.ContentLength {
		err = io.ErrUnexpectedEOF
	}
	if err != nil {
		fi.err = err
		s.metrics.fillErrors.Inc()
		s.log.Warn("fill aborted", "key", fi.key, "bytes", n, "err", err)
		return
	}
	// The body is whole: clients following the fill finish now, without
	// waiting for the commit's fsync; new requests wait for the commit.
	fi.fl.sealed.Store(true) // first: a client's next request must see it
	fi.wr.Seal()
	obj, err := fi.wr.Commit(fi.ctx)
	switch {
	case errors.Is(err, store.ErrSuperseded):
		// A purge overtook this fill and a newer response is stored.
		s.log.Debug("fill superseded after a purge", "key", fi.key)
	case errors.Is(err, store.ErrTooLarge):
		// Chunked and past the size limit: it streamed to its clients
		// without being stored; later requests go straight to the origin.
		s.log.Debug("fill too large to store", "key", fi.key, "err", err)
		s.flights.markHitForMiss(fi.f.primary, s.now(), s.opts.HitForMiss)
	case err != nil:
		s.storeError("commit", fi.key, err)
	default:
		s.scheduleCodings(obj) // codings.go
		if len(fi.vary) > 0 {
			s.noteVariant(fi.ctx, fi.f.primary, fi.vary, fi.key, fi.meta)
		}
	}
}

// handOff gives the response of a pass to the leader's client: from now on
// it lives as long as that client (client), with no total cap, and no
// longer belongs to the fill.
func (fi *fill) handOff(client context.Context) *passThrough {
	p := &passThrough{resp: fi.resp, cancel: fi.cancel}
	if client != nil {
		cancel := fi.cancel
		p.stop = context.AfterFunc(client, func() { cancel(context.Canceled) })
	}
	if fi.cap != nil {
		fi.cap.Stop()
	}
	fi.resp, fi.cancel = nil, nil
	return p
}

// passThrough is an origin response that is not stored, owned by the
// client it answers.
type passThrough struct {
	resp   *http.Response
	cancel context.CancelCauseFunc
	stop   func() bool // stops the client's AfterFunc; nil without a client
}

// close ends the response: body closed, context released.
func (p *passThrough) close() {
	p.resp.Body.Close()
	if p.stop != nil {
		p.stop()
	}
	p.cancel(context.Canceled)
}

// stallReader is a response body whose every Read must return within d:
// when the origin sends nothing for that long the fetch's context is
// cancelled with errBetweenBytes (timeouts.between_bytes, like Varnish's
// between_bytes_timeout and nginx's proxy_read_timeout), and the read
// fails with it. The total transfer time is not limited.
type stallReader struct {
	io.ReadCloser
	ctx   context.Context
	d     time.Duration
	timer *time.Timer
}

func newStallReader(ctx context.Context, cancel context.CancelCauseFunc, body io.ReadCloser, d time.Duration) *stallReader {
	t := time.AfterFunc(d, func() { cancel(errBetweenBytes) })
	t.Stop()
	return &stallReader{ReadCloser: body, ctx: ctx, d: d, timer: t}
}

func (r *stallReader) Read(p []byte) (int, error) {
	r.timer.Reset(r.d)
	n, err := r.ReadCloser.Read(p)
	r.timer.Stop()
	if err != nil && err != io.EOF {
		if cause := context.Cause(r.ctx); cause != nil && cause != context.Canceled {
			err = cause
		}
	}
	return n, err
}

func (r *stallReader) Close() error {
	r.timer.Stop()
	return r.ReadCloser.Close()
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
		if p := s.newFill(req, f, fl).run(nil, nil); p != nil {
			drain(p.resp)
			p.close()
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
		// cellar makes and negotiates the codings itself (codings.go): fill
		// with the identity body, so that one stored response serves every
		// client's Accept-Encoding.
		out.Header["Accept-Encoding"] = []string{"identity"}
	}
	if _, ok := out.Header["User-Agent"]; !ok {
		out.Header["User-Agent"] = []string{""} // none, rather than Go's
	}
	// The origin chooses with the normalized fields that select the
	// variant it is stored as (cache.Options.VaryNormalize).
	out.Header = s.policy.NormalizeVaried(out.Header)
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
