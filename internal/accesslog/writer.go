package accesslog

import (
	"errors"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultBuffer is the default bound, in bytes, of the lines waiting to be
// written (those being written included): about 3,000 lines, a tenth of a
// second of a busy server.
const DefaultBuffer = 1 << 20

// DefaultInterval is how long a line may wait before it is written.
const DefaultInterval = 100 * time.Millisecond

// chunkSize is the size of the buffers that hold the lines: the bound is
// split into chunks, a full one is written out at once, and a written one
// is the next to fill. So the lines of a busy server are appended to memory
// that is still in the CPU's cache (a line appended to a buffer of the
// whole bound went to memory out of cache, which cost a busy server 2% of a
// 1 KiB hit), and what is written is never more than one chunk behind.
const chunkSize = 64 << 10

// Writer collects access lines in bounded buffers and writes them from a
// background goroutine, in batches, so that a request never waits on the
// log's I/O. A line that does not fit in the bound (the output is slower
// than the traffic) is dropped and counted (Dropped) rather than making
// requests wait: serving comes first. Close writes every line accepted
// before it; Reopen reopens a file after rotation.
//
// Its methods are safe for concurrent use.
type Writer struct {
	path     string // the file reopened by Reopen; "" for a fixed output
	chunk    int    // the size of a chunk
	chunks   int    // how many chunks the bound holds
	interval time.Duration

	mu      sync.Mutex // guards cur, full, free, made and closed
	cur     []byte     // the chunk being filled (nil when none was free)
	full    [][]byte   // filled chunks, oldest first, not yet taken by Flush
	free    [][]byte   // written chunks, the last written on top
	made    int        // chunks allocated (at most chunks)
	closed  bool
	dropped atomic.Uint64
	errs    atomic.Uint64

	outMu sync.Mutex // guards out and batch; held while writing out
	out   io.Writer
	batch [][]byte // the chunks Flush is writing

	kick chan struct{} // lines arrived when none were waiting
	more chan struct{} // a chunk filled
	stop chan struct{}
	done chan struct{}
}

// Options configure a Writer; zero fields mean the defaults.
type Options struct {
	// Buffer bounds the bytes waiting to be written, those being
	// written included; default DefaultBuffer. It is held in chunks of
	// 64 KiB (two halves of a smaller bound), allocated as they are first
	// needed.
	Buffer int
	// Interval is the longest a line waits before it is written; default
	// DefaultInterval.
	Interval time.Duration
}

// New returns a Writer to out, which it does not close.
func New(out io.Writer, opts Options) *Writer {
	w := newWriter(out, opts)
	go w.run()
	return w
}

// newWriter returns New's Writer without its background writer.
func newWriter(out io.Writer, opts Options) *Writer {
	w := &Writer{
		out:      out,
		interval: opts.Interval,
		kick:     make(chan struct{}, 1),
		more:     make(chan struct{}, 1),
		stop:     make(chan struct{}),
		done:     make(chan struct{}),
	}
	bound := opts.Buffer
	if bound <= 0 {
		bound = DefaultBuffer
	}
	if w.interval <= 0 {
		w.interval = DefaultInterval
	}
	w.chunk = min(chunkSize, max(bound/2, 1))
	w.chunks = bound / w.chunk
	w.full = make([][]byte, 0, w.chunks)
	w.free = make([][]byte, 0, w.chunks)
	w.batch = make([][]byte, 0, w.chunks)
	return w
}

// Open returns a Writer appending to the file at path (created with mode
// 0644 if absent), which Reopen reopens and Close closes.
func Open(path string, opts Options) (*Writer, error) {
	f, err := openFile(path)
	if err != nil {
		return nil, err
	}
	w := New(f, opts)
	w.path = path
	return w, nil
}

func openFile(path string) (*os.File, error) {
	return os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
}

// Write accepts one or more whole lines. It copies p and never waits on
// the output; when the bound is full the lines are dropped and counted.
// It always returns len(p), nil, as a log line is not the caller's
// concern; after Close it drops.
func (w *Writer) Write(p []byte) (int, error) {
	size := len(p)
	if size == 0 {
		return 0, nil
	}
	w.mu.Lock()
	if w.closed || !w.fits(size) {
		w.mu.Unlock()
		w.dropped.Add(1)
		return size, nil
	}
	idle := len(w.full) == 0 && len(w.cur) == 0
	if w.cur == nil {
		w.cur = w.take()
	}
	sealed := false
	if len(w.cur)+size > w.chunk && size <= w.chunk {
		// A line stays in one chunk when it fits in one.
		w.seal()
		sealed = true
	}
	for {
		n := copy(w.cur[len(w.cur):w.chunk], p)
		w.cur, p = w.cur[:len(w.cur)+n], p[n:]
		if len(p) == 0 {
			break
		}
		w.seal()
		sealed = true
	}
	w.mu.Unlock()
	if idle {
		signal(w.kick)
	}
	if sealed {
		signal(w.more)
	}
	return size, nil
}

// lineRoom is the room in the chunk being filled below which WriteEntry
// starts the next chunk before formatting a line in place: more than most
// lines need.
const lineRoom = 2 << 10

// WriteEntry appends e's line in format f, as Write(f.Append(nil, e))
// would, but formats it in place, in the chunk that holds it: one pass, no
// copy. A line longer than the room left (rare: lineRoom) goes by Write.
func (w *Writer) WriteEntry(f Format, e *Entry) {
	w.mu.Lock()
	room := lineRoom
	if w.chunk < 2*lineRoom {
		room = 0 // small chunks (tests): always by Write
	}
	if w.closed || room == 0 || !w.fits(room) {
		w.mu.Unlock()
		var arr [1024]byte
		w.Write(f.Append(arr[:0], e))
		return
	}
	idle := len(w.full) == 0 && len(w.cur) == 0
	if w.cur == nil {
		w.cur = w.take()
	}
	sealed := false
	if w.chunk-len(w.cur) < room {
		w.seal()
		sealed = true
	}
	n := len(w.cur)
	line := f.Append(w.cur[n:n:w.chunk], e)
	inPlace := len(line) <= w.chunk-n // else append moved it elsewhere
	if inPlace {
		w.cur = w.cur[:n+len(line)]
	}
	w.mu.Unlock()
	if sealed {
		signal(w.more)
	}
	if !inPlace {
		w.Write(line)
		return
	}
	if idle {
		signal(w.kick)
	}
}

// fits reports whether n more bytes fit in the bound: in the chunk being
// filled, else in chunks not in use (a line longer than a chunk goes on
// into the next ones). Call it with mu held.
func (w *Writer) fits(n int) bool {
	room := 0
	if w.cur != nil && (n > w.chunk || len(w.cur)+n <= w.chunk) {
		room = w.chunk - len(w.cur)
	}
	return room+(len(w.free)+w.chunks-w.made)*w.chunk >= n
}

// seal queues the chunk being filled (if it holds lines) for the flusher
// and takes the next: the last written, or a new one. fits has said that
// one is there. Call it with mu held.
func (w *Writer) seal() {
	if len(w.cur) > 0 {
		w.full = append(w.full, w.cur)
		w.cur = nil
	}
	if w.cur == nil {
		w.cur = w.take()
	}
}

// take returns an empty chunk (nil when every one is in use). Call it with
// mu held.
func (w *Writer) take() []byte {
	if n := len(w.free); n > 0 {
		c := w.free[n-1]
		w.free = w.free[:n-1]
		return c
	}
	if w.made < w.chunks {
		w.made++
		return make([]byte, 0, w.chunk)
	}
	return nil
}

func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// Dropped returns how many writes were dropped because the buffer was full.
func (w *Writer) Dropped() uint64 { return w.dropped.Load() }

// Errors returns how many batches the output failed to take.
func (w *Writer) Errors() uint64 { return w.errs.Load() }

// run writes a batch at most interval after the first line of it arrived,
// or as soon as a chunk is full.
func (w *Writer) run() {
	defer close(w.done)
	t := time.NewTimer(w.interval)
	t.Stop()
	for {
		select {
		case <-w.stop:
			return
		case <-w.kick:
		}
		t.Reset(w.interval)
		select {
		case <-w.stop:
			t.Stop()
			return
		case <-t.C:
		case <-w.more:
			t.Stop()
		}
		w.Flush()
	}
}

// Flush writes every line accepted so far.
func (w *Writer) Flush() error {
	w.outMu.Lock()
	defer w.outMu.Unlock()
	w.mu.Lock()
	w.batch = append(w.batch[:0], w.full...)
	clear(w.full)
	w.full = w.full[:0]
	if len(w.cur) > 0 {
		// The next line takes a free chunk: after this flush, the one
		// written last.
		w.batch = append(w.batch, w.cur)
		w.cur = nil
	}
	w.mu.Unlock()
	var err error
	for _, c := range w.batch {
		if _, werr := w.out.Write(c); werr != nil && err == nil {
			w.errs.Add(1)
			err = werr
		}
	}
	w.mu.Lock()
	for _, c := range w.batch {
		w.free = append(w.free, c[:0])
	}
	w.mu.Unlock()
	clear(w.batch)
	return err
}

// Reopen writes out what is buffered and reopens the file (after a
// rotation moved it away). A Writer to a fixed output only flushes. On
// failure the old file stays in use.
func (w *Writer) Reopen() error {
	if err := w.Flush(); err != nil {
		return err
	}
	if w.path == "" {
		return nil
	}
	f, err := openFile(w.path)
	if err != nil {
		return err
	}
	w.outMu.Lock()
	w.mu.Lock()
	closed := w.closed
	w.mu.Unlock()
	if closed { // Close has closed (or is closing) the file: keep it so
		w.outMu.Unlock()
		return f.Close()
	}
	old := w.out
	w.out = f
	w.outMu.Unlock()
	return old.(io.Closer).Close()
}

// Close stops the background writer, writes every line accepted before
// it, and closes the file it opened. Later writes are dropped.
func (w *Writer) Close() error {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return nil
	}
	w.closed = true
	w.mu.Unlock()
	close(w.stop)
	<-w.done
	err := w.Flush()
	if w.path != "" {
		w.outMu.Lock()
		err = errors.Join(err, w.out.(io.Closer).Close())
		w.outMu.Unlock()
	}
	return err
}
