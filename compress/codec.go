package compress

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/andybalholm/brotli"
	"github.com/klauspost/compress/flate"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zlib"
	"github.com/klauspost/compress/zstd"
)

// zstdMaxWindow is the largest zstd window cellar writes or accepts: RFC 9659
// §3 requires encoders of the "zstd" content coding to use at most 8 MiB and
// lets decoders reject more. The encoder uses zstdEncoderWindow; the decoder
// enforces zstdMaxWindow.
const zstdMaxWindow = 8 << 20

// zstdEncoderWindow is the window cellar's zstd encoder uses; see newEncoder.
const zstdEncoderWindow = 4 << 20

// errClosed is returned by a writer's Write and Close after Close.
var errClosed = errors.New("compress: writer is closed")

// errReaderClosed is returned by a reader's Read after Close.
var errReaderClosed = errors.New("compress: reader is closed")

// NewWriter returns an encoder for coding (gzip, x-gzip, br or zstd) at the
// level in o.Levels, writing to w. Close flushes the rest of the stream and
// ends it, but does not close w; the writer must not be used after Close. An
// unknown coding, or identity, returns an error wrapping [ErrUnsupported].
//
// Encoders are reused through per-Options pools set up by EnsureDefaults (a
// zstd or brotli encoder costs far more to create than to reset), so always
// Close the writer, even after a failed Write. A writer is for one goroutine.
func (o *Options) NewWriter(w io.Writer, coding string) (io.WriteCloser, error) {
	return o.newWriter(w, coding, o.Levels, DefaultLevels())
}

// NewBestWriter is NewWriter with the dense levels of o.BestLevels, for the
// background re-encoding that replaces a fast variant.
func (o *Options) NewBestWriter(w io.Writer, coding string) (io.WriteCloser, error) {
	return o.newWriter(w, coding, o.BestLevels, DefaultBestLevels())
}

func (o *Options) newWriter(w io.Writer, coding string, levels, defaults map[string]int) (io.WriteCloser, error) {
	c := canonical(coding)
	if _, ok := levelRange[c]; !ok {
		return nil, fmt.Errorf("%w: %q", ErrUnsupported, coding)
	}
	level, ok := levels[c]
	if !ok {
		level = defaults[c]
	}
	return o.pools.get(w, c, level)
}

// encoder is what the three encoders have in common.
type encoder interface {
	io.WriteCloser
	Reset(w io.Writer)
}

var (
	_ encoder = (*gzip.Writer)(nil)
	_ encoder = (*brotli.Writer)(nil)
	_ encoder = (*zstd.Encoder)(nil)
)

// newEncoder creates an encoder of a canonical coding at level writing to w.
func newEncoder(w io.Writer, coding string, level int) (encoder, error) {
	r := levelRange[coding]
	if level < r[0] || level > r[1] {
		return nil, fmt.Errorf("compress: %s level %d is outside %d to %d", coding, level, r[0], r[1])
	}
	switch coding {
	case Gzip:
		return gzip.NewWriterLevel(w, level)
	case Brotli:
		return brotli.NewWriterLevel(w, level), nil
	case Zstd:
		return zstd.NewWriter(w,
			zstd.WithEncoderLevel(zstd.EncoderLevel(level)),
			// One goroutine: the encoder then works synchronously inside
			// Write and Close and starts no goroutines of its own.
			zstd.WithEncoderConcurrency(1),
			// Always write a frame, so even an empty body decodes everywhere.
			zstd.WithZeroFrames(true),
			// Pooled encoders sit idle holding their buffers: at level 3 an
			// encoder holds 22 MB by default, 10 MB with these two options,
			// with the same output for bodies up to the window size (4 MiB,
			// brotli's default window too, within RFC 9659's 8 MiB).
			zstd.WithLowerEncoderMem(true),
			zstd.WithWindowSize(zstdEncoderWindow),
		)
	}
	return nil, fmt.Errorf("%w: %q", ErrUnsupported, coding)
}

// encoderPools holds one pool of idle encoders per coding and level.
type encoderPools struct {
	mu sync.Mutex // protects m
	m  map[poolKey]*sync.Pool
}

type poolKey struct {
	coding string
	level  int
}

func newEncoderPools() *encoderPools {
	return &encoderPools{m: map[poolKey]*sync.Pool{}}
}

// get returns a writer for coding at level, reusing an idle encoder when there
// is one. A nil *encoderPools creates every encoder fresh.
func (p *encoderPools) get(w io.Writer, coding string, level int) (io.WriteCloser, error) {
	var pool *sync.Pool
	if p != nil {
		k := poolKey{coding, level}
		p.mu.Lock()
		pool = p.m[k]
		if pool == nil {
			pool = new(sync.Pool)
			p.m[k] = pool
		}
		p.mu.Unlock()
		if st, ok := pool.Get().(*encoderState); ok {
			st.dst.w = w
			st.enc.Reset(st.dst)
			return &pooledWriter{st: st, pool: pool}, nil
		}
	}
	dst := &forwarder{w: w}
	e, err := newEncoder(dst, coding, level)
	if err != nil {
		return nil, err
	}
	return &pooledWriter{st: &encoderState{enc: e, dst: dst}, pool: pool}, nil
}

// encoderState is what the pools hold: an encoder and what it writes to.
type encoderState struct {
	enc encoder
	dst *forwarder
}

// forwarder passes writes on to w. Encoders write to a forwarder rather than
// to the caller's writer so that an idle pooled encoder holds no reference to
// a caller's buffer, without a second Reset, which costs a table clear.
type forwarder struct {
	w io.Writer // nil while idle
}

func (f *forwarder) Write(p []byte) (int, error) {
	if f.w == nil {
		return 0, errClosed
	}
	return f.w.Write(p)
}

// pooledWriter is one use of an encoder; the encoder goes back to its pool on
// a successful Close. A new pooledWriter per use means a Write after Close
// fails instead of reaching the encoder's next user.
type pooledWriter struct {
	st   *encoderState // nil after Close
	pool *sync.Pool    // nil for no reuse
}

func (w *pooledWriter) Write(p []byte) (int, error) {
	if w.st == nil {
		return 0, errClosed
	}
	return w.st.enc.Write(p)
}

func (w *pooledWriter) Close() error {
	st := w.st
	if st == nil {
		return errClosed
	}
	w.st = nil
	err := st.enc.Close()
	st.dst.w = nil
	if err == nil && w.pool != nil {
		w.pool.Put(st)
	}
	return err // on error the state is unknown: let the encoder go
}

// NewReader returns a decoder of coding (gzip, x-gzip, br, zstd, deflate, or
// identity, which passes r through) reading from r. Names are
// case-insensitive. An unknown coding returns an error wrapping
// [ErrUnsupported]; a gzip stream whose header is bad fails here, other
// corruption fails in Read. A truncated stream fails in Read rather than
// ending with io.EOF. Close releases the decoder but does not close r.
//
// The decoded size is not limited: guard against decode bombs by limiting what
// you read (see the package documentation). zstd frames whose window exceeds
// 8 MiB are rejected, as RFC 9659 §3 allows.
//
// To undo several codings ("Content-Encoding: gzip, br"), stack readers in
// reverse order of the field.
func NewReader(r io.Reader, coding string) (io.ReadCloser, error) {
	switch c := canonical(coding); c {
	case Identity:
		return io.NopCloser(r), nil
	case Gzip:
		zr, err := gzip.NewReader(r)
		if err != nil {
			return nil, fmt.Errorf("compress: gzip header: %w", err)
		}
		return zr, nil
	case Brotli:
		return &brotliReader{br: brotli.NewReader(r)}, nil
	case Zstd:
		return newZstdReader(r)
	case deflate:
		return newDeflateReader(r)
	}
	return nil, fmt.Errorf("%w: %q", ErrUnsupported, coding)
}

// zstdDecoders holds idle zstd decoders. Unlike the encoder pools it is
// package-wide: NewReader has no Options to hang it on, every decoder is
// configured alike, and an idle one holds no state a caller could observe.
// Creating one costs about 2 MB of allocation; resetting one costs nothing.
var zstdDecoders sync.Pool

// newZstdReader returns a pooled zstd decoder reading from r.
func newZstdReader(r io.Reader) (io.ReadCloser, error) {
	d, ok := zstdDecoders.Get().(*zstd.Decoder)
	if !ok {
		var err error
		d, err = zstd.NewReader(nil,
			zstd.WithDecoderConcurrency(1), // synchronous: no goroutines
			zstd.WithDecoderMaxWindow(zstdMaxWindow),
			// Never decode a whole *bytes.Buffer up front: that would
			// expand a decode bomb in memory before the caller's limit
			// on reading could stop it.
			zstd.WithDecodeBuffersBelow(0),
		)
		if err != nil {
			return nil, fmt.Errorf("compress: zstd: %w", err)
		}
	}
	if err := d.Reset(r); err != nil {
		d.Reset(nil)
		zstdDecoders.Put(d)
		return nil, fmt.Errorf("compress: zstd: %w", err)
	}
	return &zstdReader{d: d}, nil
}

// zstdReader returns its decoder to zstdDecoders on Close.
type zstdReader struct {
	d *zstd.Decoder // nil after Close
}

func (r *zstdReader) Read(p []byte) (int, error) {
	if r.d == nil {
		return 0, errReaderClosed
	}
	return r.d.Read(p)
}

func (r *zstdReader) Close() error {
	if r.d == nil {
		return nil
	}
	r.d.Reset(nil) // drop the reference to the source
	zstdDecoders.Put(r.d)
	r.d = nil
	return nil
}

// brotliReader adds Close to a brotli.Reader.
type brotliReader struct {
	br *brotli.Reader // nil after Close
}

func (r *brotliReader) Read(p []byte) (int, error) {
	if r.br == nil {
		return 0, errReaderClosed
	}
	return r.br.Read(p)
}

func (r *brotliReader) Close() error {
	r.br = nil
	return nil
}

// newDeflateReader decodes the "deflate" coding. RFC 9110 §8.4.1.2 defines it
// as a zlib stream (RFC 1950), but some servers send raw deflate (RFC 1951),
// so a stream whose first two bytes are not a zlib header is read as raw.
func newDeflateReader(r io.Reader) (io.ReadCloser, error) {
	br := bufio.NewReader(r)
	h, err := br.Peek(2)
	if err == nil && isZlibHeader(h[0], h[1]) {
		zr, err := zlib.NewReader(br)
		if err != nil {
			return nil, fmt.Errorf("compress: deflate: %w", err)
		}
		return zr, nil
	}
	return flate.NewReader(br), nil
}

// isZlibHeader reports whether cmf and flg start a zlib stream (RFC 1950
// §2.2): method 8 (deflate), a window of at most 32 KiB, and a check sum.
func isZlibHeader(cmf, flg byte) bool {
	return cmf&0x0f == 8 && cmf>>4 <= 7 && (uint16(cmf)<<8|uint16(flg))%31 == 0
}
