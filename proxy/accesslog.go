package proxy

import (
	"bufio"
	"context"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"time"

	"github.com/cellar-cache/cellar/internal/accesslog"
	"github.com/cellar-cache/cellar/internal/h1"
)

// recorder notes what the access line of one request needs: its status
// and size, and, when the request went to an origin, which one and how
// long the origin took. The server pools recorders.
type recorder struct {
	http.ResponseWriter
	start  time.Time
	status int
	bytes  int64
	seq    uint64 // makes the request id when the client gave none (accesslog.ID)
	id     string // the request id sent to the origin, once one was

	origin     string        // host:port of the origin asked last; "" when none
	originTime time.Duration // until its response header (all tries)
}

func (r *recorder) WriteHeader(code int) {
	if r.status == 0 && code >= 200 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(p []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	n, err := r.ResponseWriter.Write(p)
	r.bytes += int64(n)
	return n, err
}

// noteOrigin records that the request went to origin, whose response
// header came d after the first try was sent. It runs in the request's
// own goroutine (the pool's RoundTrip for a fill it leads or a forward).
// A nil r does nothing.
func (r *recorder) noteOrigin(origin string, d time.Duration) {
	if r != nil {
		r.origin, r.originTime = origin, d
	}
}

// Unwrap lets http.ResponseController reach the real writer (Flush).
func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// PresetFields passes ready-made header fields on (prepared.go).
func (r *recorder) PresetFields(f *h1.Fields) bool { return presetFields(r.ResponseWriter, f) }

// Hijack notes a switch of protocols (101, RFC 9110 §15.2.2): the reverse
// proxy hijacks the client connection only once the origin agreed to it.
func (r *recorder) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, brw, err := http.NewResponseController(r.ResponseWriter).Hijack()
	if err == nil && r.status == 0 {
		r.status = http.StatusSwitchingProtocols
	}
	return c, brw, err
}

var recorderPool = sync.Pool{New: func() any { return new(recorder) }}

// entryKey carries a request's recorder in its context to the code that
// prepares the origin request (rewrite), once the request is known to go
// to an origin: hits never pay for the context.
type entryKey struct{}

// recorderOf returns the recorder that traced put in r, or nil.
func recorderOf(r *http.Request) *recorder {
	rec, _ := r.Context().Value(entryKey{}).(*recorder)
	return rec
}

// traced returns r carrying w's recorder, when w is one, for rewrite.
func traced(w http.ResponseWriter, r *http.Request) *http.Request {
	rec, ok := w.(*recorder)
	if !ok {
		return r
	}
	return r.WithContext(context.WithValue(r.Context(), entryKey{}, rec))
}

// startAccess wraps w for the access log of a request that arrived at
// start.
func (s *Server) startAccess(w http.ResponseWriter, start time.Time) *recorder {
	rec := recorderPool.Get().(*recorder)
	*rec = recorder{ResponseWriter: w, start: start, seq: accesslog.NextSeq()}
	return rec
}

// logAccess writes rec's access line and returns rec to the pool. When
// Metrics.Instrument wraps the server (sw is its writer), it is given the
// duration, so that the request's end is read once.
func (s *Server) logAccess(rec *recorder, r *http.Request, sw *statusWriter) {
	var d time.Duration
	if s.clock == nil {
		d = time.Since(rec.start) // the monotonic clock only
	} else {
		d = s.now().Sub(rec.start)
	}
	if sw != nil && sw.start.Equal(rec.start) {
		sw.elapsed, sw.timed = d, true
	}
	e := accesslog.Entry{
		Time:       rec.start,
		Duration:   d,
		Remote:     s.clients.ClientAddr(r),
		Method:     r.Method,
		Host:       r.Host,
		URI:        r.RequestURI,
		Proto:      r.Proto,
		Status:     rec.status,
		Bytes:      rec.bytes,
		UserAgent:  headerValue(r.Header, "User-Agent"),
		Referer:    headerValue(r.Header, "Referer"),
		Origin:     rec.origin,
		OriginTime: rec.originTime,
		RequestID:  rec.id,
		Seq:        rec.seq,
	}
	if e.Status == 0 {
		// The handler wrote nothing: net/http answers 200 with no body.
		e.Status = http.StatusOK
	}
	if cs := rec.Header()["Cache-Status"]; len(cs) > 0 {
		e.Cache = cs[0]
	}
	if e.RequestID == "" {
		e.RequestID, _ = s.clientRequestID(r)
	}
	s.access.WriteEntry(s.accessFormat, &e)
	*rec = recorder{}
	recorderPool.Put(rec)
}

// headerValue is h's first value of the canonical field name, or "".
func headerValue(h http.Header, name string) string {
	if v := h[name]; len(v) > 0 {
		return v[0]
	}
	return ""
}

// requestID returns the X-Request-ID to send to the origin for in: the
// trusted client's own, else the one its access line will show, else a
// new one.
func (s *Server) requestID(in *http.Request) string {
	rec := recorderOf(in)
	if rec != nil && rec.id != "" {
		return rec.id
	}
	id, ok := s.clientRequestID(in)
	if !ok {
		seq := accesslog.NextSeq()
		if rec != nil {
			seq = rec.seq
		}
		id = accesslog.ID(seq)
	}
	if rec != nil {
		rec.id = id
	}
	return id
}

// clientRequestID returns the X-Request-ID of r when its peer is trusted
// and the id is well formed (accesslog.ValidID).
func (s *Server) clientRequestID(r *http.Request) (string, bool) {
	id := headerValue(r.Header, "X-Request-Id")
	if id == "" || !accesslog.ValidID(id) {
		return "", false
	}
	if ap, err := netip.ParseAddrPort(r.RemoteAddr); err != nil || !s.clients.Trusted(ap.Addr()) {
		return "", false
	}
	return id, true
}
