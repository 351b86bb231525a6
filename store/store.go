// Package store keeps cached responses in two tiers, a ristretto memory tier
// in front of a pebble disk tier, with byte budgets, eviction, a durable tag
// index and crash recovery. It stores what the cache package (RFC 9111 §3)
// decided may be stored and hands back complete objects; it makes no HTTP
// caching decisions itself, except that objects past their keep time
// (RFC 9111 §4.2 freshness plus the RFC 5861 stale windows the caller folds
// into KeepUntil) are misses and are removed.
package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cellar-cache/cellar/cache"
	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// Sentinel errors, for errors.Is.
var (
	// ErrNotFound reports a miss.
	ErrNotFound = errors.New("store: not found")
	// ErrTooLarge reports a body past Options.MaxObject: Create with a
	// larger SizeHint fails with it, and a fill that grows past it goes on
	// unstored for its readers and its Commit fails with it.
	ErrTooLarge = errors.New("store: object too large")
	// ErrLocked reports that another cellar (process or Store) holds the data
	// directory.
	ErrLocked = errors.New("store: data directory is in use by another cellar")
	// ErrCorrupt is the category of records that fail their checksum. Get
	// reports such a record as ErrNotFound after deleting and counting it;
	// a body read that meets one mid-stream returns an error wrapping
	// ErrCorrupt.
	ErrCorrupt = errors.New("store: corrupt record")
	// ErrUnavailable reports that storing is paused after a full disk or an
	// I/O error; reads continue and storing resumes when space returns.
	ErrUnavailable = errors.New("store: storing unavailable")
	// ErrSuperseded reports a Commit that was dropped because a purge
	// overtook the fill and a valid object committed after that purge
	// holds the key: the older response must not replace it. Readers
	// following the fill still get its whole body.
	ErrSuperseded = errors.New("store: fill superseded by a newer object")
)

// Options configures a Store. Zero values mean the documented default; call
// EnsureDefaults, then Validate (Open does both).
type Options struct {
	// Dir is the data directory; required. It is created (mode 0700) if
	// missing.
	Dir string
	// MemoryBytes is the memory tier budget in bytes. Default 256 MiB;
	// negative disables the memory tier.
	MemoryBytes int64
	// DiskBytes is the disk tier budget in bytes: the data directory
	// (objects, pebble's WALs and MANIFEST, the ballast) stays within 5% of
	// it. Default 2 GiB.
	DiskBytes int64
	// MaxMemoryObject is the largest body the memory tier holds; larger
	// objects are served from disk only. Default 1 MiB.
	MaxMemoryObject int64
	// MaxObject is the largest storable body in bytes. Default 1 GiB, or a
	// quarter of DiskBytes if that is less (one fill must not evict the
	// whole disk tier).
	MaxObject int64
	// Logger receives the store's logs. Default slog.Default().
	Logger *slog.Logger

	// ChunkSize is the size of the disk records a body is cut into; a Range
	// read touches only the chunks it needs. Default 64 KiB.
	ChunkSize int
	// MeanObjectSize is the expected mean object size in bytes, used to size
	// the memory tier's admission counters (10 per expected object).
	// Default 16 KiB.
	MeanObjectSize int64
	// EvictTarget and EvictStart are fractions of the disk tier's budget
	// for objects (DiskBytes less its fixed overheads,
	// Stats.DiskObjectBudget). Committed objects fill the replacement
	// policy (W-TinyLFU, see replacer) up to EvictTarget less the bytes
	// fills in progress have written (at most a quarter of the budget):
	// the reserve for fills follows what is in flight. When fills in
	// progress beyond that bound take the charge past EvictStart, the
	// policy's victims are evicted down to EvictTarget. Defaults 0.999
	// and 1. pebble's compaction transients have their own room among the
	// fixed overheads (fixedOverhead; measured by
	// TestDataDirStaysWithinBudget).
	EvictStart, EvictTarget float64
	// BlockCacheBytes is pebble's block cache size. Default DiskBytes/64,
	// at most MemoryBytes/8 (it is memory outside the Go heap, where the
	// memory limit does not reach it), between 1 MiB and 64 MiB.
	BlockCacheBytes int64
	// MemTableBytes is the size of one pebble memtable. Pebble queues at
	// most two before it stalls writes, and each has a WAL file of about
	// its size; with recycled WAL files and the MANIFEST, seven times it
	// counts against DiskBytes. Default DiskBytes/128, between 64 KiB and
	// 4 MiB (pebble's own default): memtables live outside the Go heap,
	// where the memory limit does not reach them, and two of 16 MiB put
	// 20 MiB on the resident memory of a filled cache (make soak-memory).
	MemTableBytes int64
	// ReserveBytes is the size of a ballast file kept in Dir and deleted
	// when the disk fills up, so that pebble can finish what it is writing
	// while storing pauses. It counts against DiskBytes. Default DiskBytes/32,
	// between 64 KiB and 64 MiB; negative disables the ballast. It is
	// created once the tier has opened, never in a directory cellar cannot
	// open.
	ReserveBytes int64
	// RetryInterval is how long storing stays paused after a full disk or
	// an I/O error before it is tried again, and the longest wait between
	// two tries to bring a failed disk tier back. Default 30 s.
	RetryInterval time.Duration
	// FS is the file system under pebble; nil means the real one
	// (vfs.Default). Tests inject failures such as a full disk.
	FS vfs.FS
	// NoSync skips the fsync of each commit: a kill -9 may then lose the
	// newest commits. For benchmarks; never in production.
	NoSync bool
	// Simulate runs the store for `cellar bench sim`, which replays whole
	// traces through it: what decides which objects are resident is the
	// production code (each object's budget charge, the budget and its
	// eviction marks, the replacement policy, the memory tier's
	// admission), but the I/O is cut down to what those decisions need:
	//   - pebble's files are in memory (FS nil means a new vfs.NewMem; the
	//     real file system is refused), with no write-ahead log, no
	//     compression and no fsync: nothing survives Close;
	//   - bodies are not written: a body reads back as zero bytes of its
	//     size (the memory tier holds zeros of the same length, so its
	//     costs are unchanged), and it is charged as if written;
	//   - meta records are written but a hit takes the record from its
	//     index entry instead of reading it, and eviction removes it
	//     without reading it (tag entries are left for the next tag purge
	//     to clean);
	//   - storing never pauses for the space pebble's files take (the
	//     space gate follows compaction, which has no bodies to move);
	//   - a commit removes the objects the policy evicted before it
	//     returns, rather than the background loop soon after, so that a
	//     replay does not depend on timing.
	// Never in production.
	Simulate bool
	// Seed, if not zero, seeds the hash of the disk tier's replacement
	// policy (its frequency sketch and its shadows' sample), so that the
	// same requests make the same decisions: `cellar bench sim` sets it to
	// make a replay repeatable. Zero means a random seed per open, so that
	// no one can choose keys that collide in the sketch.
	Seed uint64

	// now replaces time.Now (tests); realClock: it is time.Now.
	now       func() time.Time
	realClock bool
	// blockSize replaces dataBlockSize, pebble's block size (benchmarks).
	blockSize int
	// noSweep leaves bans to lookups (tests of the lazy path).
	noSweep bool
}

// EnsureDefaults fills in the documented defaults for zero fields.
func (o *Options) EnsureDefaults() {
	if o.MemoryBytes == 0 {
		o.MemoryBytes = 256 << 20
	}
	if o.DiskBytes == 0 {
		o.DiskBytes = 2 << 30
	}
	if o.MaxMemoryObject == 0 {
		o.MaxMemoryObject = 1 << 20
	}
	if o.MaxObject == 0 {
		o.MaxObject = min(1<<30, max(o.DiskBytes, 1<<20)/4)
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.ChunkSize == 0 {
		o.ChunkSize = 64 << 10
	}
	if o.MeanObjectSize == 0 {
		o.MeanObjectSize = 16 << 10
	}
	if o.EvictStart == 0 {
		o.EvictStart = 1
	}
	if o.EvictTarget == 0 {
		o.EvictTarget = 0.999
	}
	if o.BlockCacheBytes == 0 {
		bc := o.DiskBytes / 64
		if o.MemoryBytes > 0 {
			bc = min(bc, o.MemoryBytes/8)
		}
		o.BlockCacheBytes = clamp(bc, 1<<20, 64<<20)
	}
	if o.MemTableBytes == 0 {
		o.MemTableBytes = clamp(o.DiskBytes/128, 64<<10, 4<<20)
	}
	if o.ReserveBytes == 0 {
		o.ReserveBytes = clamp(o.DiskBytes/32, 64<<10, 64<<20)
	}
	if o.RetryInterval == 0 {
		o.RetryInterval = 30 * time.Second
	}
	if o.FS == nil {
		o.FS = vfs.Default
		if o.Simulate {
			o.FS = vfs.NewMem()
		}
	}
	if o.now == nil {
		o.now, o.realClock = time.Now, true
	}
}

func clamp(v, lo, hi int64) int64 {
	return max(lo, min(v, hi))
}

// Validate reports every invalid field at once.
func (o *Options) Validate() error {
	var errs []error
	if o.Dir == "" {
		errs = append(errs, errors.New(`store: Dir "" is invalid: a data directory is required`))
	}
	if o.DiskBytes < 1<<20 {
		errs = append(errs, fmt.Errorf("store: DiskBytes %d is invalid: must be at least 1 MiB", o.DiskBytes))
	}
	if o.MaxMemoryObject < 0 {
		errs = append(errs, fmt.Errorf("store: MaxMemoryObject %d is invalid: must not be negative", o.MaxMemoryObject))
	}
	if o.MaxObject <= 0 {
		errs = append(errs, fmt.Errorf("store: MaxObject %d is invalid: must be positive", o.MaxObject))
	}
	if o.ChunkSize < 1<<10 || o.ChunkSize > 4<<20 {
		errs = append(errs, fmt.Errorf("store: ChunkSize %d is invalid: must be between 1 KiB and 4 MiB", o.ChunkSize))
	}
	if o.MeanObjectSize <= 0 {
		errs = append(errs, fmt.Errorf("store: MeanObjectSize %d is invalid: must be positive", o.MeanObjectSize))
	}
	if !(o.EvictTarget > 0 && o.EvictTarget < o.EvictStart && o.EvictStart <= 1) {
		errs = append(errs, fmt.Errorf("store: EvictStart %g, EvictTarget %g are invalid: need 0 < EvictTarget < EvictStart <= 1", o.EvictStart, o.EvictTarget))
	}
	if o.BlockCacheBytes < 0 {
		errs = append(errs, fmt.Errorf("store: BlockCacheBytes %d is invalid: must not be negative", o.BlockCacheBytes))
	}
	if o.MemTableBytes < 64<<10 {
		errs = append(errs, fmt.Errorf("store: MemTableBytes %d is invalid: must be at least 64 KiB", o.MemTableBytes))
	}
	if room := o.DiskBytes - fixedOverhead(o); room < o.DiskBytes/2 {
		errs = append(errs, fmt.Errorf("store: ReserveBytes %d and MemTableBytes %d are invalid: with DiskBytes %d they must leave at least half of it for objects", o.ReserveBytes, o.MemTableBytes, o.DiskBytes))
	}
	if o.Simulate && o.FS == vfs.Default {
		errs = append(errs, errors.New("store: Simulate with the real file system is invalid: a simulated store keeps no write-ahead log and no bodies, so its files must be in memory (FS nil or vfs.NewMem)"))
	}
	if o.RetryInterval < 0 {
		errs = append(errs, fmt.Errorf("store: RetryInterval %v is invalid: must not be negative", o.RetryInterval))
	}
	return errors.Join(errs...)
}

// Object is a complete stored response. It is immutable and safe to share
// between goroutines.
type Object struct {
	Key  string
	Meta cache.Meta
	// Size is the body length in bytes.
	Size int64
	Tags []string
	// KeepUntil is when the store may delete the object; zero means until
	// evicted.
	KeepUntil time.Time

	body     []byte // whole body when resident in memory
	resident bool
	hot      bool       // a hot copy (hot.go): memory tier only
	memo     *memo      // what readers derive from a resident object (memory.go); nil otherwise
	loc      location   // disk location of the body; tier is nil if not read from disk
	entry    *diskEntry // the disk index entry read or committed; nil if not on disk
}

// location is where a body lives on disk.
type location struct {
	tier      *diskTier // the pebble instance holding the body
	fill      uint64    // fill id: the chunk records' key prefix
	chunkSize int64
	gen       uint64 // index generation when read (promotion check)
}

// Body returns the whole body when the object is resident in memory (the
// fast path of a hit: one w.Write), else nil, false.
func (o *Object) Body() ([]byte, bool) {
	return o.body, o.resident
}

// expired reports whether o is past KeepUntil at now (unix nanoseconds).
func (o *Object) expired(now time.Time) bool {
	return !o.KeepUntil.IsZero() && now.After(o.KeepUntil)
}

// CreateOptions are the per-object settings of a fill.
type CreateOptions struct {
	// Tags are purge tags; they are indexed durably.
	Tags []string
	// KeepUntil is when the store may delete the object; zero keeps it
	// until evicted.
	KeepUntil time.Time
	// SizeHint is the Content-Length if known, -1 if unknown.
	SizeHint int64
	// Ticket is the store ticket taken before the origin request of this
	// fill started (Store.Ticket). A purge after it that matches the object
	// makes Commit store it Invalid: a response in flight when the purge
	// arrived is never served as fresh afterwards. The caller keeps it and
	// releases it after Commit or Abort. Nil means a ticket taken at
	// Create, which the Writer releases itself.
	Ticket *Ticket
}

// Selector chooses the objects a Purge affects. Exactly the non-empty fields
// are combined with OR.
type Selector struct {
	// URL is a primary key: it matches the key itself and every key that
	// starts with URL+"\x00" (its Vary and encoding variants).
	URL string
	// Prefix matches every key starting with it.
	Prefix string
	// Tag matches every object stored with this tag.
	Tag string
	// All matches everything.
	All bool
	// Pattern matches every key whose URL (the part before the first 0
	// byte: the primary key) it matches; Ban applies such selectors.
	Pattern *regexp.Regexp
	// fillBelow, when set, limits Pattern to objects whose fill id is
	// below it (those older than the ban).
	fillBelow uint64
}

func (sel Selector) matchKey(key string) bool {
	if sel.All {
		return true
	}
	if u := sel.URL; u != "" && strings.HasPrefix(key, u) && (len(key) == len(u) || key[len(u)] == 0) {
		return true
	}
	if sel.Pattern != nil && banMatches(sel.Pattern, key) {
		return true
	}
	return sel.Prefix != "" && strings.HasPrefix(key, sel.Prefix)
}

func (sel Selector) empty() bool {
	return !sel.All && sel.URL == "" && sel.Prefix == "" && sel.Tag == "" && sel.Pattern == nil
}

// Stats are the store's gauges and cumulative counters. DiskBytes is the
// budget charge of stored objects and fills in progress (bodies, records
// and their overhead), not the directory size.
type Stats struct {
	MemoryBytes, MemoryObjects, DiskBytes, DiskObjects int64
	// MemoryBudget is Options.MemoryBytes (0 when the memory tier is
	// off); DiskObjectBudget is the part of Options.DiskBytes left for
	// objects once the ballast, pebble's WALs and MANIFEST have theirs.
	MemoryBudget, DiskObjectBudget int64
	// Cumulative counters.
	Hits, Misses, Corrupt, Evictions, WriteErrors int64
}

// Store is the composed two-tier store: lookups go to memory, then disk;
// every object is on disk, and small ones also in memory (write-through).
// The tiers are peers: the memory tier is the disk tier's indexPeer, told
// of every change of the disk index, in order. Its methods are safe for
// concurrent use.
type Store struct {
	opts  Options
	mem   *memTier // nil when disabled
	lockf *os.File
	slot  diskSlot     // the disk tier's current pebble instance (diskslot.go)
	ctr   diskCounters // the disk tier's counters, across instances

	hits, misses atomic.Int64
	purges       purgeLog
	bans         banList
	held         atomic.Uint64 // HoldStored: objects with a lower fill id miss; 0: none held

	sweepCh   chan struct{} // wakes the ban sweeper; buffered 1
	sweepDone chan struct{} // closed by Close
	sweepWG   sync.WaitGroup

	closeOnce sync.Once
	closeErr  error
}

// Open opens (creating if needed) the store in opts.Dir. It fails only on
// invalid options, a data directory it cannot create, and with an error
// wrapping ErrLocked when another cellar holds the directory. Whatever the
// state of the disk tier's files, it returns a working Store: it removes
// incomplete fills left behind by a crash, opens a full disk read-only,
// and moves a directory pebble cannot open aside and starts the disk tier
// empty (see DiskState and diskslot.go).
func Open(opts Options) (*Store, error) {
	opts.EnsureDefaults()
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(opts.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("store: creating data directory: %w", err)
	}
	lockf, err := lockDir(opts.Dir)
	if err != nil {
		return nil, err
	}
	s := &Store{opts: opts, lockf: lockf, sweepCh: make(chan struct{}, 1), sweepDone: make(chan struct{})}
	if opts.MemoryBytes > 0 {
		m, err := newMemTier(opts)
		if err != nil {
			unlockDir(lockf)
			return nil, err
		}
		s.mem = m
	}
	s.startTier()
	s.sweepWG.Add(1)
	go s.sweepLoop()
	s.wakeSweeper() // resume the sweep of bans pending at the last stop, if any
	return s, nil
}

// Close waits for background work, persists access times and closes pebble
// cleanly. Objects and writers must not be used after Close; a second
// Close returns the first one's result.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		close(s.sweepDone)
		s.sweepWG.Wait()
		s.closeErr = s.closeTier()
		if s.mem != nil {
			s.mem.close()
		}
		unlockDir(s.lockf)
	})
	return s.closeErr
}

// Get returns the complete object stored under key: from memory first, then
// from disk (a disk hit may be promoted to memory through ristretto's
// admission). It returns ErrNotFound on a miss, when the object is past
// KeepUntil (it is then removed), when its record fails its checksum (it
// is then deleted, counted and logged), or when a hard ban newer than it
// matches (it is then removed; a soft ban returns it marked Invalid; see
// Ban), and while HoldStored holds it.
func (s *Store) Get(ctx context.Context, key string) (*Object, error) {
	return s.get(ctx, key, time.Time{})
}

// GetAt is Get for a caller that has just read the real clock (now: a
// request's arrival, say), so that a memory hit reads no clock of its own
// for KeepUntil. A store on another clock (tests) reads its own.
func (s *Store) GetAt(ctx context.Context, key string, now time.Time) (*Object, error) {
	if !s.opts.realClock {
		now = time.Time{}
	}
	return s.get(ctx, key, now)
}

// get is Get with the time of a memory hit's KeepUntil check (zero: read
// the store's clock when needed).
func (s *Store) get(ctx context.Context, key string, now time.Time) (*Object, error) {
	if s.mem != nil {
		if o, ok := s.mem.get(key, now); ok && !s.isHeld(o) {
			if o.entry != nil && o.loc.tier != nil {
				o.loc.tier.touch(o.entry)
			}
			if o, gone := s.banned(o); !gone {
				s.hits.Add(1)
				return o, nil
			}
			s.misses.Add(1)
			return nil, ErrNotFound
		}
	}
	d := s.acquire()
	if d == nil {
		s.misses.Add(1)
		return nil, ErrNotFound
	}
	defer d.release()
	o, err := d.get(ctx, key, true)
	if err == nil && s.isHeld(o) {
		err = ErrNotFound
	}
	if err == nil {
		if o, gone := s.banned(o); !gone {
			s.hits.Add(1)
			return o, nil
		}
		err = ErrNotFound
	}
	if errors.Is(err, ErrNotFound) {
		s.misses.Add(1)
		d.repl.missed(key)
	}
	return nil, err
}

// NewReader streams n bytes of o's body from offset off (n < 0: to the end).
// It reads only the chunks it needs (Range requests). A chunk that fails its
// checksum ends the stream with an error wrapping ErrCorrupt, and the object
// is deleted. It fails with ErrNotFound when the object was replaced or
// removed since Get; once it returns, the stream sees the body as it was
// (a later replacement does not cut it short). Close releases it.
func (s *Store) NewReader(ctx context.Context, o *Object, off, n int64) (io.ReadCloser, error) {
	if off < 0 || off > o.Size {
		return nil, fmt.Errorf("store: offset %d is outside the body of %d bytes", off, o.Size)
	}
	if n < 0 || off+n > o.Size {
		n = o.Size - off
	}
	if o.resident {
		return io.NopCloser(bytes.NewReader(o.body[off : off+n])), nil
	}
	d := s.acquire()
	if d == nil || d != o.loc.tier {
		// The instance that held the body is gone (a fill id of another
		// instance may name another body).
		if d != nil {
			d.release()
		}
		return nil, fmt.Errorf("store: reading %q: the disk tier was replaced: %w", o.Key, ErrNotFound)
	}
	defer d.release()
	return d.newReader(ctx, o, off, n)
}

// Create starts a fill of key. The body is written in chunks as it arrives,
// so that a large object never sits whole in memory. The object becomes
// visible to Get only on Commit, which atomically replaces any older object
// under key; Abort, or a failed Write, leaves nothing behind. Create fails
// with ErrUnavailable while storing is paused (full disk, I/O errors). The
// caller must end every fill with Commit or Abort (a forgotten one keeps
// its chunks until the next Open).
func (s *Store) Create(ctx context.Context, key string, meta cache.Meta, opts CreateOptions) (*Writer, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if opts.SizeHint > s.opts.MaxObject {
		return nil, fmt.Errorf("store: %d byte body of %q: %w", opts.SizeHint, key, ErrTooLarge)
	}
	own := opts.Ticket == nil
	if own {
		opts.Ticket = s.purges.ticket()
	}
	d := s.acquire()
	if d == nil {
		if own {
			opts.Ticket.Release()
		}
		return nil, ErrUnavailable
	}
	defer d.release()
	w, err := d.create(ctx, key, meta, opts)
	if err != nil {
		if own {
			opts.Ticket.Release()
		}
		return nil, err
	}
	w.ownTicket = own
	return w, nil
}

// Ticket returns a store ticket: take it before the origin request of a
// fill or revalidation, so that a purge from then on wins over that work
// (CreateOptions.Ticket, UpdateObjectMeta), and Release it when the work
// is over. Taking one does not wait for any I/O.
func (s *Store) Ticket() *Ticket {
	return s.purges.ticket()
}

// UpdateMeta replaces the metadata and keep time of whatever object key
// holds, keeping its body (a Vary marker's list, say). ErrNotFound if
// absent. To update an object read earlier, such as one a 304 freshens
// (RFC 9111 §4.3.4), use UpdateObjectMeta.
func (s *Store) UpdateMeta(ctx context.Context, key string, meta cache.Meta, keepUntil time.Time) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	d := s.acquire()
	if d == nil {
		return ErrUnavailable
	}
	defer d.release()
	return d.updateMeta(key, func(m *cache.Meta, ku *time.Time) {
		*m = meta
		*ku = keepUntil
	})
}

// UpdateObjectMeta replaces the metadata and keep time of the object o
// that the caller read (Get), keeping its body. When o.Key now holds
// another object (a fill committed since), it changes nothing and returns
// an error wrapping ErrSuperseded, so that metadata derived from an older
// response never lands on a newer body. t is the ticket taken when the work
// behind the update began, a revalidation's origin request say: when a
// purge since then matches the object, the new metadata is stored Invalid,
// so that a 304 that was in flight when a soft purge arrived does not make
// the object fresh again.
func (s *Store) UpdateObjectMeta(ctx context.Context, t *Ticket, o *Object, meta cache.Meta, keepUntil time.Time) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if o.loc.fill == 0 {
		return fmt.Errorf("store: updating %q: the object was not read from this store", o.Key)
	}
	d := s.acquire()
	if d == nil {
		return ErrUnavailable
	}
	defer d.release()
	if d != o.loc.tier {
		return fmt.Errorf("store: updating %q: the disk tier was replaced: %w", o.Key, ErrSuperseded)
	}
	purged, pub := s.purges.publish(t, o.Key, o.Tags)
	defer s.purges.published(pub)
	if purged {
		meta.Invalid = true
	}
	return d.rewriteMeta(o.Key, o.loc.fill, func(m *cache.Meta, ku *time.Time) {
		*m = meta
		*ku = keepUntil
	}, pebble.Sync)
}

// Purge selects objects and removes them (soft false) or marks them Invalid
// in their Meta (soft true: kept for stale serving). It returns the number of
// objects affected. A purge is durable once Purge returns: it survives a
// restart or a kill -9. Fills in progress that it matches and that started
// before it (CreateOptions.Ticket) commit Invalid, whatever soft says.
func (s *Store) Purge(ctx context.Context, sel Selector, soft bool) (int, error) {
	return s.PurgeMany(ctx, []Selector{sel}, soft)
}

// PurgeMany is Purge of every object that any of sels matches, made
// durable with one sync for them all (a purge request naming many URLs).
// An object that several selectors match counts once.
func (s *Store) PurgeMany(ctx context.Context, sels []Selector, soft bool) (int, error) {
	if len(sels) == 0 {
		return 0, errors.New("store: no purge selector")
	}
	for _, sel := range sels {
		if sel.empty() {
			return 0, errors.New("store: empty purge selector: set URL, Prefix, Tag or All")
		}
	}
	var pubs []*publication
	for _, sel := range sels {
		pubs = append(pubs, s.purges.record(sel)...)
	}
	// Commits that checked the log before these records must be in the
	// index before we look for what to purge (see purgeLog).
	if err := wait(ctx, pubs); err != nil {
		return 0, err
	}
	hot := s.purgeHot(sels) // hot.go: removed, soft or not
	d := s.acquire()
	var n int
	var err error
	switch {
	case d == nil:
		n, err = s.purgeUnwritable(nil, sels, soft)
	case d.readOnly:
		n, err = s.purgeUnwritable(d, sels, soft)
	default:
		n, err = d.purge(ctx, sels, soft)
	}
	if d != nil {
		d.release()
	}
	return n + hot, err
}

// Stats returns the store's current gauges and counters. It walks the memory
// tier to count its objects: call it at scrape intervals, not per request.
func (s *Store) Stats() Stats {
	var st Stats
	if d := s.acquire(); d != nil {
		st = d.stats()
		d.release()
	} else {
		st = Stats{Corrupt: s.ctr.corrupt.Load(), Evictions: s.ctr.evictions.Load(), WriteErrors: s.ctr.writeErrors.Load()}
	}
	if s.mem != nil {
		if s.opts.Simulate {
			// A replay reads what the tier holds once ristretto has
			// applied the Sets in its buffer: a short one can end before
			// ristretto's goroutine has run at all.
			s.mem.c.Wait()
		}
		st.MemoryBytes, st.MemoryObjects = s.mem.usage()
		st.MemoryBudget = s.opts.MemoryBytes
	}
	st.Hits = s.hits.Load()
	st.Misses = s.misses.Load()
	return st
}
