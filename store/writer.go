package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"time"

	"github.com/cellar-cache/cellar/cache"
	"github.com/cockroachdb/pebble/v2"
)

var errAborted = errors.New("store: fill aborted")

type fillState int

const (
	filling fillState = iota
	committed
	aborted
	committing // Commit is writing; Write fails, readers go on
	dropped    // Commit did not store the fill (ErrSuperseded, ErrUnavailable, ErrTooLarge); readers finish it
)

// maxUnstoredBuffer bounds the bytes a fill keeps in memory for its readers
// after storing stopped mid-body (a full disk). When the tail reaches it,
// the older half is dropped (amortised copying): a reader less than half
// of it behind the origin is never cut off, one further behind may be.
const maxUnstoredBuffer = 4 << 20

// Writer is one fill in progress, from Create to Commit or Abort. Write,
// Commit and Abort are for the one filling goroutine; NewReader may be
// called from any goroutine, any number of times.
type Writer struct {
	d    *diskTier
	key  string
	meta cache.Meta
	opts CreateOptions
	fill uint64
	cs   int64

	mu       sync.Mutex // protects the fields below
	buf      []byte     // bytes [bufStart, size): the chunk being filled, or the unstored tail
	bufStart int64      // offset of buf[0]; equals flushed while storing
	flushed  int64      // bytes already in chunk records
	size     int64
	// unstored is why storing stopped mid-body (it wraps ErrUnavailable):
	// the fill goes on in memory for its readers and Commit stores nothing.
	unstored error
	marker   bool    // the fill record is on disk
	body     bodyBuf // whole body, kept while it may go to the memory tier
	keepBody bool
	charged  int64 // bytes added to d.used so far
	state    fillState
	sealed   bool                     // Seal was called: the body is complete, readers may end
	err      error                    // why the fill was aborted
	changed  chan struct{}            // closed and replaced whenever the fields move
	obj      *Object                  // the committed object
	readers  map[*fillReader]struct{} // fill readers not yet closed
	// snap pins the committed chunks for readers still following the fill,
	// so that a purge or replacement after Commit does not cut them short
	// (Store.NewReader gives readers of stored objects the same promise).
	snap *pebble.Snapshot
	// progress, when not nil, is closed when a reader reads on or closes
	// (a Write waiting for readers to catch up, waitReadersLocked).
	progress chan struct{}
	ctx      context.Context // the fill's context (Create): bounds waits for readers

	ownTicket bool // opts.Ticket was taken by Create: Commit or Abort releases it
	// held: the fill holds a reference on d (diskTier.acquire), given
	// back once it has ended and its last reader closed.
	held bool
}

func (d *diskTier) create(ctx context.Context, key string, meta cache.Meta, opts CreateOptions) (*Writer, error) {
	if err := d.checkStoring(); err != nil {
		return nil, err
	}
	if !d.acquire() {
		return nil, ErrUnavailable
	}
	w := &Writer{
		ctx:     ctx,
		held:    true,
		d:       d,
		key:     key,
		meta:    meta,
		opts:    opts,
		fill:    d.nextFill.Add(1),
		cs:      int64(d.opts.ChunkSize),
		changed: make(chan struct{}),
	}
	w.opts.Tags = slices.Clone(opts.Tags)
	w.keepBody = d.bodyLimit >= 0 && opts.SizeHint <= d.bodyLimit
	if d.opts.Simulate {
		return w, nil // buf and body are slices of simZeros
	}
	if w.keepBody && opts.SizeHint > 0 {
		w.body.preallocate(opts.SizeHint)
	}
	initial := w.cs
	if opts.SizeHint >= 0 {
		initial = min(w.cs, opts.SizeHint)
	}
	w.buf = getChunkBuf(initial)
	return w, nil
}

// broadcast wakes the readers waiting for more. Call with w.mu held.
func (w *Writer) broadcast() {
	close(w.changed)
	w.changed = make(chan struct{})
}

// Write appends p to the body. It copies p. When storing stops mid-body
// the fill goes on without storing, so that its readers still get the
// whole body: past Options.MaxObject (ErrTooLarge), or on a full disk or an
// I/O error (ErrUnavailable). Later Writes keep the newest bytes in memory
// (maxUnstoredBuffer), waiting up to readerLagTimeout for readers that have
// not read what would be dropped (a reader further behind is cut off), and
// Commit returns an error wrapping the cause.
func (w *Writer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	switch w.state {
	case aborted:
		return 0, w.err
	case committed, committing, dropped:
		return 0, errors.New("store: Write after Commit")
	}
	if w.sealed {
		return 0, errors.New("store: Write after Seal")
	}
	if w.d.opts.Simulate {
		p = simBody(len(p)) // the same length in zeros (Options.Simulate)
	}
	if w.unstored == nil && w.size+int64(len(p)) > w.d.opts.MaxObject {
		w.stopStoringLocked(fmt.Errorf("store: body of %q exceeds %d bytes: %w", w.key, w.d.opts.MaxObject, ErrTooLarge))
	}
	if w.unstored != nil {
		w.appendUnstoredLocked(p)
		return len(p), nil
	}
	if err := w.d.checkStoring(); err != nil {
		w.stopStoringLocked(err)
		w.appendUnstoredLocked(p)
		return len(p), nil
	}
	if w.d.opts.Simulate {
		w.simWriteLocked(int64(len(p)))
		w.broadcast()
		return len(p), nil
	}
	if w.keepBody {
		if w.size+int64(len(p)) <= w.d.bodyLimit {
			w.body.write(p)
		} else {
			w.keepBody = false
			w.body.reset()
		}
	}
	n := len(p)
	for len(p) > 0 {
		if int64(len(w.buf)) == w.cs {
			if err := w.flushLocked(); err != nil {
				w.stopStoringLocked(err)
				w.appendUnstoredLocked(p)
				return n, nil
			}
		}
		room := w.cs - int64(len(w.buf))
		k := min(int64(len(p)), room)
		if int64(cap(w.buf)) < int64(len(w.buf))+k {
			w.buf = slices.Grow(w.buf, int(min(w.cs, max(2*int64(cap(w.buf)), int64(len(w.buf))+k)))-len(w.buf))
		}
		w.buf = append(w.buf, p[:k]...)
		p = p[k:]
		w.size += k
	}
	w.broadcast()
	return n, nil
}

// flushLocked writes the full chunk in buf (with the fill marker before
// the first one, so that a crash leaves a trace Open can clean up). A
// simulated store writes nothing, but charges the chunk all the same
// (Options.Simulate).
func (w *Writer) flushLocked() error {
	if !w.d.opts.Simulate {
		b := w.d.db.NewBatch()
		defer b.Close()
		if !w.marker {
			b.Set(fillKey(w.fill), sealed(nil), nil)
		}
		w.addChunk(b)
		if err := w.d.commit(b, pebble.NoSync); err != nil {
			return fmt.Errorf("store: writing %q: %w", w.key, errors.Join(ErrUnavailable, err))
		}
		w.marker = true
	}
	n := int64(len(w.buf))
	w.flushed += n
	c := w.d.chunkCharge(n)
	w.charged += c
	w.d.used.Add(c)
	w.d.filling.Add(c)
	w.buf = w.buf[:0]
	w.bufStart = w.flushed
	w.d.kick() // the policy shrinks by what the fill wrote
	return nil
}

// simWriteLocked is Write in a simulated store: the body grows by n
// zeros, which buf and body hold as slices of simZeros rather than copies,
// and each full chunk is charged as flushLocked charges it.
func (w *Writer) simWriteLocked(n int64) {
	if w.keepBody {
		if w.size+n <= w.d.bodyLimit {
			w.body.set(simBody(int(w.size + n)))
		} else {
			w.keepBody = false
			w.body.reset()
		}
	}
	for n > 0 {
		if int64(len(w.buf)) == w.cs {
			w.flushLocked() // writes nothing: no error
		}
		k := min(n, w.cs-int64(len(w.buf)))
		w.buf = simBody(len(w.buf) + int(k))
		w.size += k
		n -= k
	}
}

// stopStoringLocked turns the fill into one that only feeds its readers:
// storing stopped (cause wraps ErrUnavailable or ErrTooLarge) but a client
// following the fill must still get the whole body from the origin. The
// chunks already written stay for the readers until the fill ends.
func (w *Writer) stopStoringLocked(cause error) {
	w.unstored = cause
	w.keepBody = false
	w.body.reset()
}

// simZeros backs simBody: as large as the largest chunk.
var simZeros [4 << 20]byte

// simBody returns n zero bytes, not to be written to (appending copies
// them): what a simulated store keeps instead of a body
// (Options.Simulate).
func simBody(n int) []byte {
	if n <= len(simZeros) {
		return simZeros[:n:n]
	}
	return make([]byte, n)
}

// readerLagTimeout is how long a Write of an unstored fill waits for a
// reader that has not yet read the bytes it would drop from memory; past
// it the reader is cut off.
const readerLagTimeout = 30 * time.Second

// appendUnstoredLocked adds p to the in-memory tail of an unstored fill,
// keeping at most maxUnstoredBuffer bytes. Before it drops bytes a reader
// still needs, it waits for that reader (readerLagTimeout, or until the
// fill's context ends); readers still behind then are cut off.
func (w *Writer) appendUnstoredLocked(p []byte) {
	w.buf = append(w.buf, p...)
	w.size += int64(len(p))
	w.broadcast()
	if len(w.buf) <= maxUnstoredBuffer {
		return
	}
	over := len(w.buf) - maxUnstoredBuffer/2
	start := w.bufStart + int64(over)
	w.waitReadersLocked(start)
	w.bufStart = start
	w.buf = append(w.buf[:0], w.buf[over:]...)
	for r := range w.readers {
		if r.consumed < w.bufStart {
			r.lost = true
		}
	}
	w.broadcast()
}

// waitReadersLocked waits until no reader is before offset off, for at
// most readerLagTimeout. It releases w.mu while it waits.
func (w *Writer) waitReadersLocked(off int64) {
	var timeout <-chan time.Time
	for {
		behind := false
		for r := range w.readers {
			if r.consumed < off && !r.lost {
				behind = true
				break
			}
		}
		if !behind {
			return
		}
		if timeout == nil {
			t := time.NewTimer(readerLagTimeout)
			defer t.Stop()
			timeout = t.C
		}
		w.progress = make(chan struct{})
		ch := w.progress
		w.mu.Unlock()
		select {
		case <-ch:
		case <-timeout:
		case <-w.ctx.Done():
		}
		w.mu.Lock()
		w.progress = nil
		select {
		case <-ch:
		default:
			return // timed out or the fill ended
		}
	}
}

// readerMovedLocked wakes a Write waiting for readers to catch up.
func (w *Writer) readerMovedLocked() {
	if w.progress != nil {
		close(w.progress)
		w.progress = nil
	}
}

// addChunk adds the chunk in buf to b.
func (w *Writer) addChunk(b *pebble.Batch) {
	idx := uint32(w.flushed / w.cs)
	k := chunkKey(nil, w.fill, idx)
	op := b.SetDeferred(len(k), 4+len(w.buf))
	copy(op.Key, k)
	copy(op.Value[4:], w.buf)
	seal(op.Value)
	op.Finish()
}

// Commit makes the object visible, atomically replacing any older object
// under the key, and returns it. No lock that a reader following the fill
// waits for is held while the commit is written and synced: readers go on
// reading the body while the commit is in progress.
func (w *Writer) Commit(ctx context.Context) (*Object, error) {
	o, err := w.commitFill(ctx)
	if err == nil && (w.d.used.Load() > w.d.budget || w.d.opts.Simulate) {
		// Eviction fell behind the fills: help it, outside every lock.
		// A simulated store always evicts here, not in the loop
		// (Options.Simulate).
		w.d.evictObjects()
	}
	return o, err
}

func (w *Writer) commitFill(ctx context.Context) (*Object, error) {
	w.mu.Lock()
	switch w.state {
	case aborted:
		w.mu.Unlock()
		return nil, w.err
	case committed:
		w.mu.Unlock()
		return w.obj, nil
	case committing, dropped:
		w.mu.Unlock()
		return nil, errors.New("store: Commit of a fill already ended")
	}
	if err := ctx.Err(); err != nil {
		w.abortLocked(err)
		w.mu.Unlock()
		w.releaseTicket()
		return nil, err
	}
	if w.unstored != nil {
		err := fmt.Errorf("store: %q not stored: %w", w.key, w.unstored)
		w.dropForReadersLocked()
		w.mu.Unlock()
		w.releaseTicket()
		return nil, err
	}
	// From here Write fails and buf, size, flushed and marker stay as
	// they are until commit has written them: it reads them unlocked.
	w.state = committing
	w.mu.Unlock()

	o, err := w.commit()

	w.mu.Lock()
	defer w.mu.Unlock()
	defer w.releaseIfDoneLocked()
	defer w.releaseTicket()
	if errors.Is(err, ErrSuperseded) {
		w.dropForReadersLocked()
		return nil, err
	}
	if err != nil {
		w.state = filling // so that abortLocked ends it
		w.abortLocked(err)
		return nil, err
	}
	w.state, w.obj = committed, o
	w.releaseBufLocked()
	w.bufStart = w.flushed
	w.broadcast()
	w.d.kick()
	return o, nil
}

// dropForReadersLocked ends a fill whose body is not stored: readers
// following it keep reading its chunks and buffer, and the last of them to
// close removes the chunks.
func (w *Writer) dropForReadersLocked() {
	w.state = dropped
	w.broadcast()
	if len(w.readers) == 0 {
		w.dropLocked()
	}
	w.releaseIfDoneLocked()
}

func (w *Writer) releaseTicket() {
	if w.ownTicket {
		w.opts.Ticket.Release()
	}
}

// commit writes the fill's last chunk, meta record and tags in one synced
// batch and publishes the object in the index. It runs with the fill in
// state committing, without w.mu except where it moves what readers see.
func (w *Writer) commit() (*Object, error) {
	d := w.d
	purged := false
	if t := w.opts.Ticket; t != nil {
		// A purge that came after the fill started wins: store the
		// object Invalid (see purgeLog for the order of check, write,
		// publish).
		var pub *publication
		purged, pub = t.log.publish(t, w.key, w.opts.Tags)
		defer t.log.published(pub)
		if purged {
			w.meta.Invalid = true
		}
	}
	now := d.opts.now()
	rec := &metaRecord{
		fill:      w.fill,
		size:      w.size,
		chunkSize: w.cs,
		keepUntil: w.opts.KeepUntil,
		committed: now,
		tags:      w.opts.Tags,
		meta:      w.meta,
	}
	mv := rec.encode()

	// The stripe serializes the writers of this key (commits, removals,
	// metadata updates) so that pebble and the index agree on which fill
	// it holds; readers and lookups never take it.
	st := d.stripe(w.key)
	st.Lock()
	defer st.Unlock()
	old, _, _ := d.lookup(w.key)
	var oldTags []string
	if old != nil {
		if v, closer, err := d.db.Get(metaKey(w.key)); err == nil {
			if orec, err := decodeMeta(v); err == nil {
				// The purge removed or invalidated what the key held
				// then, so a valid object now came after it: keep it.
				if purged && !orec.meta.Invalid {
					closer.Close()
					return nil, fmt.Errorf("store: committing %q: %w", w.key, ErrSuperseded)
				}
				oldTags = orec.tags
			}
			closer.Close()
		}
	}

	b := d.db.NewBatch()
	defer b.Close()
	if old != nil {
		start, end := chunkSpan(old.fill)
		b.DeleteRange(start, end, nil)
		b.Delete(fillKey(old.fill), nil)
		for _, t := range oldTags {
			b.Delete(tagKey(t, w.key), nil)
		}
	}
	lastChunk := int64(len(w.buf))
	if lastChunk > 0 && !d.opts.Simulate {
		w.addChunk(b)
	}
	for _, t := range w.opts.Tags {
		b.Set(tagKey(t, w.key), sealed(nil), nil)
	}
	b.Set(metaKey(w.key), mv, nil)
	wo := pebble.Sync
	if d.opts.NoSync {
		wo = pebble.NoSync
	}
	if err := d.commit(b, wo); err != nil {
		return nil, fmt.Errorf("store: committing %q: %w", w.key, errors.Join(ErrUnavailable, err))
	}
	w.mu.Lock()
	w.flushed += lastChunk
	w.marker = true
	if len(w.readers) > 0 {
		// Before the index update: nothing can have removed the chunks yet.
		w.snap = d.db.NewSnapshot()
	}
	w.mu.Unlock()

	e := &diskEntry{key: w.key, fill: w.fill, size: w.size, charge: d.chargeOf(w.key, rec, len(mv))}
	if d.opts.Simulate {
		e.sim.Store(rec)
	}
	if !rec.keepUntil.IsZero() {
		e.keepUntil = rec.keepUntil.UnixNano()
	}
	e.access.Store(now.UnixMilli())
	e.saved = now.UnixMilli() // the meta record's commit time stands for it
	o := &Object{
		Key:       w.key,
		Meta:      w.meta,
		Size:      w.size,
		Tags:      w.opts.Tags,
		KeepUntil: w.opts.KeepUntil,
		loc:       location{tier: d, fill: w.fill, chunkSize: w.cs},
		entry:     e,
	}
	if w.keepBody && w.body.len() == w.size {
		o.keepBody(w.body.bytes())
	}
	d.mu.Lock()
	d.gen++
	e.gen = d.gen
	o.loc.gen = e.gen
	if cur := d.index[w.key]; cur != nil {
		d.used.Add(-cur.charge)
	}
	d.index[w.key] = e
	d.used.Add(e.charge - w.charged)
	d.filling.Add(-w.charged)
	w.charged = 0
	d.resizePolicyLocked()            // the fill's reserve goes back to the policy
	d.repl.committed(w.key, e.charge) // Commit kicks the loop to remove what it evicted
	d.peer.stored(o)
	d.mu.Unlock()
	return o, nil
}

// Abort discards the fill. It is idempotent and a no-op after Commit.
func (w *Writer) Abort() {
	w.Fail(errAborted)
}

// Fail is Abort with the reason: readers following the fill get an error
// wrapping cause (an origin that closed early, say).
func (w *Writer) Fail(cause error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.state == filling {
		w.abortLocked(cause)
		w.releaseTicket()
	}
}

func (w *Writer) abortLocked(cause error) {
	if w.state != filling {
		return
	}
	w.state = aborted
	w.err = cause
	w.dropLocked()
	w.broadcast()
	w.releaseIfDoneLocked()
}

// releaseIfDoneLocked gives back the fill's reference on the disk tier
// once the fill has ended and no reader needs its chunks. Call it with
// w.mu held.
func (w *Writer) releaseIfDoneLocked() {
	ended := w.state == committed || w.state == aborted || w.state == dropped
	if w.held && ended && len(w.readers) == 0 && w.snap == nil {
		w.held = false
		w.d.release()
	}
}

// releaseBufLocked gives the chunk buffer back to its pool (chunkBufs).
// Readers copy from it only with w.mu held, so none holds it after.
func (w *Writer) releaseBufLocked() {
	if !w.d.opts.Simulate {
		putChunkBuf(w.buf)
	}
	w.buf = nil
}

// dropLocked removes the fill's chunks and gives back its charge. Call it
// with w.mu held, once no reader needs them.
func (w *Writer) dropLocked() {
	w.releaseBufLocked()
	w.body.reset()
	if w.marker && !w.d.faulted.Load() {
		b := w.d.db.NewBatch()
		start, end := chunkSpan(w.fill)
		b.DeleteRange(start, end, nil)
		b.Delete(fillKey(w.fill), nil)
		// On failure the marker stays; the next Open removes the chunks.
		w.d.commit(b, pebble.NoSync)
		b.Close()
	}
	w.marker = false
	w.d.used.Add(-w.charged)
	w.d.filling.Add(-w.charged)
	w.charged = 0
}

// Seal marks the body complete: readers following the fill (NewReader)
// return io.EOF once they have read every byte, without waiting for
// Commit and its durable write. Writes after Seal fail. A sealed fill may
// still fail to commit; its readers have then had a complete body that is
// simply not stored.
func (w *Writer) Seal() {
	w.mu.Lock()
	if w.state == filling && !w.sealed {
		w.sealed = true
		w.broadcast()
	}
	w.mu.Unlock()
}

// NewReader returns a reader that follows the fill from offset 0 (read
// while write): Read blocks, honouring ctx, until more bytes are written,
// returns io.EOF once everything is read after Commit, and an error if the
// fill is aborted. It starts no goroutine; Close releases it.
func (w *Writer) NewReader(ctx context.Context) io.ReadCloser {
	r := &fillReader{w: w, ctx: ctx, bufIdx: -1}
	w.mu.Lock()
	if w.readers == nil {
		w.readers = make(map[*fillReader]struct{})
	}
	w.readers[r] = struct{}{}
	w.mu.Unlock()
	return r
}

type fillReader struct {
	w      *Writer
	ctx    context.Context
	pos    int64
	key    []byte
	buf    []byte // payload of flushed chunk bufIdx
	bufIdx int64
	closed bool

	consumed int64 // pos as the writer last saw it; guarded by w.mu
	lost     bool  // fell behind an unstored fill's buffer; guarded by w.mu
}

func (r *fillReader) Read(p []byte) (int, error) {
	if r.closed {
		return 0, errors.New("store: read of closed fill reader")
	}
	if len(p) == 0 {
		return 0, nil
	}
	w := r.w
	for {
		if idx := r.pos / w.cs; idx == r.bufIdx && r.pos-idx*w.cs < int64(len(r.buf)) {
			n := copy(p, r.buf[r.pos-idx*w.cs:])
			r.pos += int64(n)
			return n, nil
		}
		w.mu.Lock()
		if r.consumed != r.pos {
			r.consumed = r.pos
			w.readerMovedLocked()
		}
		switch {
		case w.state == aborted:
			// First: an aborted fill has dropped its buffer, whatever size says.
			err := w.err
			w.mu.Unlock()
			return 0, fmt.Errorf("store: fill of %q: %w", w.key, err)
		case r.pos < w.flushed:
			w.mu.Unlock()
			if err := r.load(r.pos / w.cs); err != nil {
				return 0, err
			}
			continue
		case r.lost || r.pos < w.bufStart:
			r.lost = true
			w.mu.Unlock()
			return 0, fmt.Errorf("store: fill of %q: the reader fell more than %d bytes behind while storing was paused: %w", w.key, maxUnstoredBuffer/2, ErrUnavailable)
		case r.pos < w.size:
			n := copy(p, w.buf[r.pos-w.bufStart:])
			r.pos += int64(n)
			r.consumed = r.pos
			w.readerMovedLocked()
			w.mu.Unlock()
			return n, nil
		case w.state == committed || w.state == dropped || w.sealed:
			w.mu.Unlock()
			return 0, io.EOF
		}
		ch := w.changed
		w.mu.Unlock()
		select {
		case <-ch:
		case <-r.ctx.Done():
			return 0, r.ctx.Err()
		}
	}
}

func (r *fillReader) load(idx int64) error {
	w := r.w
	if w.d.opts.Simulate {
		// No chunk was written; the body reads as zeros (Options.Simulate).
		w.mu.Lock()
		n := min(w.cs, w.flushed-idx*w.cs)
		w.mu.Unlock()
		r.buf = append(r.buf[:0], make([]byte, n)...)
		r.bufIdx = idx
		return nil
	}
	r.key = chunkKey(r.key, w.fill, uint32(idx))
	w.mu.Lock()
	var get func([]byte) ([]byte, io.Closer, error) = w.d.db.Get
	if w.snap != nil {
		get = w.snap.Get
	}
	w.mu.Unlock()
	v, closer, err := get(r.key)
	if errors.Is(err, pebble.ErrNotFound) {
		w.mu.Lock()
		st, cause := w.state, w.err
		w.mu.Unlock()
		if st == aborted {
			return fmt.Errorf("store: fill of %q: %w", w.key, cause)
		}
		return fmt.Errorf("store: chunk %d of %q is gone: %w", idx, w.key, ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("store: reading chunk %d of %q: %w", idx, w.key, err)
	}
	defer closer.Close()
	p, err := unseal(v)
	if err != nil {
		return fmt.Errorf("store: chunk %d of %q: %w", idx, w.key, err)
	}
	r.buf = append(r.buf[:0], p...)
	r.bufIdx = idx
	return nil
}

func (r *fillReader) Close() error {
	if r.closed {
		return nil
	}
	r.closed = true
	r.buf = nil
	w := r.w
	w.mu.Lock()
	delete(w.readers, r)
	w.readerMovedLocked()
	if len(w.readers) == 0 {
		if w.snap != nil {
			w.snap.Close()
			w.snap = nil
		}
		if w.state == dropped {
			w.dropLocked()
		}
	}
	w.releaseIfDoneLocked()
	w.mu.Unlock()
	return nil
}
