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
// written: about 4,000 lines, a tenth of a second of a busy server. A
// Writer holds two buffers of this size (one filling, one being written).
const DefaultBuffer = 1 << 20

// DefaultInterval is how long a line may wait before it is written.
const DefaultInterval = 100 * time.Millisecond

// Writer collects access lines in a bounded buffer and writes them from a
// background goroutine, in batches, so that a request never waits on the
// log's I/O. A line that does not fit in the buffer (the output is slower
// than the traffic) is dropped and counted (Dropped) rather than making
// requests wait: serving comes first. Close writes every line accepted
// before it; Reopen reopens a file after rotation.
//
// Its methods are safe for concurrent use.
type Writer struct {
	path     string // the file reopened by Reopen; "" for a fixed output
	max      int
	interval time.Duration

	mu      sync.Mutex // guards buf and closed
	buf     []byte     // lines accepted and not yet handed to the flusher
	closed  bool
	dropped atomic.Uint64
	errs    atomic.Uint64

	outMu sync.Mutex // guards out and spare; held while writing out
	out   io.Writer
	spare []byte // the flusher's batch, swapped with buf

	kick chan struct{} // the buffer went from empty to not empty
	full chan struct{} // the buffer passed half its bound
	stop chan struct{}
	done chan struct{}
}

// Options configure a Writer; zero fields mean the defaults.
type Options struct {
	// Buffer bounds the bytes waiting to be written; default DefaultBuffer.
	Buffer int
	// Interval is the longest a line waits before it is written; default
	// DefaultInterval.
	Interval time.Duration
}

// New returns a Writer to out, which it does not close.
func New(out io.Writer, opts Options) *Writer {
	w := &Writer{
		out:      out,
		max:      opts.Buffer,
		interval: opts.Interval,
		kick:     make(chan struct{}, 1),
		full:     make(chan struct{}, 1),
		stop:     make(chan struct{}),
		done:     make(chan struct{}),
	}
	if w.max <= 0 {
		w.max = DefaultBuffer
	}
	if w.interval <= 0 {
		w.interval = DefaultInterval
	}
	// Two buffers of the whole bound, swapped at each flush: a line is
	// never refused for a buffer that has to grow, and the buffers never
	// grow (a buffer regrown after each burst cost a tenth of a hit).
	w.buf, w.spare = make([]byte, 0, w.max), make([]byte, 0, w.max)
	go w.run()
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
// the output; when the buffer is full the lines are dropped and counted.
// It always returns len(p), nil, as a log line is not the caller's
// concern; after Close it drops.
func (w *Writer) Write(p []byte) (int, error) {
	w.mu.Lock()
	if w.closed || len(w.buf)+len(p) > w.max {
		w.mu.Unlock()
		w.dropped.Add(1)
		return len(p), nil
	}
	was := len(w.buf)
	w.buf = append(w.buf, p...)
	now := len(w.buf)
	w.mu.Unlock()
	if was == 0 {
		signal(w.kick)
	}
	if was < w.max/2 && now >= w.max/2 {
		signal(w.full)
	}
	return len(p), nil
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
// or as soon as the buffer is half full.
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
		case <-w.full:
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
	w.buf, w.spare = w.spare[:0], w.buf
	w.mu.Unlock()
	if len(w.spare) == 0 {
		return nil
	}
	_, err := w.out.Write(w.spare)
	if err != nil {
		w.errs.Add(1)
	}
	w.spare = w.spare[:0]
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
