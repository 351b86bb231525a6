package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"

	"github.com/cellar-cache/cellar/cache"
	"github.com/cellar-cache/cellar/store"
)

// Slices (as nginx's slice module and Traffic Server's slice plugin): an
// object larger than Options.SliceMin that no complete stored response
// answers is fetched from the origin in aligned Range requests of
// Options.SliceSize bytes, each stored as its own object (a 206, RFC 9111
// §3.3) and combined with the others at serve time (§3.4): a Range request
// fetches only the slices it covers; a GET of a sliced object streams it
// slice by slice, fetching what is missing.
//
// Keys: the slice index at primary+"\x00slices" (the representation's
// header, its length and validator; no body) and slice i at
// primary+"\x00s="+i, so that a purge of the URL removes them all. Every
// slice must carry the index's validator (the strong ETag, else
// Last-Modified): a slice that comes back with another one means the
// representation changed, and the whole object is purged before the new
// slice is stored.

// sliceIndexSuffix and sliceSuffix build the keys of a sliced object.
const (
	sliceIndexSuffix = "\x00slices"
	sliceSuffix      = "\x00s="
)

// errNotSliceable is returned when the origin's answer does not fit the
// slice path (a 200 to a Range request, an error status, an object below
// SliceMin): the request then takes the ordinary path.
var errNotSliceable = errors.New("proxy: not sliceable")

// errSliceChanged reports a slice whose validator is not the index's.
var errSliceChanged = errors.New("proxy: the object changed while it was sliced")

// sliced is what the index says about a sliced object.
type sliced struct {
	index     *store.Object
	total     int64
	validator string
}

func (sl *sliced) count(size int64) int64 { return (sl.total + size - 1) / size }

// sliceFlights collapses concurrent fetches of one slice.
type sliceFlights struct {
	mu sync.Mutex // protects m
	m  map[string]*sliceCall
}

type sliceCall struct {
	done chan struct{}
	obj  *store.Object
	idx  *sliced
	err  error
}

// do runs fn once for key among concurrent callers; each waiter honours
// its own ctx.
func (g *sliceFlights) do(ctx context.Context, key string, fn func() (*store.Object, *sliced, error)) (*store.Object, *sliced, error) {
	g.mu.Lock()
	if c, ok := g.m[key]; ok {
		g.mu.Unlock()
		select {
		case <-c.done:
			return c.obj, c.idx, c.err
		case <-ctx.Done():
			return nil, nil, ctx.Err()
		}
	}
	if g.m == nil {
		g.m = make(map[string]*sliceCall)
	}
	c := &sliceCall{done: make(chan struct{})}
	g.m[key] = c
	g.mu.Unlock()
	c.obj, c.idx, c.err = fn()
	g.mu.Lock()
	delete(g.m, key)
	g.mu.Unlock()
	close(c.done)
	return c.obj, c.idx, c.err
}

// slicing reports whether r, which found no stored response, may take the
// slice path: slicing on, a GET or HEAD without conditional fields and
// with at most one byte range.
func (s *Server) slicing(r *http.Request) bool {
	if s.opts.SliceSize <= 0 || (r.Method != http.MethodGet && r.Method != http.MethodHead) {
		return false
	}
	h := r.Header
	if h["If-Range"] != nil || h["If-None-Match"] != nil || h["If-Modified-Since"] != nil ||
		h["If-Match"] != nil || h["If-Unmodified-Since"] != nil {
		return false
	}
	rg := h.Get("Range")
	return rg == "" || (strings.HasPrefix(rg, "bytes=") && !strings.Contains(rg, ","))
}

// serveSliced answers r from slices. It reports false, having written
// nothing, when the request should take the ordinary path instead: no
// Range and no slice index, or an origin answer that does not fit.
func (s *Server) serveSliced(w http.ResponseWriter, r *http.Request, primary string) bool {
	ok, changed := s.serveSlicedOnce(w, r, primary)
	if changed {
		// The object changed before anything was sent: the fetch that saw
		// it stored the new index; serve from that.
		ok, _ = s.serveSlicedOnce(w, r, primary)
	}
	return ok
}

// serveSlicedOnce is serveSliced; changed reports that it wrote nothing
// because a slice showed that the object changed.
func (s *Server) serveSlicedOnce(w http.ResponseWriter, r *http.Request, primary string) (ok, changed bool) {
	ctx := r.Context()
	size := s.opts.SliceSize
	idx := s.sliceIndex(ctx, primary)
	rg := r.Header.Get("Range")
	if idx == nil && rg == "" {
		return false, false
	}
	fetched := idx == nil
	if idx == nil {
		// Learn the length from the slice the range starts in (slice 0
		// for a suffix range).
		first := int64(0)
		if start, _, ok := parseSimpleRange(rg, -1); ok && start >= 0 {
			first = start / size
		}
		var err error
		if _, idx, err = s.slice(ctx, r, primary, nil, first); err != nil {
			return false, false
		}
	}
	if !fetched {
		// Would the first slice come from the store?
		if obj, err := s.store.Get(ctx, primary+sliceSuffix+strconv.FormatInt(firstSlice(r, idx, size), 10)); err != nil || validatorOf(obj.Meta.Header) != idx.validator {
			fetched = true
		}
	}
	start, length := int64(0), idx.total
	status := http.StatusOK
	if rg != "" {
		a, b, ok := parseSimpleRange(rg, idx.total)
		if !ok {
			return false, false // unsatisfiable or malformed: the ordinary path answers it
		}
		start, length, status = a, b-a+1, http.StatusPartialContent
	}
	h := w.Header()
	s.policy.ServeHeader(h, &idx.index.Meta)
	delete(h, sliceField)
	h["Content-Length"] = []string{strconv.FormatInt(length, 10)}
	if status == http.StatusPartialContent {
		h["Content-Range"] = []string{fmt.Sprintf("bytes %d-%d/%d", start, start+length-1, idx.total)}
	}
	st := cache.Status{Hit: true, Detail: "sliced"}
	if fetched {
		st = cache.Status{Fwd: "partial", Detail: "sliced"} // RFC 9211 §2.2
	}
	h["Cache-Status"] = []string{s.statusValue(st, primary)}
	h["Via"] = append(h["Via"][:len(h["Via"]):len(h["Via"])], s.responseVia)
	if r.Method == http.MethodHead {
		w.WriteHeader(status)
		return true, false
	}
	wrote := false
	for off := start; off < start+length; {
		i := off / size
		obj, now, err := s.slice(ctx, r, primary, idx, i)
		if err == nil && now.validator != idx.validator {
			err = errSliceChanged
		}
		if err != nil {
			if !wrote {
				clear(h)
				return false, errors.Is(err, errSliceChanged)
			}
			if ctx.Err() == nil {
				s.log.Warn("sliced response aborted", "key", primary, "slice", i, "err", err)
			}
			panic(http.ErrAbortHandler)
		}
		if !wrote {
			w.WriteHeader(status)
			wrote = true
		}
		sliceStart := i * size
		from := off - sliceStart
		n := min(obj.Size-from, start+length-off)
		if n <= 0 {
			panic(http.ErrAbortHandler) // a short slice: the object changed
		}
		if err := s.copySlice(ctx, w, obj, from, n); err != nil {
			panic(http.ErrAbortHandler)
		}
		off += n
	}
	if !wrote {
		w.WriteHeader(status)
	}
	return true, false
}

// firstSlice is the slice that r's range (or a whole GET) starts in.
func firstSlice(r *http.Request, idx *sliced, size int64) int64 {
	if a, _, ok := parseSimpleRange(r.Header.Get("Range"), idx.total); ok {
		return a / size
	}
	return 0
}

// copySlice writes n bytes of obj from off to w.
func (s *Server) copySlice(ctx context.Context, w io.Writer, obj *store.Object, off, n int64) error {
	if b, ok := obj.Body(); ok {
		_, err := w.Write(b[off : off+n])
		return err
	}
	rc, err := s.store.NewReader(ctx, obj, off, n)
	if err != nil {
		return err
	}
	defer rc.Close()
	bufp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bufp)
	_, err = io.CopyBuffer(w, rc, *bufp)
	return err
}

// sliceField records the sliced object's length in the index's header.
const sliceField = "Cellar-Slices"

// sliceIndex returns the index of a sliced object when one is stored.
func (s *Server) sliceIndex(ctx context.Context, primary string) *sliced {
	obj, err := s.store.Get(ctx, primary+sliceIndexSuffix)
	if err != nil {
		s.storeError("get", primary+sliceIndexSuffix, err)
		return nil
	}
	total, err := strconv.ParseInt(obj.Meta.Header.Get(sliceField), 10, 64)
	if err != nil || total <= 0 {
		return nil
	}
	return &sliced{index: obj, total: total, validator: validatorOf(obj.Meta.Header)}
}

// validatorOf is a response's validator for slicing: its strong ETag,
// else its Last-Modified.
func validatorOf(h http.Header) string {
	if et := h.Get("Etag"); et != "" && !strings.HasPrefix(et, "W/") {
		return "e:" + et
	}
	if lm := h.Get("Last-Modified"); lm != "" {
		return "m:" + lm
	}
	return ""
}

// slice returns stored slice i of primary, fetching it from the origin
// when it is missing or no longer fresh, together with the index it
// belongs to (idx, or the one made or replaced by this fetch).
func (s *Server) slice(ctx context.Context, r *http.Request, primary string, idx *sliced, i int64) (*store.Object, *sliced, error) {
	key := primary + sliceSuffix + strconv.FormatInt(i, 10)
	if idx != nil {
		if obj, err := s.store.Get(ctx, key); err == nil {
			plain := &http.Request{Method: http.MethodGet, URL: r.URL, Host: r.Host, Header: http.Header{}}
			if s.policy.Evaluate(plain, &obj.Meta, s.now()).Action == cache.Serve && validatorOf(obj.Meta.Header) == idx.validator {
				return obj, idx, nil
			}
		}
	}
	return s.sliceFlights.do(ctx, key, func() (*store.Object, *sliced, error) {
		// The fetch belongs to the server, not to the client that asked
		// first (Close cancels it); Options.FillTimeout caps it when set.
		fctx, cancel := context.WithCancel(s.bg)
		defer cancel()
		if s.opts.FillTimeout > 0 {
			var cancelT context.CancelFunc
			fctx, cancelT = context.WithTimeout(fctx, s.opts.FillTimeout)
			defer cancelT()
		}
		return s.fetchSlice(fctx, r, primary, idx, i, key)
	})
}

// fetchSlice asks the origin for slice i and stores it (and the index,
// when it is new or the object changed).
func (s *Server) fetchSlice(ctx context.Context, r *http.Request, primary string, idx *sliced, i int64, key string) (*store.Object, *sliced, error) {
	size := s.opts.SliceSize
	from, to := i*size, (i+1)*size-1
	if idx != nil {
		to = min(to, idx.total-1)
	}
	out := s.outgoing(ctx, r)
	out.Header["Range"] = []string{fmt.Sprintf("bytes=%d-%d", from, to)}
	reqTime := s.now()
	s.metrics.originRequests.Inc()
	resp, err := s.transport.RoundTrip(out)
	if err != nil {
		return nil, nil, err
	}
	respTime := s.now()
	defer drain(resp)
	removeHopByHop(resp.Header)
	if resp.StatusCode != http.StatusPartialContent {
		return nil, nil, errNotSliceable
	}
	a, b, total, ok := parseContentRange(resp.Header.Get("Content-Range"))
	if !ok || a != from || total <= 0 || (b != to && b != total-1) {
		return nil, nil, errNotSliceable
	}
	if idx == nil && total <= s.opts.SliceMin {
		return nil, nil, errNotSliceable
	}
	// Judge the slice as the representation it is part of.
	full := resp.Header.Clone()
	delete(full, "Content-Range")
	full["Content-Length"] = []string{strconv.FormatInt(total, 10)}
	if ok, _ := s.policy.Storable(r, http.StatusOK, full); !ok {
		return nil, nil, errNotSliceable
	}
	if _, star := cache.VaryFields(full); star || len(full["Vary"]) > 0 {
		return nil, nil, errNotSliceable // variants are not sliced
	}
	v := validatorOf(resp.Header)
	if v == "" {
		return nil, nil, errNotSliceable // slices could not be matched
	}
	if idx == nil || idx.validator != v || idx.total != total {
		if idx != nil {
			// §3.4: only responses with the same strong validator are
			// combined; the object changed: start over.
			if _, err := s.store.Purge(ctx, store.Selector{URL: primary}, false); err != nil {
				s.storeError("purge", primary, err)
			}
		}
		imeta := s.policy.NewMeta(r, http.StatusOK, full, reqTime, respTime)
		imeta.Header[sliceField] = []string{strconv.FormatInt(total, 10)}
		iobj, err := s.storeBody(ctx, primary+sliceIndexSuffix, imeta, nil)
		if err != nil {
			return nil, nil, err
		}
		idx = &sliced{index: iobj, total: total, validator: v}
	}
	meta := s.policy.NewMeta(r, http.StatusPartialContent, resp.Header, reqTime, respTime)
	obj, err := s.storeBody(ctx, key, meta, io.LimitReader(resp.Body, b-a+1))
	if err != nil {
		return nil, nil, err
	}
	if obj.Size != b-a+1 {
		return nil, nil, fmt.Errorf("proxy: slice %d of %q: %d bytes, want %d", i, primary, obj.Size, b-a+1)
	}
	s.metrics.fills.Inc()
	return obj, idx, nil
}

// storeBody stores body (nil: empty) under key.
func (s *Server) storeBody(ctx context.Context, key string, meta cache.Meta, body io.Reader) (*store.Object, error) {
	wr, err := s.store.Create(ctx, key, meta, store.CreateOptions{
		KeepUntil: s.policy.KeepUntil(&meta, s.opts.Keep),
		SizeHint:  -1,
	})
	if err != nil {
		return nil, err
	}
	if body != nil {
		bufp := bufPool.Get().(*[]byte)
		_, err = io.CopyBuffer(wr, body, *bufp)
		bufPool.Put(bufp)
		if err != nil {
			wr.Abort()
			return nil, err
		}
	}
	wr.Seal()
	return wr.Commit(ctx)
}

// parseSimpleRange reads one "bytes=a-b", "bytes=a-" or "bytes=-n" range
// against a representation of total bytes (total < 0: unknown, then only
// the start is reported, -1 for a suffix range). It returns the first and
// last byte positions.
func parseSimpleRange(v string, total int64) (first, last int64, ok bool) {
	spec, found := strings.CutPrefix(strings.TrimSpace(v), "bytes=")
	if !found {
		return 0, 0, false
	}
	a, b, found := strings.Cut(strings.TrimSpace(spec), "-")
	if !found {
		return 0, 0, false
	}
	if a == "" {
		n, err := strconv.ParseInt(b, 10, 64)
		if err != nil || n <= 0 {
			return 0, 0, false
		}
		if total < 0 {
			return -1, -1, true
		}
		return max(total-n, 0), total - 1, true
	}
	first, err := strconv.ParseInt(a, 10, 64)
	if err != nil || first < 0 {
		return 0, 0, false
	}
	if total < 0 {
		return first, -1, true
	}
	last = total - 1
	if b != "" {
		l, err := strconv.ParseInt(b, 10, 64)
		if err != nil || l < first {
			return 0, 0, false
		}
		last = min(l, total-1)
	}
	if first >= total {
		return 0, 0, false
	}
	return first, last, true
}

// parseContentRange reads "bytes a-b/total" (RFC 9110 §14.4).
func parseContentRange(v string) (a, b, total int64, ok bool) {
	spec, found := strings.CutPrefix(v, "bytes ")
	if !found {
		return 0, 0, 0, false
	}
	rng, tot, found := strings.Cut(spec, "/")
	if !found {
		return 0, 0, 0, false
	}
	as, bs, found := strings.Cut(rng, "-")
	if !found {
		return 0, 0, 0, false
	}
	var err1, err2, err3 error
	a, err1 = strconv.ParseInt(as, 10, 64)
	b, err2 = strconv.ParseInt(bs, 10, 64)
	total, err3 = strconv.ParseInt(tot, 10, 64)
	if err1 != nil || err2 != nil || err3 != nil || a < 0 || b < a || b >= total {
		return 0, 0, 0, false
	}
	return a, b, total, true
}
