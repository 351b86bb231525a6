package proxy

// Precompressed content-coding variants (issue #6).
//
// After a fill of a compressible 200 response commits, a background job owned
// by the server reads the stored identity body and stores gzip, br and zstd
// encodings of it under cache.EncodingKey(key, coding). Each variant's Meta
// holds only Content-Encoding and a token naming the job that made it; the
// identity object's Meta stays the source of every other header field and of
// freshness. When the variants are stored the job records their codings and
// the token in the identity's cache.EncodingsField (through UpdateMeta), so a
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
// different lists share the same stored variants.

import (
	"context"
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

// variantOfField is the internal field of a variant's Meta holding the
// token of the job that made it, which the identity's EncodingsField names.
const variantOfField = "Cellar-Variant-Of"

// variantPassField is the internal field of a variant's Meta that marks one
// made by the best-level pass. Its bytes differ from the fast variant's, so
// its strong entity tag must differ too (RFC 9110 §8.8.3): a Range request
// with If-Range must never splice the two.
const variantPassField = "Cellar-Variant-Pass"

// variantCodings are the codings cellar makes, in the order they are made.
var variantCodings = [...]string{compress.Brotli, compress.Zstd, compress.Gzip}

// maxDecoded caps what one on-the-fly decoding of an origin-encoded body may
// produce (decode bombs, see package compress): past it the response is
// aborted.
const maxDecoded = 1 << 30

// variantJobs tracks the background encoding jobs of a Server. Its zero
// value is ready to use.
type variantJobs struct {
	mu      sync.Mutex      // protects busy and running
	busy    map[string]bool // keys with a job in progress
	running int             // fast jobs in progress
	best    atomic.Bool     // a best-level pass is running
	active  atomic.Int32    // fast and best jobs in progress, for tests
}

// claim reserves a job slot for key; false when a job for key is running
// or all limit slots are taken.
func (v *variantJobs) claim(key string, limit int) bool {
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
	v.active.Add(1)
	return true
}

// release ends the job of key that claim reserved.
func (v *variantJobs) release(key string) {
	v.mu.Lock()
	delete(v.busy, key)
	v.running--
	v.mu.Unlock()
	v.active.Add(-1)
}

// variantMetrics are the collectors of precompression.
type variantMetrics struct {
	served      *prometheus.CounterVec // body bytes served by coding
	servedBy    map[string]prometheus.Counter
	compressSec *prometheus.HistogramVec // encoding time by coding and pass
	ratio       *prometheus.HistogramVec // identity size / encoded size
	jobs        *prometheus.CounterVec   // jobs by outcome
}

func newVariantMetrics() *variantMetrics {
	m := &variantMetrics{
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
		servedBy: map[string]prometheus.Counter{},
	}
	for _, c := range [...]string{compress.Identity, compress.Gzip, compress.Brotli, compress.Zstd} {
		m.servedBy[c] = m.served.WithLabelValues(c)
	}
	return m
}

func (m *variantMetrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{m.served, m.compressSec, m.ratio, m.jobs}
}

// countingWriter counts the body bytes of a hit into the served metric of
// its coding.
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

// counted wraps w so that the body bytes it writes count as coding.
func (s *Server) counted(w http.ResponseWriter, coding string) http.ResponseWriter {
	return &countingWriter{ResponseWriter: w, c: s.metrics.variants.servedBy[coding]}
}

// pickEncoding chooses the representation of the stored response obj to
// send for r, per RFC 9110 §12.5.3. It returns the writer to serve through
// and the object to serve: obj itself when nothing changes, a copy of obj
// with Vary: Accept-Encoding when the client gets identity of a compressible
// response, or the chosen stored variant carrying obj's header fields. When
// it has answered r itself (an origin-encoded body decoded for a client that
// does not accept its coding) done is true.
//
// A missing variant, or one made from an older identity, is never served:
// identity is, and a new encoding job is scheduled.
func (s *Server) pickEncoding(w http.ResponseWriter, r *http.Request, obj *store.Object, lk cache.Lookup, st cache.Status) (_ http.ResponseWriter, _ *store.Object, done bool) {
	m := &obj.Meta
	if m.Status != http.StatusOK {
		return w, obj, false
	}
	if ce := m.Header["Content-Encoding"]; len(ce) > 0 {
		coding := storedCoding(ce)
		if coding == compress.Identity {
			return s.counted(w, compress.Identity), obj, false
		}
		if coding == "" {
			return w, obj, false // several codings, or one we cannot decode
		}
		if c, _ := compress.Negotiate(r.Header["Accept-Encoding"], []string{coding}, s.opts.Compress.Order); c == compress.Identity {
			s.serveDecoded(w, r, obj, coding, lk, st)
			return w, obj, true
		}
		return s.counted(w, coding), withCoding(obj, obj, ""), false
	}
	field := m.Header[cache.EncodingsField]
	if len(field) == 0 {
		if !s.opts.Compress.Compressible(m.Header, obj.Size) {
			return s.counted(w, compress.Identity), obj, false
		}
		s.scheduleVariants(obj)
		return s.counted(w, compress.Identity), withCoding(obj, obj, ""), false
	}
	list, token := parseEncodings(field[0])
	var buf [len(variantCodings)]string
	avail := buf[:0]
	for c := range strings.FieldsSeq(list) {
		if len(avail) < len(buf) {
			avail = append(avail, c)
		}
	}
	coding, _ := compress.Negotiate(r.Header["Accept-Encoding"], avail, s.opts.Compress.Order)
	if coding == compress.Identity {
		return s.counted(w, compress.Identity), withCoding(obj, obj, ""), false
	}
	v, err := s.store.Get(r.Context(), cache.EncodingKey(obj.Key, coding))
	if err != nil || token == "" || v.Meta.Header.Get(variantOfField) != token {
		if err != nil {
			s.storeError("get", cache.EncodingKey(obj.Key, coding), err)
		}
		s.scheduleVariants(obj)
		return s.counted(w, compress.Identity), withCoding(obj, obj, ""), false
	}
	return s.counted(w, coding), withCoding(obj, v, coding), false
}

// etagSuffix is what a variant's entity tag adds to the identity's: the
// coding, and "-best" for the best-level pass.
func etagSuffix(v *store.Object, coding string) string {
	if v.Meta.Header.Get(variantPassField) != "" {
		return coding + "-best"
	}
	return coding
}

// withCoding returns a copy of body (obj itself or its variant) that carries
// obj's Meta, adjusted for the content coding: Content-Encoding and a
// distinct entity tag when coding is not empty, Vary: Accept-Encoding, and
// no internal fields.
func withCoding(obj, body *store.Object, coding string) *store.Object {
	out := *body
	h := make(http.Header, len(obj.Meta.Header)+2)
	for k, v := range obj.Meta.Header {
		h[k] = v
	}
	delete(h, cache.EncodingsField)
	if coding != "" {
		h["Content-Encoding"] = []string{coding}
		delete(h, "Content-Length")
		setCodingETag(h, etagSuffix(body, coding))
	}
	addVaryAcceptEncoding(h)
	out.Meta = cache.Meta{Status: obj.Meta.Status, Header: h, RequestTime: obj.Meta.RequestTime, ResponseTime: obj.Meta.ResponseTime, Invalid: obj.Meta.Invalid}
	return &out
}

// setCodingETag makes h's entity tag distinct for a coding variant (RFC 9110
// §8.8.3) by adding suffix: with "br", "abc" becomes "abc-br" and W/"abc"
// becomes W/"abc-br". A malformed tag is dropped rather than shared between
// representations.
func setCodingETag(h http.Header, suffix string) {
	et := h["Etag"]
	if len(et) == 0 {
		return
	}
	if t, ok := codingETag(et[0], suffix); ok {
		h["Etag"] = []string{t}
	} else {
		delete(h, "Etag")
	}
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

// serveDecoded answers r from obj, whose body the origin encoded with
// coding, decoding it on the fly for a client that does not accept coding.
// The decoded representation has no Content-Length, its own entity tag and
// Vary: Accept-Encoding; Range is ignored (RFC 9110 §14.2 allows it) since
// offsets into the decoded body are not known without decoding.
func (s *Server) serveDecoded(w http.ResponseWriter, r *http.Request, obj *store.Object, coding string, lk cache.Lookup, st cache.Status) {
	m := withCoding(obj, obj, "").Meta
	delete(m.Header, "Content-Encoding")
	delete(m.Header, "Content-Length")
	setCodingETag(m.Header, compress.Identity)

	var dec io.ReadCloser
	if r.Method != http.MethodHead && !cache.NotModified(r, &m) && !cache.PreconditionFailed(r, &m) {
		rc, err := s.store.NewReader(r.Context(), obj, 0, -1)
		if err == nil {
			var d io.ReadCloser
			d, err = compress.NewReader(rc, coding)
			if err != nil {
				rc.Close()
			} else {
				dec = readCloser{Reader: d, close: func() error { d.Close(); return rc.Close() }}
			}
		}
		if err != nil {
			s.storeError("read", obj.Key, err)
			s.log.Warn("stored body cannot be decoded", "key", obj.Key, "coding", coding, "err", err)
			http.Error(w, "cellar: stored response cannot be decoded", http.StatusBadGateway)
			return
		}
		defer dec.Close()
	}
	h := w.Header()
	s.policy.ServeHeader(h, &m)
	h["Age"] = []string{cache.AgeValue(lk.Age)}
	h["Cache-Status"] = []string{s.statusValue(st, obj.Key)}
	h["Via"] = append(h["Via"][:len(h["Via"]):len(h["Via"])], s.responseVia)
	if cache.PreconditionFailed(r, &m) {
		w.WriteHeader(http.StatusPreconditionFailed)
		return
	}
	if cache.NotModified(r, &m) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	w.WriteHeader(http.StatusOK)
	if dec == nil {
		return
	}
	cw := s.counted(w, compress.Identity)
	bufp := bufPool.Get().(*[]byte)
	n, err := io.CopyBuffer(cw, io.LimitReader(dec, maxDecoded+1), *bufp)
	bufPool.Put(bufp)
	if err == nil && n > maxDecoded {
		err = fmt.Errorf("proxy: decoded body exceeds %d bytes", maxDecoded)
	}
	if err != nil {
		if r.Context().Err() == nil {
			s.log.Warn("decoding stored body failed", "key", obj.Key, "coding", coding, "err", err)
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

// scheduleVariants starts a background job that stores the coding variants
// of obj, a stored identity response, unless obj is not worth compressing,
// a job for it is running, or every job slot is busy (then a later hit
// schedules it again). The job runs under the server's context and is
// tracked by s.wg.
func (s *Server) scheduleVariants(obj *store.Object) {
	if s.opts.CompressWorkers < 0 || obj.Meta.Status != http.StatusOK || obj.Size <= 0 ||
		!s.opts.Compress.Compressible(obj.Meta.Header, obj.Size) || s.bg.Err() != nil {
		return
	}
	if !s.variants.claim(obj.Key, s.opts.CompressWorkers) {
		s.metrics.variants.jobs.WithLabelValues("skipped").Inc()
		return
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer s.variants.release(obj.Key)
		s.makeVariants(obj)
	}()
}

// makeVariants encodes obj's body with every coding at the fast levels,
// stores the variants that are smaller than obj, records them in obj's
// Meta, and then starts the best-level pass when it is free.
func (s *Server) makeVariants(obj *store.Object) {
	ctx, cancel := context.WithTimeout(s.bg, s.opts.FillTimeout)
	defer cancel()
	token := strconv.FormatUint(rand.Uint64(), 36)
	var made []string
	for _, c := range variantCodings {
		if _, ok := s.encodeVariant(ctx, obj, c, token, false); ok {
			made = append(made, c)
		}
		if ctx.Err() != nil {
			s.metrics.variants.jobs.WithLabelValues("failed").Inc()
			return
		}
	}
	if !s.recordEncodings(ctx, obj, made, token) {
		s.metrics.variants.jobs.WithLabelValues("failed").Inc()
		return
	}
	s.metrics.variants.jobs.WithLabelValues("done").Inc()
	if len(made) > 0 && obj.Size <= s.opts.CompressBestMax && s.variants.best.CompareAndSwap(false, true) {
		s.variants.active.Add(1)
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer s.variants.active.Add(-1)
			defer s.variants.best.Store(false)
			s.bestVariants(obj, made, token)
		}()
	}
}

// bestVariants re-encodes obj at the dense levels and replaces each variant
// that comes out smaller. It keeps the token: the bytes are another
// encoding of the same identity.
func (s *Server) bestVariants(obj *store.Object, made []string, token string) {
	ctx, cancel := context.WithTimeout(s.bg, s.opts.FillTimeout)
	defer cancel()
	for _, c := range made {
		old, err := s.store.Get(ctx, cache.EncodingKey(obj.Key, c))
		if err != nil || old.Meta.Header.Get(variantOfField) != token {
			return // replaced or removed since: the fast job of the new one decides
		}
		if _, ok := s.encodeVariant(ctx, obj, c, token, true, old.Size); !ok && ctx.Err() != nil {
			return
		}
	}
}

// encodeVariant stores the coding variant of obj made by job token, at the
// best levels when best is set. The variant is stored only when it is
// smaller than obj and than limit (the variant it would replace), if given.
func (s *Server) encodeVariant(ctx context.Context, obj *store.Object, coding, token string, best bool, limit ...int64) (int64, bool) {
	start := time.Now() // real time: this is a measurement, not cache time
	limitSize := obj.Size
	for _, l := range limit {
		limitSize = min(limitSize, l)
	}
	rd, err := s.store.NewReader(ctx, obj, 0, -1)
	if err != nil {
		s.storeError("read", obj.Key, err)
		return 0, false
	}
	defer rd.Close()
	key := cache.EncodingKey(obj.Key, coding)
	meta := cache.Meta{
		Status:       http.StatusOK,
		Header:       http.Header{"Content-Encoding": {coding}, variantOfField: {token}},
		RequestTime:  obj.Meta.RequestTime,
		ResponseTime: obj.Meta.ResponseTime,
	}
	if best {
		meta.Header[variantPassField] = []string{"best"}
	}
	wr, err := s.store.Create(ctx, key, meta, store.CreateOptions{Tags: obj.Tags, KeepUntil: obj.KeepUntil, SizeHint: -1})
	if err != nil {
		s.storeError("create", key, err)
		return 0, false
	}
	cw := &byteCounter{w: wr}
	newWriter := s.opts.Compress.NewWriter
	if best {
		newWriter = s.opts.Compress.NewBestWriter
	}
	enc, err := newWriter(cw, coding)
	if err != nil {
		wr.Abort()
		s.log.Error("encoder", "coding", coding, "err", err)
		return 0, false
	}
	bufp := bufPool.Get().(*[]byte)
	_, err = io.CopyBuffer(enc, ctxReader{ctx, rd}, *bufp)
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
	pass := "fast"
	if best {
		pass = "best"
	}
	s.metrics.variants.compressSec.WithLabelValues(coding, pass).Observe(time.Since(start).Seconds())
	s.metrics.variants.ratio.WithLabelValues(coding, pass).Observe(float64(obj.Size) / float64(max(cw.n, 1)))
	return cw.n, true
}

// recordEncodings writes the codings made by job token into the identity's
// EncodingsField, provided the identity stored under obj.Key is still the
// one the job read (same response time, size and entity tag). A later fill
// or a freshening in between leaves the field absent, and the next hit
// schedules a new job. The check and UpdateMeta are not atomic: a fill that
// commits between them gets its Meta overwritten by the older one's plus the
// field (a narrow window; the store has no compare-and-swap).
func (s *Server) recordEncodings(ctx context.Context, obj *store.Object, made []string, token string) bool {
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
	if err := s.store.UpdateMeta(ctx, obj.Key, m, cur.KeepUntil); err != nil {
		s.storeError("update", obj.Key, err)
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
	if i := strings.LastIndex(key, "\x00e="); i >= 0 {
		return key[:i]
	}
	return key
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
