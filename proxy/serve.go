package proxy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"syscall"
	"time"

	"github.com/cellar-cache/cellar/cache"
	"github.com/cellar-cache/cellar/store"
)

// serveObject answers r from the stored object obj (§4): the stored header
// fields, Age (§5.1), Cache-Status, and the body, or 304 / 412 / 206 / 416
// when the request's conditional or Range fields ask for that (RFC 9110
// §13, §14). A disk object whose body cannot be read is a miss.
//
// The header comes from obj's preparedHit (prepared.go), so that a memory
// hit sets a ready list of fields and writes the stored body with one
// Write: no copy of the body, no allocation in cellar's handler.
func (s *Server) serveObject(w http.ResponseWriter, r *http.Request, obj *store.Object, lk cache.Lookup, st cache.Status) {
	p := s.prepared(obj)
	// The negotiated coding variant, if any (codings.go).
	a, done := s.pickEncoding(w, r, obj, p, lk, st)
	if done {
		return
	}
	obj = a.body
	body, inMemory := obj.Body()
	full := needsServeContent(r, p.status)
	var rc io.ReadCloser
	if !inMemory && r.Method != http.MethodHead && obj.Size > 0 && !full {
		var err error
		rc, err = s.store.NewReader(r.Context(), obj, 0, -1)
		if err != nil {
			s.storeError("read", obj.Key, err)
			s.fetch(w, traced(w, r), found{primary: s.policy.Key(r), key: identityKey(obj.Key)})
			return
		}
		defer rc.Close()
	}

	h := w.Header()
	if conditional(r) {
		a.fields.setIn(h) // what the answer is depends on them
	} else {
		a.fields.sendIn(w) // nothing changes them: the engine may send them as they are
	}
	h["Age"] = ageValue(lk.Age)
	h["Cache-Status"] = s.statusValues(st, obj.Key)
	if conditional(r) {
		// What the client is sent decides: the variant's entity tag.
		m := cache.Meta{Status: p.status, Header: h}
		if answerPreconditionFailed(w, r, &m) {
			return
		}
		if full {
			s.serveContent(counted(w, a.served), r, obj, body, inMemory)
			return
		}
		if answerNotModified(w, r, &m) {
			return
		}
	}
	if bodyAllowed(p.status) {
		h["Content-Length"] = lengthValues.get(obj.Size)
	}
	w.WriteHeader(p.status)
	if r.Method == http.MethodHead || obj.Size == 0 {
		return
	}
	if inMemory {
		releaseRequest(w) // nothing of r is kept past this hit (release.go)
		// One Write of the stored bytes: a server may send them with the
		// header in one system call. A client gone is a short write.
		n, _ := w.Write(body)
		if a.served != nil {
			a.served.Add(float64(n))
		}
		return
	}
	bufp := bufPool.Get().(*[]byte)
	n, err := io.CopyBuffer(writerOnly{w}, rc, *bufp)
	bufPool.Put(bufp)
	if a.served != nil {
		a.served.Add(float64(n))
	}
	if err != nil {
		if r.Context().Err() == nil {
			s.storeError("read", obj.Key, err)
		}
		// The status line is out: abort so the client sees a truncated
		// response, never a short one that looks complete.
		panic(http.ErrAbortHandler)
	}
}

// serveContent answers a 200 response's Range, If-Range and conditional
// fields with the body of obj (body when it is in memory): net/http
// implements RFC 9110 §13-§14 for seekable content. The header is set.
func (s *Server) serveContent(w http.ResponseWriter, r *http.Request, obj *store.Object, body []byte, inMemory bool) {
	h := w.Header()
	delete(h, "Content-Length")
	if _, ok := h["Content-Encoding"]; ok {
		// ServeContent leaves a whole coded body's length unset (it
		// sets it for ranges and removes it from 304s and errors).
		h["Content-Length"] = lengthValues.get(obj.Size)
	}
	var modtime time.Time
	if lm := h["Last-Modified"]; len(lm) > 0 {
		modtime, _ = http.ParseTime(lm[0])
	}
	if _, ok := h["Content-Type"]; !ok {
		h["Content-Type"] = nil // never sniff a stored response
	}
	var rs io.ReadSeeker
	if inMemory {
		rs = bytes.NewReader(body)
	} else {
		rs = &objectSeeker{ctx: r.Context(), st: s.store, obj: obj, size: obj.Size}
	}
	defer closeSeeker(rs)
	http.ServeContent(w, r, "", modtime, rs)
}

// writerOnly hides every method of a writer but Write, so that io.Copy
// uses its own buffer.
type writerOnly struct{ io.Writer }

// conditional reports whether r has a field that may change the answer
// from a stored 200 (RFC 9110 §13.1, §14.2).
func conditional(r *http.Request) bool {
	h := r.Header
	return h["If-Match"] != nil || h["If-None-Match"] != nil || h["If-Modified-Since"] != nil ||
		h["If-Unmodified-Since"] != nil || h["Range"] != nil || h["If-Range"] != nil
}

// finishHeader adds to h what every answer from a stored response, or one
// being stored, carries beyond its stored fields: Age (RFC 9111 §5.1),
// Cache-Status (RFC 9211) for key, and cellar's Via member. The values come
// from caches (hitvalues.go).
func (s *Server) finishHeader(h http.Header, age time.Duration, st cache.Status, key string) {
	h["Age"] = ageValue(age)
	h["Cache-Status"] = s.statusValues(st, key)
	s.addVia(h)
}

// answerPreconditionFailed answers 412 when r's If-Match or
// If-Unmodified-Since fails against the response m (RFC 9110 §13.2.2 steps
// 1-2) and reports whether it did.
func answerPreconditionFailed(w http.ResponseWriter, r *http.Request, m *cache.Meta) bool {
	if !cache.PreconditionFailed(r, m) {
		return false
	}
	delete(w.Header(), "Content-Length")
	w.WriteHeader(http.StatusPreconditionFailed)
	return true
}

// answerNotModified answers 304 when r's If-None-Match or
// If-Modified-Since matches the response m (RFC 9110 §13.2.2 steps 3-4) and
// reports whether it did.
func answerNotModified(w http.ResponseWriter, r *http.Request, m *cache.Meta) bool {
	if !cache.NotModified(r, m) {
		return false
	}
	delete(w.Header(), "Content-Length")
	w.WriteHeader(http.StatusNotModified)
	return true
}

// needsServeContent reports whether r's Range or conditional fields need
// the full RFC 9110 treatment that http.ServeContent gives a 200 response.
func needsServeContent(r *http.Request, status int) bool {
	if status != http.StatusOK {
		return false
	}
	h := r.Header
	return h["Range"] != nil || h["If-Range"] != nil ||
		h["If-None-Match"] != nil || h["If-Modified-Since"] != nil
}

// bodyAllowed reports whether a response with this status has content.
func bodyAllowed(status int) bool {
	return status >= 200 && status != http.StatusNoContent && status != http.StatusNotModified
}

// serveStream answers r from a fill in progress: headers at once, then the
// body as the origin delivers it (read while write), flushed as it comes so
// that the client's time to first byte is the origin's.
func (s *Server) serveStream(w http.ResponseWriter, r *http.Request, res fillResult, st cache.Status) {
	m := &res.meta
	lk := s.policy.Evaluate(r, m, s.now())
	st.TTL, st.HasTTL = lk.TTL, true
	h := w.Header()
	if res.header != nil {
		// The client whose request fetched the response gets it as the
		// origin sent it, minus the fields aimed only at cellar.
		for k, v := range res.header {
			h[k] = v[:len(v):len(v)]
		}
		s.policy.StripForClient(h)
	} else {
		s.policy.ServeHeader(h, m)
	}
	s.streamVary(h, m, res.size)
	s.finishHeader(h, lk.Age, st, res.key)
	delete(h, "Content-Length")
	if answerPreconditionFailed(w, r, m) || answerNotModified(w, r, m) {
		return
	}
	switch ans, start, length := streamRange(r, m, res.size); ans {
	case rangeUnsatisfiable:
		h["Content-Range"] = []string{"bytes */" + strconv.FormatInt(res.size, 10)}
		w.WriteHeader(http.StatusRequestedRangeNotSatisfiable)
		return
	case rangePartial:
		s.streamPart(w, r, res, st, start, length)
		return
	}
	if res.size >= 0 && bodyAllowed(m.Status) {
		h["Content-Length"] = []string{strconv.FormatInt(res.size, 10)}
	}
	if r.Method == http.MethodHead || res.size == 0 || !bodyAllowed(m.Status) {
		w.WriteHeader(m.Status)
		return
	}
	rd := res.writer.NewReader(r.Context())
	defer rd.Close()
	// The status line waits for the first body bytes: a fill that fails
	// before them (the origin closed, or stalled past BetweenBytes) is
	// answered 502 or 504, not with a cut empty response.
	bufp := bufPool.Get().(*[]byte)
	n, err := io.ReadAtLeast(rd, *bufp, 1)
	if n == 0 && err != nil && err != io.EOF {
		bufPool.Put(bufp)
		if r.Context().Err() != nil {
			return
		}
		clear(h) // the stored response's fields describe no error
		s.writeFillError(w, r, st, res.key, err)
		return
	}
	w.WriteHeader(m.Status)
	_, werr := w.Write((*bufp)[:n])
	bufPool.Put(bufp)
	if werr != nil || (err == nil && copyFlush(w, rd) != nil) {
		panic(http.ErrAbortHandler)
	}
}

// writeFillError answers a client following a fill that failed before its
// first body byte reached the client: 502 with Cache-Status detail
// origin-closed when the origin closed or reset the connection early, 504
// when it stalled, 502 otherwise.
func (s *Server) writeFillError(w http.ResponseWriter, r *http.Request, st cache.Status, key string, err error) {
	st.Stored, st.HasTTL, st.TTL = false, false, 0
	switch {
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, syscall.ECONNRESET):
		st.Detail = "origin-closed"
	case errors.Is(err, errBetweenBytes):
		st.Detail = "origin-stalled"
	default:
		st.Detail = "fill-failed"
	}
	s.writeUpstreamError(w, r, st, key, fmt.Errorf("proxy: the fill of %q failed: %w", key, err))
}

// streamPart answers a single byte range from a fill in progress with a
// 206 (RFC 9110 §15.3.7) once the fill has reached the range's first byte,
// then streams the range as it arrives. A fill that fails before that
// point is answered 502; one that fails later aborts the response.
func (s *Server) streamPart(w http.ResponseWriter, r *http.Request, res fillResult, st cache.Status, start, length int64) {
	rd := res.writer.NewReader(r.Context())
	defer rd.Close()
	if _, err := io.CopyN(io.Discard, rd, start); err != nil {
		if r.Context().Err() != nil {
			return
		}
		clear(w.Header()) // the stored response's fields describe no 502
		s.writeFillError(w, r, st, res.key, fmt.Errorf("before the requested range: %w", err))
		return
	}
	h := w.Header()
	h["Content-Range"] = []string{"bytes " + strconv.FormatInt(start, 10) + "-" + strconv.FormatInt(start+length-1, 10) + "/" + strconv.FormatInt(res.size, 10)}
	h["Content-Length"] = []string{strconv.FormatInt(length, 10)}
	w.WriteHeader(http.StatusPartialContent)
	if err := copyFlush(w, io.LimitReader(rd, length)); err != nil {
		panic(http.ErrAbortHandler)
	}
}

// copyFlush copies src to w, flushing after every read so that a slow
// origin's bytes reach the client as they arrive.
func copyFlush(w http.ResponseWriter, src io.Reader) error {
	rc := http.NewResponseController(w)
	bufp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bufp)
	buf := *bufp
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return werr
			}
			if ferr := rc.Flush(); ferr != nil && !errors.Is(ferr, http.ErrNotSupported) {
				return ferr
			}
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// objectSeeker presents a disk object as an io.ReadSeeker for
// http.ServeContent, opening a store reader at the current offset on the
// first Read after a Seek, so that a Range request reads only the chunks it
// needs.
type objectSeeker struct {
	ctx  context.Context
	st   *store.Store
	obj  *store.Object
	size int64
	off  int64
	rc   io.ReadCloser // open at off, or nil
}

func (o *objectSeeker) Read(p []byte) (int, error) {
	if o.off >= o.size {
		return 0, io.EOF
	}
	if o.rc == nil {
		rc, err := o.st.NewReader(o.ctx, o.obj, o.off, -1)
		if err != nil {
			return 0, err
		}
		o.rc = rc
	}
	n, err := o.rc.Read(p)
	o.off += int64(n)
	return n, err
}

func (o *objectSeeker) Seek(offset int64, whence int) (int64, error) {
	var abs int64
	switch whence {
	case io.SeekStart:
		abs = offset
	case io.SeekCurrent:
		abs = o.off + offset
	case io.SeekEnd:
		abs = o.size + offset
	default:
		return 0, errors.New("proxy: invalid whence")
	}
	if abs < 0 {
		return 0, errors.New("proxy: negative position")
	}
	if abs != o.off && o.rc != nil {
		o.rc.Close()
		o.rc = nil
	}
	o.off = abs
	return abs, nil
}

func (o *objectSeeker) Close() error {
	if o.rc != nil {
		return o.rc.Close()
	}
	return nil
}

// closeSeeker closes rs when it holds a store reader.
func closeSeeker(rs io.ReadSeeker) {
	if c, ok := rs.(io.Closer); ok {
		c.Close()
	}
}
