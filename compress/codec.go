package compress

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"math/bits"
	"sync"
	"sync/atomic"
	"time"

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
// level in o.Levels, writing to w, for a body of unknown size. Close flushes
// the rest of the stream and ends it, but does not close w; the writer must
// not be used after Close. An unknown coding, or identity, returns an error
// wrapping [ErrUnsupported].
//
// Encoders are reused through per-Options pools set up by EnsureDefaults (a
// zstd or brotli encoder costs far more to create than to reset), so always
// Close the writer, even after a failed Write. A writer is for one goroutine.
func (o *Options) NewWriter(w io.Writer, coding string) (io.WriteCloser, error) {
	return o.NewWriterSize(w, coding, -1)
}

// NewWriterSize is NewWriter for a body of size bytes (negative: unknown).
// A body that fits a smaller window than the default gets an encoder with
// that window (see windows): the same output for a body no longer than
// the window, for a fraction of the encoder's memory.
func (o *Options) NewWriterSize(w io.Writer, coding string, size int64) (io.WriteCloser, error) {
	return o.newWriter(w, coding, o.Levels, DefaultLevels(), size)
}

// NewBestWriter is NewWriter with the dense levels of o.BestLevels, for the
// background re-encoding that replaces a fast variant.
func (o *Options) NewBestWriter(w io.Writer, coding string) (io.WriteCloser, error) {
	return o.NewBestWriterSize(w, coding, -1)
}

// NewBestWriterSize is NewWriterSize with the dense levels of o.BestLevels.
func (o *Options) NewBestWriterSize(w io.Writer, coding string, size int64) (io.WriteCloser, error) {
	return o.newWriter(w, coding, o.BestLevels, DefaultBestLevels(), size)
}

func (o *Options) newWriter(w io.Writer, coding string, levels, defaults map[string]int, size int64) (io.WriteCloser, error) {
	c := canonical(coding)
	if _, ok := levelRange[c]; !ok {
		return nil, fmt.Errorf("%w: %q", ErrUnsupported, coding)
	}
	level, ok := levels[c]
	if !ok {
		level = defaults[c]
	}
	window := len(windows) - 1
	if c != Gzip { // gzip's window is always 32 KiB
		window = windowFor(size)
	}
	return o.pools.get(w, poolKey{c, level, window})
}

// windows are the window sizes of cellar's brotli and zstd encoders,
// smallest first: a body gets the smallest that holds it, and the last,
// the default, when its size is unknown or larger. An encoder's memory
// grows with its window: brotli at level 11 allocates 34 MB with a 4 MiB
// window, 1 MB with 16 KiB; zstd at level 3, 8.8 MB and 4.5 MB.
var windows = [...]int{16 << 10, 256 << 10, 1 << 20, zstdEncoderWindow}

// windowFor is the index in windows of the window for a body of size bytes.
func windowFor(size int64) int {
	if size < 0 {
		return len(windows) - 1
	}
	for i, w := range windows {
		if size <= int64(w) {
			return i
		}
	}
	return len(windows) - 1
}

// log2 is the base 2 logarithm of n, a power of two.
func log2(n int) int { return bits.Len(uint(n)) - 1 }

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

// newEncoder creates an encoder of a canonical coding at level with a
// window of window bytes (brotli and zstd), writing to w.
func newEncoder(w io.Writer, coding string, level, window int) (encoder, error) {
	r := levelRange[coding]
	if level < r[0] || level > r[1] {
		return nil, fmt.Errorf("compress: %s level %d is outside %d to %d", coding, level, r[0], r[1])
	}
	switch coding {
	case Gzip:
		return gzip.NewWriterLevel(w, level)
	case Brotli:
		return brotli.NewWriterOptions(w, brotli.WriterOptions{Quality: level, LGWin: log2(window)}), nil
	case Zstd:
		return zstd.NewWriter(w,
			zstd.WithEncoderLevel(zstd.EncoderLevel(level)),
			// One goroutine: the encoder then works synchronously inside
			// Write and Close and starts no goroutines of its own.
			zstd.WithEncoderConcurrency(1),
			// Always write a frame, so even an empty body decodes everywhere.
			zstd.WithZeroFrames(true),
			// Pooled encoders sit idle holding their buffers: at level 3 an
			// encoder holds 22 MB by default, 10 MB with these two options
			// and the 4 MiB window (brotli's default window too, within RFC
			// 9659's 8 MiB), with the same output for bodies up to the
			// window size.
			zstd.WithLowerEncoderMem(true),
			zstd.WithWindowSize(window),
		)
	}
	return nil, fmt.Errorf("%w: %q", ErrUnsupported, coding)
}

// encoderPools keeps idle encoders for reuse, per coding, level and window:
// at most maxIdle of each and budget bytes of them in all (by stateBytes;
// the oldest go first), each dropped once it has been idle for idleFor (a
// timer runs while any is kept). Unlike a sync.Pool's, its encoders
// survive garbage collections: under a tight memory limit the collector
// runs often, and an encoder made again costs far more than it holds.
type encoderPools struct {
	maxIdle int
	budget  int64
	idleFor time.Duration

	mu    sync.Mutex // protects idle, bytes and sweep
	idle  map[poolKey][]idleEncoder
	bytes int64       // stateBytes of the kept encoders
	sweep *time.Timer // pending release of idle encoders; nil when none is kept

	live *atomic.Int64 // counts stateBytes of the encoders made and not let go
}

type poolKey struct {
	coding string
	level  int
	window int // index in windows
}

// idleEncoder is a pooled encoder and when it was put back.
type idleEncoder struct {
	st    *encoderState
	since time.Time
}

// Pool bounds: encoders kept per coding, level and window (two match the
// proxy's default of two encoding jobs at once), their memory in all, and
// how long an idle one is kept. Kept encoders are live heap, which counts
// against the Go memory limit that cellar serve sets a little above what
// the memory tier holds: more than a few MiB kept for long would keep the
// collector running. So the largest (zstd at level 4, brotli at level 11
// with a window over 1 MiB) are never kept, and none outlives a few
// seconds without use.
const (
	defaultMaxIdle    = 2
	defaultIdleBudget = 16 << 20
	defaultIdleFor    = 5 * time.Second
)

func newEncoderPools() *encoderPools {
	return &encoderPools{maxIdle: defaultMaxIdle, budget: defaultIdleBudget, idleFor: defaultIdleFor, idle: map[poolKey][]idleEncoder{}, live: &encoderBytes}
}

// stateBytes estimates the memory an encoder of k holds once used, from
// allocation profiles of klauspost/compress 1.20 and andybalholm/brotli 1.2
// (a zstd encoder at level 4 allocates 36 MB of tables whatever its window;
// brotli at level 10 and 11 8 bytes per window byte for its binary tree).
func stateBytes(k poolKey) int64 {
	w := int64(windows[k.window])
	switch k.coding {
	case Brotli:
		if k.level >= 10 {
			return 8*w + 1<<20
		}
		return 5*w/2 + 1<<19
	case Zstd:
		if k.level >= 4 {
			return 36<<20 + 2*w
		}
		return 4<<20 + 2*w
	}
	return 3 << 19 // gzip
}

// get returns a writer for k, reusing an idle encoder when there is one. A
// nil *encoderPools creates every encoder fresh.
func (p *encoderPools) get(w io.Writer, k poolKey) (io.WriteCloser, error) {
	if p != nil {
		p.mu.Lock()
		var st *encoderState
		if l := p.idle[k]; len(l) > 0 {
			st = l[len(l)-1].st
			p.drop(k, len(l)-1)
		}
		p.mu.Unlock()
		if st != nil {
			st.dst.w = w
			st.enc.Reset(st.dst)
			return &pooledWriter{st: st, pools: p, key: k}, nil
		}
	}
	dst := &forwarder{w: w}
	e, err := newEncoder(dst, k.coding, k.level, windows[k.window])
	if err != nil {
		return nil, err
	}
	p.liveBytes().Add(stateBytes(k))
	if f := onEncoderBytes.Load(); f != nil {
		(*f)()
	}
	return &pooledWriter{st: &encoderState{enc: e, dst: dst}, pools: p, key: k}, nil
}

// encoderBytes is EncoderBytes: stateBytes of every encoder made and not
// yet let go (in use, or kept idle in a pool).
var encoderBytes atomic.Int64

// onEncoderBytes is the function NotifyEncoderBytes set, or nil.
var onEncoderBytes atomic.Pointer[func()]

// EncoderBytes estimates the memory the encoders hold now, in use by a
// writer or kept idle for reuse: with every encoding job running it can
// reach some 60 MB (a zstd encoder at its densest level alone holds 36
// MB), which cellar serve adds to the Go memory limit it sets.
func EncoderBytes() int64 { return encoderBytes.Load() }

// NotifyEncoderBytes makes f be called each time a new encoder raises
// EncoderBytes, before the encoder allocates its state, in the goroutine
// that asked for the encoder. (Falls are not told: the memory goes at the
// next garbage collection.)
func NotifyEncoderBytes(f func()) { onEncoderBytes.Store(&f) }

// liveBytes is where p counts its encoders' memory: EncoderBytes's
// counter (a test's pools count apart).
func (p *encoderPools) liveBytes() *atomic.Int64 {
	if p == nil || p.live == nil {
		return &encoderBytes
	}
	return p.live
}

// letGo notes that an encoder of k is no longer kept.
func (p *encoderPools) letGo(k poolKey) { p.liveBytes().Add(-stateBytes(k)) }

// drop forgets the i-th idle encoder of k. p.mu must be held.
func (p *encoderPools) drop(k poolKey, i int) {
	l := p.idle[k]
	p.bytes -= stateBytes(k)
	l = append(l[:i], l[i+1:]...)
	if len(l) == 0 {
		delete(p.idle, k)
		return
	}
	p.idle[k] = l
}

// put keeps st, an idle encoder of k, within maxIdle and the budget: the
// oldest idle encoders make room, or st goes when it alone is over.
func (p *encoderPools) put(k poolKey, st *encoderState) {
	cost := stateBytes(k)
	p.mu.Lock()
	defer p.mu.Unlock()
	if cost > p.budget {
		p.letGo(k) // the collector has it
		return
	}
	if len(p.idle[k]) >= p.maxIdle {
		p.drop(k, 0)
		p.letGo(k)
	}
	for p.bytes+cost > p.budget {
		p.dropOldest()
	}
	p.idle[k] = append(p.idle[k], idleEncoder{st: st, since: time.Now()})
	p.bytes += cost
	if p.sweep == nil {
		p.sweep = time.AfterFunc(p.idleFor, p.release)
	}
}

// dropOldest forgets the encoder idle longest. p.mu must be held.
func (p *encoderPools) dropOldest() {
	var oldest poolKey
	var since time.Time
	found := false
	for k, l := range p.idle {
		if !found || l[0].since.Before(since) {
			oldest, since, found = k, l[0].since, true
		}
	}
	if found {
		p.drop(oldest, 0)
		p.letGo(oldest)
	}
}

// release drops the encoders idle for idleFor or longer, and comes back
// later while some are kept.
func (p *encoderPools) release() {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := time.Now()
	for k, l := range p.idle {
		n := 0 // l is oldest first
		for n < len(l) && now.Sub(l[n].since) >= p.idleFor {
			n++
		}
		for range n {
			p.drop(k, 0)
			p.letGo(k)
		}
	}
	p.sweep = nil
	if len(p.idle) > 0 {
		p.sweep = time.AfterFunc(p.idleFor, p.release)
	}
}

// kept returns the number of idle encoders kept and their estimated bytes.
func (p *encoderPools) kept() (n int, bytes int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, l := range p.idle {
		n += len(l)
	}
	return n, p.bytes
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
	st    *encoderState // nil after Close
	pools *encoderPools // nil for no reuse
	key   poolKey
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
	if err == nil && w.pools != nil {
		w.pools.put(w.key, st)
	} else {
		w.pools.letGo(w.key) // on error the state is unknown: let the encoder go
	}
	return err
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
