package proxy

// Precompressed content codings (issue #6). In this file a "variant" is a
// stored content-coding representation of a response (cache.EncodingKey);
// the Vary bookkeeping of RFC 9111 §4.1 is in vary.go.
//
// After a fill of a compressible 200 response commits, a background job owned
// by the server reads the stored identity body and stores gzip, br and zstd
// encodings of it under cache.EncodingKey(key, coding). Each variant's Meta
// holds only Content-Encoding and a token naming the job that made it; the
// identity object's Meta stays the source of every other header field and of
// freshness. When the variants are stored the job records their codings and
// the token in the identity's cache.EncodingsField (UpdateObjectMeta), so a
// hit knows what it may offer without further lookups, and a variant made
// from an older identity (another token) is never served.
//
// On a hit the client's Accept-Encoding picks among identity and the recorded
// codings (RFC 9110 §12.5.3); the chosen variant is served with the
// identity's header fields plus Content-Encoding (RFC 9110 §8.4), its own
// length, Vary: Accept-Encoding (RFC 9110 §12.5.5) and an entity tag made
// distinct per coding (RFC 9110 §8.8.3: a strong validator changes with the
// representation's content coding). Because variants are chosen by
// negotiation and not by the raw Accept-Encoding value, clients that send
// different lists share the same stored variants: fills ask the origin for
// identity, and an origin's Vary: Accept-Encoding does not split the key.
//
// A body the origin encoded itself is stored as sent. The job stores its
// decoded form as the "identity" variant and the other codings made from
// that; until then, a client that does not accept the origin's coding gets
// it decoded on the fly, unless no-transform forbids it.
//
// Variant Metas carry no Content-Length: the object's size gives it.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/textproto"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cellar-cache/cellar/cache"
	"github.com/cellar-cache/cellar/compress"
	"github.com/cellar-cache/cellar/store"
	"github.com/prometheus/client_golang/prometheus"
)

// codingOfField is the internal field of a variant's Meta holding the
// token of the job that made it, which the identity's EncodingsField names.
const codingOfField = "Cellar-Variant-Of"

// codingPassField is the internal field of a variant's Meta that marks one
// made by the best-level pass. Its bytes differ from the fast variant's, so
// its strong entity tag must differ too (RFC 9110 §8.8.3): a Range request
// with If-Range must never splice the two.
const codingPassField = "Cellar-Variant-Pass"

// madeCodings are the codings cellar makes, in the order they are made.
var madeCodings = [...]string{compress.Brotli, compress.Zstd, compress.Gzip}

// maxDecoded caps what one on-the-fly decoding of an origin-encoded body may
// produce (decode bombs, see package compress): past it the response is
// aborted.
const maxDecoded = 1 << 30

// codingJobs tracks the background encoding jobs of a Server. Its zero
// value is ready to use.
type codingJobs struct {
	mu      sync.Mutex      // protects busy and running
	busy    map[string]bool // keys with a job in progress
	running int             // fast jobs in progress
	best    atomic.Bool     // a best-level pass is running
}

// claim reserves a job slot for key; false when a job for key is running
// or all limit slots are taken.
func (v *codingJobs) claim(key string, limit int) bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.busy[key] || v.running >= limit {
		return false
	}
	if v.busy == nil {
		v.busy = make(map[string]bool)
	}
	v.busy[key] = true
	v.running++
	return true
}

// release ends the job of key that claim reserved.
func (v *codingJobs) release(key string) {
	v.mu.Lock()
	delete(v.busy, key)
	v.running--
	v.mu.Unlock()
}

// codingMetrics are the collectors of precompression.
type codingMetrics struct {
	served      *prometheus.CounterVec // body bytes served by coding
	servedBy    map[string]prometheus.Counter
	compressSec *prometheus.HistogramVec // encoding time by coding and pass
	ratio       *prometheus.HistogramVec // identity size / encoded size
	jobs        *prometheus.CounterVec   // jobs by outcome
	running     prometheus.Gauge         // fast and best jobs in progress
}

func newCodingMetrics() *codingMetrics {
	m := &codingMetrics{
		served: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "cellar", Name: "served_bytes_total",
			Help: "Body bytes of 200 and 206 hits sent to clients, by content coding (identity, gzip, br, zstd).",
		}, []string{"coding"}),
		compressSec: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "cellar", Name: "compress_seconds",
			Help:    "Time to encode one stored variant, by coding and pass (fast, best).",
			Buckets: prometheus.ExponentialBuckets(0.0005, 4, 10),
		}, []string{"coding", "pass"}),
		ratio: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "cellar", Name: "compress_ratio",
			Help:    "Identity size divided by encoded size of stored variants, by coding and pass.",
			Buckets: []float64{1.1, 1.5, 2, 3, 4, 5, 6, 8, 12, 20},
		}, []string{"coding", "pass"}),
		jobs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "cellar", Name: "compress_jobs_total",
			Help: "Variant encoding jobs by outcome (done, skipped when busy, failed).",
		}, []string{"outcome"}),
		running: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "cellar", Name: "compress_jobs_running",
			Help: "Variant encoding jobs in progress (fast and best-level passes).",
		}),
		servedBy: map[string]prometheus.Counter{},
	}
	for _, c := range [...]string{compress.Identity, compress.Gzip, compress.Brotli, compress.Zstd} {
		m.servedBy[c] = m.served.WithLabelValues(c)
	}
	return m
}

func (m *codingMetrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{m.served, m.compressSec, m.ratio, m.jobs, m.running}
}

// countingWriter counts the body bytes of a hit into the served metric of
// its coding, for the answers that http.ServeContent writes.
type countingWriter struct {
	http.ResponseWriter
	c prometheus.Counter
}

func (w *countingWriter) Write(p []byte) (int, error) {
	n, err := w.ResponseWriter.Write(p)
	w.c.Add(float64(n))
	return n, err
}

// Unwrap lets http.ResponseController reach the real writer.
func (w *countingWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// counted wraps w so that the body bytes it writes count as c (nil: w).
func counted(w http.ResponseWriter, c prometheus.Counter) http.ResponseWriter {
	if c == nil {
		return w
	}
	return &countingWriter{ResponseWriter: w, c: c}
}

// servedCounter is the served-bytes counter of coding, nil for an
// origin's coding that cellar does not make, such as deflate.
func (s *Server) servedCounter(coding string) prometheus.Counter {
	return s.metrics.codings.servedBy[coding]
}

// hitAnswer is the representation of a stored response that a hit sends.
type hitAnswer struct {
	body   *store.Object      // the stored response itself, or its chosen variant
	fields fieldList          // the header fields, but Age, Cache-Status and a body's Content-Length
	served prometheus.Counter // counts the body bytes sent; nil: not counted
}

// pickEncoding chooses the representation of the stored response obj
// (prepared as p) to send for r, per RFC 9110 §12.5.3, among the stored
// body (identity, or the origin's coding) and the variants recorded in its
// EncodingsField: obj itself, or the chosen stored variant, with the field
// list to send it with (p's, adjusted for the variant's coding). When it has
// answered r itself (an origin-encoded body decoded on the fly for a client
// that does not accept its coding) done is true. The decision is cached by
// Accept-Encoding value (hitPreparer.choose).
//
// A missing variant, or one made from an older response (another job's
// token), is never served: the stored body is, decoded if need be, and a new
// encoding job is scheduled.
func (s *Server) pickEncoding(w http.ResponseWriter, r *http.Request, obj *store.Object, p *preparedHit, lk cache.Lookup, st cache.Status) (_ hitAnswer, done bool) {
	a := hitAnswer{body: obj, fields: p.fields}
	if p.src == "" {
		return a, false // not a 200, or several codings, or one we cannot decode: as stored
	}
	if !p.offer {
		a.served = s.servedCounter(compress.Identity) // only ever identity
		return a, false
	}
	if p.token == "" {
		s.scheduleCodings(obj)
	}
	ae := r.Header["Accept-Encoding"]
	coding := s.prep.choose(ae, p, s.opts.Compress.Order)
	if coding != p.src && p.token != "" {
		key, i := p.variantKey(obj, coding)
		v, err := s.store.Get(r.Context(), key)
		if err == nil && i >= 0 && variantOf(v) == p.token {
			return hitAnswer{body: v, fields: p.variant(i, v), served: s.servedCounter(coding)}, false
		}
		if err != nil {
			s.storeError("get", key, err)
		}
		s.scheduleCodings(obj)
	}
	if p.src != compress.Identity {
		if c, _ := compress.Negotiate(ae, p.avail[:1], s.opts.Compress.Order); c != p.src && !noTransform(obj.Meta.Header) {
			s.serveDecoded(w, r, obj, p, lk, st)
			return a, true
		}
	}
	a.served = s.servedCounter(p.src)
	return a, false
}

// variantOf is the token of the job that made the stored variant v.
func variantOf(v *store.Object) string {
	if t := v.Meta.Header[codingOfField]; len(t) > 0 {
		return t[0]
	}
	return ""
}

// noTransform reports whether Cache-Control has no-transform, which
// forbids an intermediary to change the content coding (RFC 9111
// §5.2.2.6, RFC 9110 §7.7).
func noTransform(h http.Header) bool {
	for _, l := range h["Cache-Control"] {
		for d := range strings.SplitSeq(l, ",") {
			if strings.EqualFold(textproto.TrimString(d), "no-transform") {
				return true
			}
		}
	}
	return false
}

// codingETag is the entity tag of the coding variant of the representation
// whose tag is etag.
func codingETag(etag, coding string) (string, bool) {
	t := textproto.TrimString(etag)
	prefix := ""
	if strings.HasPrefix(t, "W/") {
		prefix, t = "W/", t[2:]
	}
	if len(t) < 2 || t[0] != '"' || t[len(t)-1] != '"' {
		return "", false
	}
	return prefix + t[:len(t)-1] + "-" + coding + `"`, true
}

// addVaryAcceptEncoding adds Accept-Encoding to h's Vary unless it is named
// there already (RFC 9110 §12.5.5).
func addVaryAcceptEncoding(h http.Header) {
	lines := h["Vary"]
	for _, l := range lines {
		for f := range strings.SplitSeq(l, ",") {
			if f = textproto.TrimString(f); strings.EqualFold(f, "Accept-Encoding") || f == "*" {
				return
			}
		}
	}
	if len(lines) == 0 {
		h["Vary"] = []string{"Accept-Encoding"}
		return
	}
	h["Vary"] = []string{strings.Join(lines, ", ") + ", Accept-Encoding"}
}

// storedCoding is the one content coding of a stored body that cellar can
// decode, identity when the field names none, or "" otherwise.
func storedCoding(lines []string) string {
	coding := ""
	for _, l := range lines {
		for c := range strings.SplitSeq(l, ",") {
			c = strings.ToLower(textproto.TrimString(c))
			if c == "" || c == compress.Identity {
				continue
			}
			if coding != "" {
				return ""
			}
			coding = c
		}
	}
	switch coding {
	case "":
		return compress.Identity
	case "x-gzip":
		return compress.Gzip
	case compress.Gzip, compress.Brotli, compress.Zstd, "deflate":
		return coding
	}
	return ""
}

// parseEncodings splits an EncodingsField value "br zstd gzip; v=TOKEN".
func parseEncodings(v string) (list, token string) {
	list, rest, _ := strings.Cut(v, ";")
	if t, ok := strings.CutPrefix(textproto.TrimString(rest), "v="); ok {
		token = t
	}
	return list, token
}

// serveDecoded answers r from obj (prepared as p), whose body the origin
// encoded with p.src, decoding it on the fly for a client that does not accept coding.
// The decoded representation has no Content-Length, its own entity tag and
// Vary: Accept-Encoding; Range is ignored (RFC 9110 §14.2 allows it) since
// offsets into the decoded body are not known without decoding.
func (s *Server) serveDecoded(w http.ResponseWriter, r *http.Request, obj *store.Object, p *preparedHit, lk cache.Lookup, st cache.Status) {
	h := w.Header()
	p.coded(compress.Identity, compress.Identity).setIn(h)
	h["Age"] = ageValue(lk.Age)
	h["Cache-Status"] = s.statusValues(st, obj.Key)
	m := cache.Meta{Status: http.StatusOK, Header: h}
	if answerPreconditionFailed(w, r, &m) || answerNotModified(w, r, &m) {
		return
	}
	var dec io.ReadCloser
	if r.Method != http.MethodHead {
		rc, err := s.store.NewReader(r.Context(), obj, 0, -1)
		if err == nil {
			var d io.ReadCloser
			d, err = compress.NewReader(rc, p.src)
			if err != nil {
				rc.Close()
			} else {
				dec = readCloser{Reader: d, close: func() error { d.Close(); return rc.Close() }}
			}
		}
		if err != nil {
			s.storeError("read", obj.Key, err)
			s.log.Warn("stored body cannot be decoded", "key", obj.Key, "coding", p.src, "err", err)
			clear(h) // the stored response's fields describe no error
			http.Error(w, "cellar: stored response cannot be decoded", http.StatusBadGateway)
			return
		}
		defer dec.Close()
	}
	w.WriteHeader(http.StatusOK)
	if dec == nil {
		return
	}
	cw := counted(w, s.servedCounter(compress.Identity))
	bufp := bufPool.Get().(*[]byte)
	n, err := io.CopyBuffer(cw, io.LimitReader(dec, maxDecoded+1), *bufp)
	bufPool.Put(bufp)
	if err == nil && n > maxDecoded {
		err = fmt.Errorf("proxy: decoded body exceeds %d bytes", maxDecoded)
	}
	if err != nil {
		if r.Context().Err() == nil {
			s.log.Warn("decoding stored body failed", "key", obj.Key, "coding", p.src, "err", err)
		}
		panic(http.ErrAbortHandler)
	}
}

// readCloser joins a reader with a close function.
type readCloser struct {
	io.Reader
	close func() error
}

func (rc readCloser) Close() error { return rc.close() }

// codingSource reports whether obj, a stored response, is worth storing
// coding variants of, and the coding of its stored body: identity, or the
// one coding the origin applied, which cellar decodes first (the decoded
// form is stored as the "identity" variant).
func (s *Server) codingSource(obj *store.Object) (string, bool) {
	m := &obj.Meta
	if s.opts.CompressWorkers < 0 || m.Status != http.StatusOK || obj.Size <= 0 {
		return "", false
	}
	src := storedCoding(m.Header["Content-Encoding"])
	switch src {
	case "":
		return "", false
	case compress.Identity:
		return src, s.opts.Compress.Compressible(m.Header, obj.Size)
	}
	h := make(http.Header, len(m.Header))
	for k, v := range m.Header {
		h[k] = v
	}
	delete(h, "Content-Encoding")
	return src, s.opts.Compress.Compressible(h, obj.Size)
}

// scheduleCodings starts a background job that stores the coding variants
// of obj, unless obj is not worth it, a job for it is running, or every job
// slot is busy (then a later hit schedules it again). The job runs under
// the server's context and is tracked by s.wg.
func (s *Server) scheduleCodings(obj *store.Object) {
	src, ok := s.codingSource(obj)
	if !ok || s.bg.Err() != nil || obj.Hot() { // a hot copy (peer.go) is never stored here
		return
	}
	if !s.codings.claim(obj.Key, s.opts.CompressWorkers) {
		s.metrics.codings.jobs.WithLabelValues("skipped").Inc()
		return
	}
	s.metrics.codings.running.Inc()
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer s.metrics.codings.running.Dec() // after the best pass, if any, counted itself
		defer s.codings.release(obj.Key)
		s.makeCodings(obj, src)
	}()
}

// makeCodings stores the coding variants of obj, whose body has coding
// src: for an encoded body first its decoded form (the identity variant),
// then, from the identity body, every other coding at the fast levels, each
// kept only when smaller than identity. It records them in obj's Meta and
// then starts the best-level pass when that is free.
func (s *Server) makeCodings(obj *store.Object, src string) {
	ctx, cancel := context.WithCancel(s.bg)
	defer cancel()
	token := strconv.FormatUint(rand.Uint64(), 36)
	var made []string
	fail := func() { s.metrics.codings.jobs.WithLabelValues("failed").Inc() }
	id := obj
	if src != compress.Identity {
		if _, ok := s.encodeCoding(ctx, obj, obj, src, compress.Identity, token, false); !ok {
			fail()
			return
		}
		v, err := s.store.Get(ctx, cache.EncodingKey(obj.Key, compress.Identity))
		if err != nil || v.Meta.Header.Get(codingOfField) != token {
			fail()
			return
		}
		id = v
		made = append(made, compress.Identity)
	}
	for _, c := range madeCodings {
		if c == src {
			continue
		}
		if _, ok := s.encodeCoding(ctx, obj, id, compress.Identity, c, token, false); ok {
			made = append(made, c)
		}
		if ctx.Err() != nil {
			fail()
			return
		}
	}
	if !s.recordEncodings(ctx, obj, made, token) {
		fail()
		return
	}
	s.metrics.codings.jobs.WithLabelValues("done").Inc()
	if len(made) > 0 && id.Size <= s.opts.CompressBestMax && s.codings.best.CompareAndSwap(false, true) {
		s.metrics.codings.running.Inc()
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer s.metrics.codings.running.Dec()
			defer s.codings.best.Store(false)
			s.bestCodings(obj, id, made, token)
		}()
	}
}

// bestCodings re-encodes id, the identity body of obj, at the dense
// levels and replaces each variant that comes out smaller. It keeps the
// token: the bytes are another encoding of the same response.
func (s *Server) bestCodings(obj, id *store.Object, made []string, token string) {
	ctx, cancel := context.WithCancel(s.bg)
	defer cancel()
	for _, c := range made {
		if c == compress.Identity {
			continue
		}
		old, err := s.store.Get(ctx, cache.EncodingKey(obj.Key, c))
		if err != nil || old.Meta.Header.Get(codingOfField) != token {
			return // replaced or removed since: the fast job of the new one decides
		}
		if _, ok := s.encodeCoding(ctx, obj, id, compress.Identity, c, token, true, old.Size); !ok && ctx.Err() != nil {
			return
		}
	}
}

// encodeCoding stores the coding variant of obj made by job token from
// the body of src (obj itself or its identity variant), whose coding is
// from, at the best levels when best is set. A coded variant is stored only
// when it is smaller than src and than limit (the variant it would replace),
// if given; an identity variant (src decoded) always is.
func (s *Server) encodeCoding(ctx context.Context, obj, src *store.Object, from, coding, token string, best bool, limit ...int64) (int64, bool) {
	start := time.Now() // real time: this is a measurement, not cache time
	limitSize := src.Size
	for _, l := range limit {
		limitSize = min(limitSize, l)
	}
	if coding == compress.Identity {
		limitSize = maxDecoded
	}
	rd, err := s.store.NewReader(ctx, src, 0, -1)
	if err != nil {
		s.storeError("read", src.Key, err)
		return 0, false
	}
	defer rd.Close()
	var body io.Reader = rd
	if from != compress.Identity {
		dec, err := compress.NewReader(rd, from)
		if err != nil {
			s.log.Warn("stored body cannot be decoded", "key", src.Key, "coding", from, "err", err)
			return 0, false
		}
		defer dec.Close()
		body = io.LimitReader(dec, maxDecoded+1)
	}
	key := cache.EncodingKey(obj.Key, coding)
	meta := cache.Meta{
		Status:       http.StatusOK,
		Header:       http.Header{codingOfField: {token}},
		RequestTime:  obj.Meta.RequestTime,
		ResponseTime: obj.Meta.ResponseTime,
	}
	if coding != compress.Identity {
		meta.Header["Content-Encoding"] = []string{coding}
	}
	if best {
		meta.Header[codingPassField] = []string{"best"}
	}
	wr, err := s.store.Create(ctx, key, meta, store.CreateOptions{Tags: obj.Tags, KeepUntil: obj.KeepUntil, SizeHint: -1})
	if err != nil {
		s.storeError("create", key, err)
		return 0, false
	}
	cw := &byteCounter{w: wr}
	var enc io.WriteCloser = nopWriteCloser{cw}
	if coding != compress.Identity {
		newWriter := s.opts.Compress.NewWriterSize
		if best {
			newWriter = s.opts.Compress.NewBestWriterSize
		}
		size := src.Size // the identity body's: its encoder's window fits it
		if from != compress.Identity {
			size = -1
		}
		if enc, err = newWriter(cw, coding, size); err != nil {
			wr.Abort()
			s.log.Error("encoder", "coding", coding, "err", err)
			return 0, false
		}
	}
	bufp := bufPool.Get().(*[]byte)
	_, err = io.CopyBuffer(enc, ctxReader{ctx, body}, *bufp)
	bufPool.Put(bufp)
	if cerr := enc.Close(); err == nil {
		err = cerr
	}
	if err != nil || cw.n >= limitSize {
		wr.Abort()
		if err != nil && ctx.Err() == nil {
			s.storeError("encode", key, err)
		}
		return 0, false
	}
	if _, err := wr.Commit(ctx); err != nil {
		s.storeError("commit", key, err)
		return 0, false
	}
	if coding != compress.Identity {
		pass := "fast"
		if best {
			pass = "best"
		}
		s.metrics.codings.compressSec.WithLabelValues(coding, pass).Observe(time.Since(start).Seconds())
		s.metrics.codings.ratio.WithLabelValues(coding, pass).Observe(float64(src.Size) / float64(max(cw.n, 1)))
	}
	return cw.n, true
}

// nopWriteCloser is a writer whose Close does nothing.
type nopWriteCloser struct{ io.Writer }

func (nopWriteCloser) Close() error { return nil }

// recordEncodings writes the codings made by job token into the identity's
// EncodingsField, provided the identity stored under obj.Key is still the
// one the job read (same response time, size and entity tag). A later fill
// or a freshening in between leaves the field absent, and the next hit
// schedules a new job. A fill that commits between the check and the
// update keeps its own metadata (store.UpdateObjectMeta refuses the update).
func (s *Server) recordEncodings(ctx context.Context, obj *store.Object, made []string, token string) bool {
	t := s.store.Ticket()
	defer t.Release()
	cur, err := s.store.Get(ctx, obj.Key)
	if err != nil {
		s.storeError("get", obj.Key, err)
		return false
	}
	if cur.Size != obj.Size || !cur.Meta.ResponseTime.Equal(obj.Meta.ResponseTime) ||
		cur.Meta.Header.Get("Etag") != obj.Meta.Header.Get("Etag") {
		return false
	}
	m := cur.Meta
	m.Header = make(http.Header, len(cur.Meta.Header)+1)
	for k, v := range cur.Meta.Header {
		m.Header[k] = v
	}
	m.Header[cache.EncodingsField] = []string{strings.Join(made, " ") + "; v=" + token}
	m = s.policy.Memoized(m) // hits evaluate it without parsing it again
	if err := s.store.UpdateObjectMeta(ctx, t, cur, m, cur.KeepUntil); err != nil {
		if !errors.Is(err, store.ErrSuperseded) {
			s.storeError("update", obj.Key, err)
		}
		return false
	}
	return true
}

// byteCounter counts what is written through it.
type byteCounter struct {
	w io.Writer
	n int64
}

func (c *byteCounter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// ctxReader stops a long read when ctx is done (Close of the server).
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (r ctxReader) Read(p []byte) (int, error) {
	if err := r.ctx.Err(); err != nil {
		return 0, err
	}
	return r.r.Read(p)
}

// identityKey is the key of the identity object that key, a stored key
// that may name a coding variant, belongs to.
func identityKey(key string) string {
	id, _, _ := cache.ParseEncodingKey(key)
	return id
}

// isCodingKey reports whether key names a coding variant.
func isCodingKey(key string) bool {
	_, _, ok := cache.ParseEncodingKey(key)
	return ok
}

// streamVary adds Vary: Accept-Encoding to the header h of a response
// streamed from a fill of m when later hits of it may be served with another
// content coding (RFC 9110 §12.5.5).
func (s *Server) streamVary(h http.Header, m *cache.Meta, size int64) {
	if m.Status != http.StatusOK {
		return
	}
	if storedCoding(m.Header["Content-Encoding"]) != compress.Identity || s.opts.Compress.Compressible(m.Header, size) {
		addVaryAcceptEncoding(h)
	}
}

// withoutAcceptEncoding returns the Vary fields of a stored response minus
// Accept-Encoding, which never selects a stored response: cellar serves
// every client the stored representation re-coded as it accepts (a stored
// variant, identity, or the origin's coding decoded on the fly), so the
// cache key does not multiply with raw Accept-Encoding values. fields is
// returned as is when it does not name Accept-Encoding.
func withoutAcceptEncoding(fields []string) []string {
	for i, f := range fields {
		if strings.EqualFold(f, "Accept-Encoding") {
			out := make([]string, 0, len(fields)-1)
			out = append(out, fields[:i]...)
			for _, g := range fields[i+1:] {
				if !strings.EqualFold(g, "Accept-Encoding") {
					out = append(out, g)
				}
			}
			return out
		}
	}
	return fields
}
