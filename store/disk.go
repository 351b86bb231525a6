package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"io"
	"log/slog"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cellar-cache/cellar/cache"
	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/sstable/block"
)

// The disk budget's charge per object beyond its body (chargeOf), fitted
// to what objects take in pebble's tables once flushed and compacted
// (TestChargeMatchesTheFootprint measures it):
//   - a chunk record costs chunkRecordOverhead bytes beyond its payload
//     (the part of its key that differs from the key before it, lengths,
//     checksum; chunkIndexBytes more after the first chunk, whose key has
//     no index) and its share of a block's cost (blockOverhead: trailer,
//     restart points, index entry), by the part of a block it fills: a
//     4 KiB chunk in a 16 KiB block a quarter, a 64 KiB chunk a block of
//     its own. Measured at 4, 8, 16 and 32 KiB blocks: 98, 76, 65 and 60
//     bytes per 4 KiB object (blockOverhead 44, before the first chunk's
//     key lost its index);
//   - the small records (meta record, tag entries, the object's entry in
//     the access records), which pebble prefix-compresses and compresses
//     by block (zstd, tableCompression), take about 3/7 of the raw bytes
//     of the key, the meta record and the tag entries less 28 bytes, and
//     at least a sixth of them: 19 bytes for the bench's uniform metadata
//     (110 raw bytes), 94 with varied URLs, headers and times (285 raw
//     bytes). With Snappy it was 5/9 less 34: 27 and 124.
const (
	chunkRecordOverhead                  = 13
	chunkIndexBytes                      = 4
	blockOverhead                        = 44
	smallRecordsNum, smallRecordsDen     = 3, 7
	smallRecordsFree, smallRecordsMinDen = 28, 6
)

// dataBlockSize is the size of pebble's blocks. Chunks up to a fraction
// of it share a block, so that small objects share its per-block cost
// (trailer, checksum, index entry: about 45 bytes) instead of paying it
// each, as they did in pebble's default 4 KiB blocks: the footprint of a
// 4 KiB object beyond its body fell from 98 to 64 bytes (at 32 KiB blocks,
// 60; TestChargeMatchesTheFootprint). The price is on a disk hit that
// misses the block cache: it reads and checksums the whole block, up to
// 16 KiB for a 1-4 KiB object, and the block takes that much of the block
// cache (BenchmarkGetDiskCold). Chunks of ChunkSize (64 KiB) fill blocks
// of their own either way.
const dataBlockSize = 16 << 10

// tableCompression is how pebble compresses the blocks of the levels
// below L0: data blocks with zstd at level 1, the other blocks (a table's
// index) with Snappy. The meta records, tag entries and access records are
// alike from object to object, and zstd takes them to about two thirds of
// what Snappy does: the bench's 4 KiB object took 48 bytes beyond its body
// with Snappy, 41 with zstd; varied URLs and headers 146 and 117
// (TestChargeMatchesTheFootprint). Blocks of bodies that do not compress
// are stored as they are (pebble keeps a block compressed only when it
// shrinks by 12%), but zstd tries each one at every compaction: about half
// a millisecond of CPU per MiB compacted, where Snappy gives up on random
// bytes almost at once. Flushes (L0) keep Snappy, so that a memtable
// drains as fast as before. Index blocks keep Snappy: a disk hit that
// misses the block cache decompresses a table's index, and with zstd there
// too the hit took twice the CPU (BenchmarkGetDiskCold); with zstd on data
// blocks only it takes 10-25% more. Older tables keep their blocks until
// compactions rewrite them; pebble reads either.
var tableCompression = func() block.CompressionProfile {
	p := *block.ZstdCompression
	p.Name = "cellar"
	p.DataBlocks = block.BalancedCompression.DataBlocks // zstd, level 1
	p.ValueBlocks = p.DataBlocks
	p.OtherBlocks = block.SnappyCompression.OtherBlocks
	return p
}()

// expirySample is how many entries each sweep for expired objects looks at.
const expirySample = 64

// maxPointDeletes is the largest number of chunks removed with point
// deletions rather than one range deletion (see remove).
const maxPointDeletes = 16

// diskEntry is the in-memory index entry of one committed object. Fields
// other than access are guarded by diskTier.mu.
type diskEntry struct {
	key       string
	fill      uint64
	size      int64
	charge    int64 // bytes charged to the budget
	keepUntil int64 // unix nanoseconds; 0: none
	gen       uint64
	access    atomic.Int64 // last access, unix milliseconds
	saved     int64        // access value persisted on disk
	// sim is the meta record in a simulated store (Options.Simulate), so
	// that a hit need not read it back; nil otherwise.
	sim atomic.Pointer[metaRecord]
}

// diskCounters are the disk tier's cumulative counters. They outlive the
// pebble instances that the Store's supervisor replaces after a fault.
type diskCounters struct {
	corrupt, evictions, writeErrors atomic.Int64
}

// diskTier is one pebble instance of the disk tier: chunked bodies, meta
// records, the tag index, byte-budget eviction and recovery. Safe for
// concurrent use. The Store replaces it after a fault (diskslot.go): a
// faulted instance takes no new work and is closed once refs drops to zero.
type diskTier struct {
	opts Options
	log  *slog.Logger
	db   *pebble.DB
	// wal shields pebble from its log files' failures (walshield.go); nil
	// when read-only.
	wal *walShield
	// peer is the tier composed beside this one by Store (the memory
	// tier, or none): it is told of every index change, under mu.
	peer indexPeer
	// bodyLimit is the largest body a commit keeps and a read loads whole
	// for the peer; -1 when there is no peer to hold bodies.
	bodyLimit int64
	budget    int64 // bytes for objects: DiskBytes minus ballast, WALs and manifest
	blockSize int64 // pebble's block size (dataBlockSize), for chunkCharge
	seed      maphash.Seed
	ctr       *diskCounters
	// readOnly: pebble was opened read-only because the disk was full. The
	// instance serves what is stored, stores nothing and does not evict.
	readOnly bool

	// refs counts the calls, readers and fills using db.
	refs atomic.Int64
	// faulted is set at the first fault (or when the supervisor retires
	// the instance); from then on it takes no new work.
	faulted atomic.Bool
	kind    atomic.Int32                      // faultKind of the first fault
	closing atomic.Bool                       // close has begun: pebble's errors are expected
	onFault func(*diskTier, faultKind, error) // the Store's supervisor; must not block
	logs    logLimiter
	// openedAt is when the instance opened (the supervisor backs off
	// before reopening one that failed soon after).
	openedAt time.Time

	// stripes serialize the writers of one key (commit, delete, update),
	// so that the index and pebble agree on which fill a key holds.
	stripes [64]sync.Mutex

	mu    sync.Mutex // protects index and gen
	index map[string]*diskEntry
	gen   uint64
	// repl chooses what to evict; it is told of index changes under mu.
	repl *replacer

	used atomic.Int64 // bytes charged: committed objects and fills in progress
	// filling is the part of used charged by fills in progress (their
	// chunks written so far); policyCap is the replacement policy's
	// capacity as last set (policyCapacity), written under mu.
	filling, policyCap atomic.Int64
	// onDisk is what pebble's files took at the last measure (the loop's),
	// written what commits added since: storing pauses while their sum
	// passes spaceLimit, so that the directory stays within DiskBytes
	// even when compactions lag behind eviction.
	onDisk, written atomic.Int64
	nextFill        atomic.Uint64
	clock           atomic.Int64 // coarse now, unix milliseconds

	pauseMu     sync.Mutex // protects pausedUntil
	pausedUntil time.Time
	paused      atomic.Bool

	reclaimMu            sync.Mutex // protects reclaimLo, reclaimHi
	reclaimLo, reclaimHi uint64     // fills evicted since the last compaction; 0: none

	evictCh chan struct{} // wakes the background loop; buffered 1
	done    chan struct{}
	// bg is the context of background work (compactions); close cancels it.
	bg       context.Context
	bgCancel context.CancelFunc
	wg       sync.WaitGroup
}

// indexPeer is told, in index order (under diskTier.mu), of every change
// of the disk tier's index, so that a tier beside it never holds an object
// the index replaced or removed. Store composes the memory tier this way.
type indexPeer interface {
	// stored: o is now what key holds (committed, or read and promoted);
	// o carries its body when it is resident.
	stored(o *Object)
	// updated: key's metadata and keep time were rewritten (generation gen).
	updated(key string, meta cache.Meta, keepUntil time.Time, gen uint64)
	// removed: key holds nothing any more.
	removed(key string)
}

// noPeer is the indexPeer of a disk tier alone.
type noPeer struct{}

func (noPeer) stored(*Object)                                {}
func (noPeer) updated(string, cache.Meta, time.Time, uint64) {}
func (noPeer) removed(string)                                {}

// dbDirName is pebble's directory inside the data directory.
const dbDirName = "db"

// memTableStopWrites is pebble's MemTableStopWritesThreshold: the memtables
// (each with its WAL) that may be queued before writes stall. Pebble keeps
// up to one more recycled WAL file than this (wal.Options.MaxNumRecyclableLogs).
const memTableStopWrites = 2

// fixedOverhead is what the data directory holds besides objects, counted
// against DiskBytes: the ballast, the WAL files (memTableStopWrites live
// and memTableStopWrites+1 recycled, each about one memtable), the
// MANIFEST (rotated at one memtable's size; old and new during rotation)
// and the room spaceLimit keeps for compaction transients, so that objects
// filling their budget (EvictTarget) do not hold the space gate shut.
func fixedOverhead(o *Options) int64 {
	return max(o.ReserveBytes, 0) + (2*memTableStopWrites+1)*o.MemTableBytes + 2*o.MemTableBytes +
		(o.DiskBytes-max(o.ReserveBytes, 0))/12
}

// openDisk opens the pebble instance in opts.Dir (read-only: without
// writing to the directory) and rebuilds the index, telling peer (nil:
// none) of its changes. A pebble Fatalf or panic during the open is an
// error wrapping errPebbleFatal.
func openDisk(opts Options, peer indexPeer, ctr *diskCounters, readOnly bool, onFault func(*diskTier, faultKind, error)) (*diskTier, error) {
	bodyLimit := opts.MaxMemoryObject
	if peer == nil {
		peer, bodyLimit = noPeer{}, -1
	}
	d := &diskTier{
		opts:      opts,
		log:       opts.Logger.With("component", "store"),
		peer:      peer,
		bodyLimit: bodyLimit,
		budget:    opts.DiskBytes - fixedOverhead(&opts),
		blockSize: dataBlockSize,
		seed:      maphash.MakeSeed(),
		ctr:       ctr,
		readOnly:  readOnly,
		onFault:   onFault,
		logs:      logLimiter{every: 10 * time.Second},
		openedAt:  time.Now(),
		index:     make(map[string]*diskEntry),
		evictCh:   make(chan struct{}, 1),
		done:      make(chan struct{}),
	}
	if opts.blockSize > 0 {
		d.blockSize = int64(opts.blockSize)
	}
	d.clock.Store(opts.now().UnixMilli())
	d.policyCap.Store(d.policyCapacity())
	d.repl = newReplacer(d.policyCap.Load(), d.budget/opts.MeanObjectSize, opts.Seed, d.index)

	bc := pebble.NewCache(opts.BlockCacheBytes)
	defer bc.Unref()
	po := &pebble.Options{
		FS:                          opts.FS,
		Cache:                       bc,
		MemTableSize:                uint64(opts.MemTableBytes),
		MemTableStopWritesThreshold: memTableStopWrites,
		MaxManifestFileSize:         opts.MemTableBytes,
		Logger:                      pebbleLogger{l: d.log, fault: d.fault},
		EventListener: &pebble.EventListener{
			BackgroundError: d.backgroundError,
			DataCorruption:  d.dataCorruption,
		},
		MaxOpenFiles: 256,
		ReadOnly:     readOnly,
	}
	if !readOnly {
		d.wal = shieldWAL(vfsOnDiskFull(opts.FS, d.onDiskFull), d.writeFailed)
		po.FS = d.wal
	}
	// Small tables: a range deletion of evicted bodies then covers whole
	// tables, which compaction drops without rewriting, and the transient
	// space of a compaction (outputs written before inputs go) stays small.
	fileSize := clamp(d.budget/64, 64<<10, 64<<20)
	for i := range po.TargetFileSizes {
		po.TargetFileSizes[i] = fileSize
	}
	po.LBaseMaxBytes = clamp(d.budget/8, 1<<20, 256<<20)
	if opts.Simulate {
		// In memory, nothing to recover: no WAL, and no CPU spent
		// compressing blocks.
		po.DisableWAL = true
		po.ApplyCompressionSettings(func() pebble.DBCompressionSettings { return pebble.DBCompressionNone })
	}
	for i := range po.Levels {
		po.Levels[i].BlockSize = int(d.blockSize)
		if i > 0 && !opts.Simulate {
			po.Levels[i].Compression = func() *block.CompressionProfile { return &tableCompression }
		}
	}
	po.EnsureDefaults()
	var db *pebble.DB
	err := guard(func() (err error) {
		db, err = pebble.Open(filepath.Join(opts.Dir, dbDirName), po)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("store: opening pebble in %s: %w", opts.Dir, err)
	}
	d.db = db
	if err := guard(d.recover); err != nil {
		d.closeDB()
		return nil, err
	}
	d.rebuildReplacer()
	d.bg, d.bgCancel = context.WithCancel(context.Background())
	if !readOnly {
		// Only now: a directory that cellar cannot open gets no ballast.
		d.ensureBallast()
	}
	d.measureSpace()
	d.wg.Add(1)
	go d.loop()
	d.kick()
	return d, nil
}

// closeDB closes pebble, recovering a panic (a faulted instance may
// fail its close).
func (d *diskTier) closeDB() error {
	d.closing.Store(true)
	return guard(d.db.Close)
}

// commit commits b, turning a pebble Fatalf (a failed WAL write) into an
// error and a fault of the instance. It counts a failure and pauses storing.
// A simulated store has no WAL to sync (Options.Simulate).
func (d *diskTier) commit(b *pebble.Batch, wo *pebble.WriteOptions) error {
	if d.opts.Simulate {
		wo = pebble.NoSync
	}
	err := guard(func() error { return b.Commit(wo) })
	if err == nil && d.wal != nil && d.wal.lost() {
		return errWALLost // writeFailed was told when the log failed
	}
	if err != nil {
		d.writeFailed(err)
		return err
	}
	d.written.Add(int64(b.Len()))
	return nil
}

// spaceLimit is what pebble's files may take: DiskBytes less the ballast,
// one chunk (a write in flight when the limit is checked) and 8% for the
// transient space of compactions (their outputs are written before their
// inputs go; TestDataDirStaysWithinBudget measures the peak).
func (d *diskTier) spaceLimit() int64 {
	room := d.opts.DiskBytes - max(d.opts.ReserveBytes, 0) - int64(d.opts.ChunkSize)
	return room - room/12
}

// overSpace reports whether pebble's files (as last measured, plus the
// commits since) pass spaceLimit.
func (d *diskTier) overSpace() bool {
	if d.opts.Simulate {
		return false // no bodies on disk (Options.Simulate)
	}
	return d.onDisk.Load()+d.written.Load() > d.spaceLimit()
}

// measureSpace measures what pebble's files take.
func (d *diskTier) measureSpace() {
	d.written.Store(0)
	d.onDisk.Store(d.diskUsage())
}

// recover removes crash leftovers (fills without a committed meta record),
// drops corrupt meta records and builds the index.
func (d *diskTier) recover() error {
	var maxFill uint64
	b := d.db.NewBatch()
	defer b.Close()
	// Committed objects.
	it, err := d.db.NewIter(&pebble.IterOptions{LowerBound: []byte{prefixMeta}, UpperBound: []byte{prefixMeta + 1}})
	if err != nil {
		return fmt.Errorf("store: recovery: %w", err)
	}
	var used int64
	lost := 0 // corrupt meta records: the chunks of their fills are found below
	for it.First(); it.Valid(); it.Next() {
		key := string(it.Key()[1:])
		v, err := it.ValueAndErr()
		if err != nil {
			it.Close()
			return fmt.Errorf("store: recovery: %w", err)
		}
		rec, tags, tagBytes, err := decodeIndexFields(v)
		if err != nil {
			d.ctr.corrupt.Add(1)
			d.log.Warn("deleting corrupt meta record", "key", key, "err", err)
			b.Delete(it.Key(), nil)
			lost++
			continue
		}
		e := &diskEntry{key: key, fill: rec.fill, size: rec.size, charge: d.charge(key, rec.size, rec.chunkSize, len(v), tags, tagBytes)}
		if !rec.keepUntil.IsZero() {
			e.keepUntil = rec.keepUntil.UnixNano()
		}
		e.access.Store(rec.committed.UnixMilli())
		e.saved = e.access.Load()
		d.index[key] = e
		used += e.charge
		maxFill = max(maxFill, rec.fill)
	}
	if err := it.Close(); err != nil {
		return fmt.Errorf("store: recovery: %w", err)
	}
	byFill := make(map[uint64]*diskEntry, len(d.index))
	for _, e := range d.index {
		byFill[e.fill] = e
	}

	// Fill records whose object is not committed: fills in progress at a
	// crash, and bodies whose meta record was lost to corruption. (Fill
	// ids are never reused within a store, so the fill alone tells.)
	it, err = d.db.NewIter(&pebble.IterOptions{LowerBound: []byte{prefixFill}, UpperBound: []byte{prefixFill + 1}})
	if err != nil {
		return fmt.Errorf("store: recovery: %w", err)
	}
	leftovers := 0
	for it.First(); it.Valid(); it.Next() {
		k := it.Key()
		if len(k) != 9 {
			b.Delete(k, nil)
			continue
		}
		fill := beUint64(k[1:])
		maxFill = max(maxFill, fill)
		if byFill[fill] != nil {
			continue
		}
		start, end := chunkSpan(fill)
		b.DeleteRange(start, end, nil)
		b.Delete(k, nil)
		leftovers++
	}
	if err := it.Close(); err != nil {
		return fmt.Errorf("store: recovery: %w", err)
	}
	if lost > 0 {
		// A fill committed in one batch has no fill record: find the
		// bodies no meta record names by their chunks, one seek per fill
		// (the lost records' fills are not known).
		n, err := d.removeUnnamedChunks(b, byFill)
		if err != nil {
			return fmt.Errorf("store: recovery: %w", err)
		}
		leftovers += n
	}

	// Access times persisted at the last Close.
	if err := d.loadAccess(b, byFill); err != nil {
		return fmt.Errorf("store: recovery: %w", err)
	}

	// The newest chunk names the highest fill id ever used.
	it, err = d.db.NewIter(&pebble.IterOptions{LowerBound: []byte{prefixChunk}, UpperBound: []byte{prefixChunk + 1}})
	if err != nil {
		return fmt.Errorf("store: recovery: %w", err)
	}
	if it.Last() && len(it.Key()) >= 9 {
		maxFill = max(maxFill, beUint64(it.Key()[1:]))
	}
	if err := it.Close(); err != nil {
		return fmt.Errorf("store: recovery: %w", err)
	}

	if !d.readOnly {
		wo := pebble.Sync
		if d.opts.Simulate {
			wo = pebble.NoSync // no WAL
		}
		if err := b.Commit(wo); err != nil {
			return fmt.Errorf("store: recovery: %w", err)
		}
		if d.wal != nil && d.wal.lost() {
			return fmt.Errorf("store: recovery: %w", errWALLost)
		}
	}
	d.nextFill.Store(maxFill)
	d.used.Store(used)
	if leftovers > 0 {
		d.log.Info("removed incomplete or orphaned fills", "count", leftovers)
	}
	return nil
}

// removeUnnamedChunks adds to b the removal of every body whose fill has
// no entry in byFill, and returns how many it found.
func (d *diskTier) removeUnnamedChunks(b *pebble.Batch, byFill map[uint64]*diskEntry) (int, error) {
	it, err := d.db.NewIter(&pebble.IterOptions{LowerBound: []byte{prefixChunk}, UpperBound: []byte{prefixChunk + 1}})
	if err != nil {
		return 0, err
	}
	n := 0
	for valid := it.First(); valid; {
		k := it.Key()
		if len(k) < 9 {
			b.Delete(k, nil)
			valid = it.Next()
			continue
		}
		fill := beUint64(k[1:])
		start, end := chunkSpan(fill)
		if byFill[fill] == nil {
			b.DeleteRange(start, end, nil)
			n++
		}
		valid = it.SeekGE(end)
	}
	return n, it.Close()
}

func beUint32(b []byte) uint32 {
	_ = b[3]
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}

func beUint64(b []byte) uint64 {
	_ = b[7]
	return uint64(b[0])<<56 | uint64(b[1])<<48 | uint64(b[2])<<40 | uint64(b[3])<<32 |
		uint64(b[4])<<24 | uint64(b[5])<<16 | uint64(b[6])<<8 | uint64(b[7])
}

// chargeOf is the budget charge of an object: body, chunk records, and
// the small records by the raw bytes of the key, the meta record and the
// tag entries (see chunkRecordOverhead).
func (d *diskTier) chargeOf(key string, rec *metaRecord, metaLen int) int64 {
	tagBytes := 0
	for _, t := range rec.tags {
		tagBytes += len(t)
	}
	return d.charge(key, rec.size, rec.chunkSize, metaLen, len(rec.tags), tagBytes)
}

func (d *diskTier) charge(key string, size, chunkSize int64, metaLen, tags, tagBytes int) int64 {
	small := int64(len(key) + metaLen + tagBytes + tags*len(key))
	c := size + max(small*smallRecordsNum/smallRecordsDen-smallRecordsFree, small/smallRecordsMinDen)
	if full := size / chunkSize; full > 0 {
		c += full * (d.chunkCharge(chunkSize) - chunkSize)
	}
	if last := size % chunkSize; last > 0 {
		c += d.chunkCharge(last) - last
	}
	if n := (size + chunkSize - 1) / chunkSize; n > 1 {
		c += (n - 1) * chunkIndexBytes
	}
	return c
}

// chunkCharge is the charge of a chunk of n bytes: its payload, its
// record and its share of a block.
func (d *diskTier) chunkCharge(n int64) int64 {
	return n + chunkRecordOverhead + blockOverhead*min(n, d.blockSize)/d.blockSize
}

func (d *diskTier) stripe(key string) *sync.Mutex {
	return &d.stripes[maphash.String(d.seed, key)%uint64(len(d.stripes))]
}

func (d *diskTier) nowMilli() int64 {
	return d.opts.now().UnixMilli()
}

// touch records a hit on e: for the replacement policy, and on the coarse
// clock of its access time, written only when it moves (a hit on a hot
// object should not bounce a cache line between cores).
func (d *diskTier) touch(e *diskEntry) {
	d.repl.hit(e)
	if now := d.clock.Load(); e.access.Load() < now {
		e.access.Store(now)
	}
}

// lookup returns the entry of key (nil if absent) with the generation and
// keep time it has now; those two fields change under d.mu.
func (d *diskTier) lookup(key string) (e *diskEntry, gen uint64, keepUntil int64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	e = d.index[key]
	if e == nil {
		return nil, 0, 0
	}
	return e, e.gen, e.keepUntil
}

// get reads key's meta record and, for small objects when a memory tier
// exists, its whole body (promoting it when promote is set).
func (d *diskTier) get(ctx context.Context, key string, promote bool) (*Object, error) {
	// A concurrent replacement can delete the body between the meta read
	// and the body read; then the new object is there to read.
	for range 3 {
		o, err := d.getOnce(ctx, key, promote)
		if !errors.Is(err, errReplaced) {
			return o, err
		}
	}
	return nil, ErrNotFound
}

var errReplaced = errors.New("store: replaced while reading")

func (d *diskTier) getOnce(ctx context.Context, key string, promote bool) (*Object, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	e, gen, keepUntil := d.lookup(key)
	if e == nil {
		return nil, ErrNotFound
	}
	now := d.opts.now()
	if keepUntil != 0 && now.UnixNano() > keepUntil {
		d.remove(key, e, pebble.NoSync)
		return nil, ErrNotFound
	}
	rec, err := e.sim.Load(), error(nil)
	if rec == nil {
		rec, err = d.readMeta(key)
	}
	if errors.Is(err, ErrCorrupt) {
		d.dropCorrupt(key, e.fill, err)
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	if rec.fill != e.fill {
		// Replaced between lookup and read: serve what we read, but
		// don't promote it on the strength of the old generation.
		promote = false
	}
	d.repl.hit(e)
	if a := now.UnixMilli(); e.access.Load() < a {
		e.access.Store(a)
	}
	o := &Object{
		Key:       key,
		Meta:      rec.meta,
		Size:      rec.size,
		Tags:      rec.tags,
		KeepUntil: rec.keepUntil,
		loc:       location{tier: d, fill: rec.fill, chunkSize: rec.chunkSize, gen: gen},
		entry:     e,
	}
	if rec.size > d.bodyLimit {
		return o, nil
	}
	var body []byte
	if d.opts.Simulate {
		body = simBody(int(rec.size)) // Options.Simulate
	} else {
		body = make([]byte, rec.size)
		var r io.ReadCloser
		if r, err = d.newReader(ctx, o, 0, rec.size); err == nil {
			_, err = io.ReadFull(r, body)
			r.Close()
		}
	}
	if err != nil {
		if errors.Is(err, ErrCorrupt) {
			return nil, ErrNotFound
		}
		if errors.Is(err, ErrNotFound) {
			return nil, errReplaced
		}
		return nil, fmt.Errorf("store: reading %q: %w", key, err)
	}
	o.keepBody(body)
	if promote {
		d.mu.Lock()
		if cur := d.index[key]; cur == e && cur.gen == gen {
			d.peer.stored(o)
		}
		d.mu.Unlock()
	}
	return o, nil
}

// readMeta reads and verifies key's meta record: ErrNotFound if absent, an
// error wrapping ErrCorrupt if it fails its checksum (the caller drops the
// object with dropCorrupt, outside the key's stripe lock).
func (d *diskTier) readMeta(key string) (*metaRecord, error) {
	v, closer, err := d.db.Get(metaKey(key))
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, ErrNotFound
	}
	if pebble.IsCorruptionError(err) {
		// pebble's own block checksum failed under this record.
		return nil, errors.Join(ErrCorrupt, err)
	}
	if err != nil {
		return nil, fmt.Errorf("store: reading %q: %w", key, err)
	}
	rec, err := decodeMeta(v)
	closer.Close()
	if err != nil {
		return nil, err
	}
	return rec, nil
}

// dropCorrupt deletes the object under key (if it still holds fill, or any
// fill when fill is 0), counts the corrupt record and logs it.
func (d *diskTier) dropCorrupt(key string, fill uint64, cause error) {
	d.ctr.corrupt.Add(1)
	d.log.Warn("deleting object with corrupt record", "key", key, "err", cause)
	e, _, _ := d.lookup(key)
	if e != nil && (fill == 0 || e.fill == fill) {
		d.remove(key, e, pebble.NoSync)
	}
}

// remove deletes the object under key if the index still holds e (nil: any
// entry). It reports whether it removed something.
func (d *diskTier) remove(key string, e *diskEntry, wo *pebble.WriteOptions) bool {
	st := d.stripe(key)
	st.Lock()
	defer st.Unlock()
	cur, _, _ := d.lookup(key)
	if cur == nil || (e != nil && cur != e) {
		return false
	}
	if d.faulted.Load() {
		return false
	}
	if d.readOnly {
		// Nothing can be deleted: forget the object until the next open.
		d.forget(key, cur)
		return true
	}
	b := d.db.NewBatch()
	defer b.Close()
	pointDeleted := false
	// The tags are in the meta record; a corrupt one leaves tag entries
	// behind, which a tag purge skips and cleans. A simulated store wrote
	// no chunks and does not read the record: it leaves the tag entries to
	// that cleaning (Options.Simulate).
	v, closer, err := []byte(nil), io.Closer(nil), error(pebble.ErrNotFound)
	if d.opts.Simulate {
		pointDeleted = true
	} else {
		v, closer, err = d.db.Get(metaKey(key))
	}
	if err == nil {
		if rec, err := decodeMeta(v); err == nil {
			for _, t := range rec.tags {
				b.Delete(tagKey(t, key), nil)
			}
			// A small body's chunks get point deletions: pebble
			// re-fragments every range deletion in the memtable for each
			// later read until a flush, so removing many objects with
			// DeleteRange (a tag purge, eviction) was quadratic.
			if n := rec.chunks(); rec.fill == cur.fill && n <= maxPointDeletes {
				for i := range n {
					b.Delete(rec.chunkKey(nil, uint32(i)), nil)
				}
				pointDeleted = true
			}
		}
		closer.Close()
	}
	b.Delete(metaKey(key), nil)
	b.Delete(fillKey(cur.fill), nil)
	if !pointDeleted {
		start, end := chunkSpan(cur.fill)
		b.DeleteRange(start, end, nil)
	}
	if err := d.commit(b, wo); err != nil {
		return false
	}
	d.forget(key, cur)
	return true
}

// forget drops key from the index (if it still holds e) and from memory.
func (d *diskTier) forget(key string, e *diskEntry) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.index[key] == e {
		delete(d.index, key)
		d.used.Add(-e.charge)
		d.repl.removed(key)
	}
	d.peer.removed(key)
}

// acquire takes a reference for a call or an object that uses db. It
// fails once the instance has faulted; the supervisor closes it when the
// last reference goes (see Store.acquire for the ordering).
func (d *diskTier) acquire() bool {
	d.refs.Add(1)
	if d.faulted.Load() {
		d.refs.Add(-1)
		return false
	}
	return true
}

func (d *diskTier) release() {
	d.refs.Add(-1)
}

// updateMeta rewrites key's meta record through fn, keeping its body.
func (d *diskTier) updateMeta(key string, fn func(*cache.Meta, *time.Time)) error {
	return d.rewriteMeta(key, 0, fn, pebble.Sync)
}

// rewriteMeta rewrites key's meta record through fn. With fill non-zero it
// changes nothing and returns ErrSuperseded unless key still holds that
// fill's object.
func (d *diskTier) rewriteMeta(key string, fill uint64, fn func(*cache.Meta, *time.Time), wo *pebble.WriteOptions) error {
	err := d.rewriteMetaLocked(key, fill, fn, wo)
	if errors.Is(err, ErrCorrupt) {
		d.dropCorrupt(key, 0, err)
		return ErrNotFound
	}
	return err
}

func (d *diskTier) rewriteMetaLocked(key string, fill uint64, fn func(*cache.Meta, *time.Time), wo *pebble.WriteOptions) error {
	st := d.stripe(key)
	st.Lock()
	defer st.Unlock()
	e, _, _ := d.lookup(key)
	if e == nil {
		return ErrNotFound
	}
	if fill != 0 && e.fill != fill {
		return fmt.Errorf("store: updating %q: %w", key, ErrSuperseded)
	}
	rec, err := d.readMeta(key)
	if err != nil {
		return err
	}
	fn(&rec.meta, &rec.keepUntil)
	v := rec.encode()
	b := d.db.NewBatch()
	defer b.Close()
	b.Set(metaKey(key), v, nil)
	if err := d.commit(b, wo); err != nil {
		return fmt.Errorf("store: updating %q: %w", key, err)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.index[key] != e {
		return nil
	}
	e.keepUntil = 0
	if !rec.keepUntil.IsZero() {
		e.keepUntil = rec.keepUntil.UnixNano()
	}
	if d.opts.Simulate {
		e.sim.Store(rec)
	}
	charge := d.chargeOf(key, rec, len(v))
	d.used.Add(charge - e.charge)
	e.charge = charge
	if d.repl.reweighed(key, charge) {
		defer d.kick()
	}
	d.gen++
	e.gen = d.gen
	d.peer.updated(key, rec.meta, rec.keepUntil, e.gen)
	return nil
}

// purge removes or invalidates the objects sel matches, then syncs the WAL
// once so that the purge survives a crash.
func (d *diskTier) purge(ctx context.Context, sels []Selector, soft bool) (int, error) {
	keys := make(map[string]struct{})
	for _, sel := range sels {
		if err := d.matching(sel, keys); err != nil {
			return 0, fmt.Errorf("store: purge: %w", err)
		}
	}
	n := 0
	for k := range keys {
		if err := ctx.Err(); err != nil {
			return n, err
		}
		if soft {
			err := d.rewriteMeta(k, 0, func(m *cache.Meta, _ *time.Time) { m.Invalid = true }, pebble.NoSync)
			if err == nil {
				n++
			} else if !errors.Is(err, ErrNotFound) {
				return n, err
			}
		} else if d.remove(k, nil, pebble.NoSync) {
			n++
		}
	}
	if n > 0 {
		b := d.db.NewBatch()
		defer b.Close()
		b.LogData(nil, nil)
		if err := d.commit(b, pebble.Sync); err != nil {
			return n, fmt.Errorf("store: purge: syncing: %w", err)
		}
	}
	return n, nil
}

// matching adds to keys every stored key that sel matches. URLs and
// prefixes are found through the sorted meta records, in time proportional
// to what they match rather than to the store's size; tags through the
// tag index, whose dangling entries (left by a corrupt meta record) it
// removes.
func (d *diskTier) matching(sel Selector, keys map[string]struct{}) error {
	if sel.All {
		d.mu.Lock()
		for k := range d.index {
			keys[k] = struct{}{}
		}
		d.mu.Unlock()
		return nil
	}
	var found []string
	if sel.URL != "" {
		found = append(found, sel.URL)
	}
	scan := func(lower, upper []byte, each func(k []byte)) error {
		it, err := d.db.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
		if err != nil {
			return err
		}
		for it.First(); it.Valid(); it.Next() {
			each(it.Key())
		}
		return it.Close()
	}
	metaPrefix := func(p string) error {
		lower := metaKey(p)
		return scan(lower, prefixEnd(lower), func(k []byte) { found = append(found, string(k[1:])) })
	}
	if sel.URL != "" {
		if err := metaPrefix(sel.URL + "\x00"); err != nil {
			return err
		}
	}
	if sel.Prefix != "" {
		if err := metaPrefix(sel.Prefix); err != nil {
			return err
		}
	}
	if sel.Pattern != nil {
		// A ban: every key in the index, matched outside the lock.
		type entry struct {
			key  string
			fill uint64
		}
		d.mu.Lock()
		all := make([]entry, 0, len(d.index))
		for k, e := range d.index {
			all = append(all, entry{k, e.fill})
		}
		d.mu.Unlock()
		for _, e := range all {
			if (sel.fillBelow == 0 || e.fill < sel.fillBelow) && banMatches(sel.Pattern, e.key) {
				found = append(found, e.key)
			}
		}
	}
	if sel.Tag != "" {
		p := tagPrefix(sel.Tag)
		var dangling [][]byte
		err := scan(p, prefixEnd(p), func(k []byte) {
			key := string(k[len(p):])
			if e, _, _ := d.lookup(key); e == nil {
				dangling = append(dangling, slices.Clone(k))
				return
			}
			found = append(found, key)
		})
		if err != nil {
			return err
		}
		if len(dangling) > 0 && !d.readOnly {
			b := d.db.NewBatch()
			for _, k := range dangling {
				b.Delete(k, nil)
			}
			d.commit(b, pebble.NoSync)
			b.Close()
		}
	}
	d.mu.Lock()
	for _, k := range found {
		if _, ok := d.index[k]; ok {
			keys[k] = struct{}{}
		}
	}
	d.mu.Unlock()
	return nil
}

// chunkReader streams a byte range of a stored body, reading only the
// chunks that overlap it. It reads through one pebble iterator, which sees
// the database as of newReader: a body that is replaced or removed while it
// streams is read to the end.
type chunkReader struct {
	ctx      context.Context
	d        *diskTier
	o        *Object
	it       *pebble.Iterator
	pos, end int64
	key      []byte
	buf      []byte // payload of chunk bufIdx; owned by it
	bufIdx   int64
	held     bool  // holds a reference on d until Close
	err      error // the instance faulted mid-stream: every Read fails
}

// newReader positions a reader at off. It fails with ErrNotFound when the
// body is already gone, so that callers can fall back before they send
// anything.
func (d *diskTier) newReader(ctx context.Context, o *Object, off, n int64) (io.ReadCloser, error) {
	if d.opts.Simulate {
		// No chunk was written; the body reads as zeros (Options.Simulate).
		return io.NopCloser(io.LimitReader(zeroReader{}, n)), nil
	}
	if !d.acquire() {
		return nil, fmt.Errorf("store: reading %q: %w", o.Key, ErrNotFound)
	}
	r := &chunkReader{ctx: ctx, d: d, o: o, pos: off, end: off + n, bufIdx: -1, held: true}
	if cs := o.loc.chunkSize; n > 0 && off/cs != (off+n-1)/cs {
		// Several chunks: one iterator gives them a consistent view. A
		// single chunk is one point read, which is consistent anyway and
		// much cheaper (the small-object hit path).
		start, end := chunkSpan(o.loc.fill)
		it, err := d.db.NewIterWithContext(ctx, &pebble.IterOptions{LowerBound: start, UpperBound: end})
		if err != nil {
			return nil, fmt.Errorf("store: reading %q: %w", o.Key, err)
		}
		r.it = it
	}
	if n > 0 {
		if err := r.load(off / o.loc.chunkSize); err != nil {
			r.Close()
			return nil, err
		}
	}
	return r, nil
}

// zeroReader reads zeros: the bodies of a simulated store.
type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

func (r *chunkReader) Read(p []byte) (int, error) {
	if r.err != nil {
		return 0, r.err
	}
	if r.pos >= r.end {
		return 0, io.EOF
	}
	if err := r.ctx.Err(); err != nil {
		return 0, err
	}
	if r.d.faulted.Load() {
		// Let the supervisor close the instance: this reader is done.
		r.Close()
		r.err = fmt.Errorf("store: reading %q: the disk tier failed: %w", r.o.Key, ErrUnavailable)
		return 0, r.err
	}
	cs := r.o.loc.chunkSize
	idx := r.pos / cs
	if idx != r.bufIdx {
		if err := r.load(idx); err != nil {
			return 0, err
		}
	}
	n := copy(p, r.buf[r.pos-idx*cs:min(int64(len(r.buf)), r.end-idx*cs)])
	r.pos += int64(n)
	return n, nil
}

func (r *chunkReader) load(idx int64) error {
	cs := r.o.loc.chunkSize
	want := min(cs, r.o.Size-idx*cs)
	r.key = chunkKey(r.key, r.o.loc.fill, uint32(idx))
	r.buf, r.bufIdx = nil, -1
	if r.it == nil {
		return r.loadOne(idx, want)
	}
	if !r.it.SeekGE(r.key) || !r.isChunk(r.it.Key(), idx) {
		err := r.it.Error()
		if err == nil {
			return fmt.Errorf("store: chunk %d of %q is gone (object replaced or removed): %w", idx, r.o.Key, ErrNotFound)
		}
		if pebble.IsCorruptionError(err) {
			err = errors.Join(ErrCorrupt, err)
			r.d.dropCorrupt(r.o.Key, r.o.loc.fill, err)
		}
		return fmt.Errorf("store: chunk %d of %q: %w", idx, r.o.Key, err)
	}
	v, err := r.it.ValueAndErr()
	if err != nil {
		if pebble.IsCorruptionError(err) {
			err = errors.Join(ErrCorrupt, err)
			r.d.dropCorrupt(r.o.Key, r.o.loc.fill, err)
		}
		return fmt.Errorf("store: chunk %d of %q: %w", idx, r.o.Key, err)
	}
	p, err := unseal(v)
	if err == nil && int64(len(p)) != want {
		err = fmt.Errorf("chunk of %d bytes, want %d: %w", len(p), want, ErrCorrupt)
	}
	if err != nil {
		r.d.dropCorrupt(r.o.Key, r.o.loc.fill, err)
		return fmt.Errorf("store: chunk %d of %q: %w", idx, r.o.Key, err)
	}
	r.buf, r.bufIdx = p, idx
	return nil
}

// isChunk reports whether k is the key of chunk idx (the first chunk of
// an object of meta record version 1 has an index in its key).
func (r *chunkReader) isChunk(k []byte, idx int64) bool {
	if bytes.Equal(k, r.key) {
		return true
	}
	return idx == 0 && len(k) == len(r.key)+4 && bytes.HasPrefix(k, r.key) && beUint32(k[len(r.key):]) == 0
}

// loadOne reads chunk idx with a point read (readers of one chunk).
func (r *chunkReader) loadOne(idx, want int64) error {
	v, closer, err := r.d.db.Get(r.key)
	if errors.Is(err, pebble.ErrNotFound) && idx == 0 {
		// An object of meta record version 1.
		r.key = indexedFirstChunkKey(r.key, r.o.loc.fill)
		v, closer, err = r.d.db.Get(r.key)
	}
	if errors.Is(err, pebble.ErrNotFound) {
		return fmt.Errorf("store: chunk %d of %q is gone (object replaced or removed): %w", idx, r.o.Key, ErrNotFound)
	}
	if pebble.IsCorruptionError(err) {
		err = errors.Join(ErrCorrupt, err)
		r.d.dropCorrupt(r.o.Key, r.o.loc.fill, err)
		return fmt.Errorf("store: chunk %d of %q: %w", idx, r.o.Key, err)
	}
	if err != nil {
		return fmt.Errorf("store: reading chunk %d of %q: %w", idx, r.o.Key, err)
	}
	p, err := unseal(v)
	if err == nil && int64(len(p)) != want {
		err = fmt.Errorf("chunk of %d bytes, want %d: %w", len(p), want, ErrCorrupt)
	}
	if err != nil {
		closer.Close()
		r.d.dropCorrupt(r.o.Key, r.o.loc.fill, err)
		return fmt.Errorf("store: chunk %d of %q: %w", idx, r.o.Key, err)
	}
	r.buf, r.bufIdx = append(r.buf[:0], p...), idx
	closer.Close()
	return nil
}

func (r *chunkReader) Close() error {
	var err error
	if r.it != nil {
		err = r.it.Close()
	}
	r.it, r.buf, r.pos = nil, nil, r.end
	if r.held {
		r.held = false
		r.d.release()
	}
	return err
}

// kick wakes the background loop when the replacement policy evicted
// objects, fills in progress grew so that the policy must shrink, or the
// budget's start mark is passed.
func (d *diskTier) kick() {
	if d.repl.pending.Load() || d.policyCap.Load() > d.policyCapacity() ||
		float64(d.charged()) > d.opts.EvictStart*float64(d.budget) {
		select {
		case d.evictCh <- struct{}{}:
		default:
		}
	}
}

// loop is the background goroutine: it advances the coarse clock, evicts
// down to the target when woken, and sweeps a sample for expired objects.
// It exits when done is closed.
func (d *diskTier) loop() {
	defer d.wg.Done()
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-d.done:
			return
		case <-t.C:
			d.clock.Store(d.nowMilli())
			d.sweepExpired()
			d.measureSpace()
		case <-d.evictCh:
		}
		d.evict()
		if d.overSpace() {
			d.measureSpace()
			d.makeSpace()
		}
	}
}

// makeSpace frees disk space when pebble's files pass spaceLimit (storing
// is paused meanwhile, see checkStoring): it evicts down to EvictTarget
// and compacts what was evicted, then measures again.
func (d *diskTier) makeSpace() {
	if d.readOnly || d.faulted.Load() || !d.overSpace() {
		return
	}
	d.evictTo(int64(d.opts.EvictTarget * float64(d.budget)))
	d.reclaimSpan(true)
	d.measureSpace()
}

// evict is the background loop's eviction: evictObjects, then reclaim. In
// a simulated store the commits evict instead (Writer.Commit), so that the
// loop's timing does not move what is resident.
func (d *diskTier) evict() {
	if d.readOnly || d.faulted.Load() || d.opts.Simulate {
		return
	}
	d.evictObjects()
	d.reclaim()
}

// evictObjects fits the replacement policy to the fills in progress,
// removes the objects it evicted and, while the charge is past EvictStart
// (fills in progress beyond the reserve's bound), the policy's next
// victims down to EvictTarget, expired objects first. The background loop
// runs it when kicked, and a commit that finds the charge past the whole
// budget runs it itself, so that fills never outrun eviction.
func (d *diskTier) evictObjects() {
	d.mu.Lock()
	d.resizePolicyLocked()
	d.mu.Unlock()
	d.removeVictims()
	if d.charged() > int64(d.opts.EvictStart*float64(d.budget)) {
		d.sweepExpired()
		d.evictTo(int64(d.opts.EvictTarget * float64(d.budget)))
	}
}

// removeVictims removes the objects the replacement policy evicted.
func (d *diskTier) removeVictims() {
	for _, v := range d.repl.takeVictims() {
		if d.remove(v.key, v.e, pebble.NoSync) {
			d.ctr.evictions.Add(1)
			d.evictedFills(v.e.fill)
		}
		d.repl.removedVictim(v)
	}
}

// maxFillShare bounds the reserve for fills in progress: they shrink the
// replacement policy by at most a maxFillShare-th of the budget. More
// than that in flight passes EvictStart instead (see evictObjects).
// maxSpaceShare bounds the reserve for deletions not yet compacted (the
// 3% the policy kept free at all times before).
const (
	maxFillShare  = 4
	maxSpaceShare = 32
)

// policyCapacity is what committed objects may fill: EvictTarget of the
// budget less a reserve for what is in flight:
//   - the bytes fills in progress have written (at most a maxFillShare-th
//     of the budget): each chunk a fill writes makes the policy evict as
//     much, and the commit gives the room back to the object;
//   - how far pebble's files (as last measured) come within a 128th of
//     the budget of spaceLimit (at most a maxSpaceShare-th of the
//     budget): when writes outrun the compactions that reclaim evicted
//     bodies, the objects make room for the deletions not yet compacted,
//     so that the space gate does not close on every fill; once
//     compactions catch up the room goes back to the objects.
//
// With nothing in flight the policy holds EvictTarget of the budget. The
// rest of the budget (1 - EvictTarget) absorbs metadata growth and the
// loop's lag.
func (d *diskTier) policyCapacity() int64 {
	fills := min(d.filling.Load(), d.budget/maxFillShare)
	return int64(d.opts.EvictTarget*float64(d.budget)) - fills - d.spaceReserve()
}

// spaceReserve is the part of the reserve for deletions not yet compacted
// (see policyCapacity).
func (d *diskTier) spaceReserve() int64 {
	return min(max(0, d.onDisk.Load()-(d.spaceLimit()-d.budget/128)), d.budget/maxSpaceShare)
}

// spaceMark is where pebble's files start to take room from the objects
// and evicted bodies are compacted (reclaimDue): a thirty-second of the
// budget below spaceLimit, where storing pauses.
func (d *diskTier) spaceMark() int64 {
	return d.spaceLimit() - d.budget/32
}

// resizePolicyLocked sets the replacement policy's capacity to
// policyCapacity if it moved. Call it with mu held.
func (d *diskTier) resizePolicyLocked() {
	if c := d.policyCapacity(); d.policyCap.Swap(c) != c {
		d.repl.resize(c)
	}
}

// charged is the bytes charged less those of the policy's victims not yet
// removed: what the budget's marks are compared with. Commits that go on
// while the loop removes victims queue more of them; counting those as
// resident would evict the policy's next objects (the ones it keeps) for
// nothing.
func (d *diskTier) charged() int64 {
	return d.used.Load() - d.repl.pendingBytes.Load()
}

// evictTo evicts the replacement policy's next victims until the bytes
// charged are at most target, removing the victims it named first.
func (d *diskTier) evictTo(target int64) {
	for d.charged() > target {
		select {
		case <-d.done:
			return
		default:
		}
		if d.repl.pending.Load() {
			d.removeVictims()
			continue
		}
		k, ok := d.repl.next()
		if !ok {
			return
		}
		if e, _, _ := d.lookup(k); e != nil && d.remove(k, e, pebble.NoSync) {
			d.ctr.evictions.Add(1)
			d.evictedFills(e.fill)
		}
	}
}

// evictedFills widens the span of chunk keys deleted since the last
// reclaim.
func (d *diskTier) evictedFills(fill uint64) {
	d.reclaimMu.Lock()
	defer d.reclaimMu.Unlock()
	if d.reclaimLo == 0 || fill < d.reclaimLo {
		d.reclaimLo = fill
	}
	d.reclaimHi = max(d.reclaimHi, fill)
}

// reclaim compacts the chunk span of evicted bodies when pebble's files
// (WAL, tables and not yet compacted deletions) exceed the charge of what
// is stored by more than a twentieth of the budget (with the charge near
// EvictTarget, a fixed mark would compact after every eviction).
// Range deletions only free space once compaction drops the tables they
// cover. Usually pebble's own delete-only compactions do that in time (chunk
// keys are ordered by fill id, so evicted old bodies tend to cover whole
// tables); this manual compaction is the backstop that keeps the directory
// within its budget when they lag, at the price of rewriting live tables in
// the span.
func (d *diskTier) reclaim() {
	d.reclaimSpan(false)
}

// reclaimSpan compacts the chunk span of evicted bodies if there is one,
// and (unless force) pebble's files exceed the charge by a twentieth of
// the budget.
func (d *diskTier) reclaimSpan(force bool) {
	d.reclaimMu.Lock()
	lo, hi := d.reclaimLo, d.reclaimHi
	d.reclaimMu.Unlock()
	if lo == 0 || (!force && !d.reclaimDue()) {
		return
	}
	// In pieces: a compaction writes its outputs before its inputs go,
	// and the span holds live bodies too; a piece at a time keeps that
	// transient space small.
	const pieces = 8
	step := max(1, (hi-lo+1)/pieces)
	for from := lo; from <= hi; from += step {
		start, _ := chunkSpan(from)
		_, end := chunkSpan(min(hi, from+step-1))
		if err := guard(func() error { return d.db.Compact(d.bg, start, end, false) }); err != nil {
			if d.bg.Err() == nil {
				d.log.Warn("compacting evicted bodies", "err", err.Error())
			}
			return
		}
	}
	d.reclaimMu.Lock()
	if d.reclaimLo == lo {
		d.reclaimLo = 0
	}
	if d.reclaimHi == hi {
		d.reclaimHi = 0
	}
	d.reclaimMu.Unlock()
}

// reclaimDue reports whether pebble's files exceed the charge by a
// twentieth of the budget, or pass spaceMark: with the policy holding
// nearly the whole budget, the space gate would otherwise close on the
// deletions not yet compacted.
func (d *diskTier) reclaimDue() bool {
	u := d.diskUsage()
	return u-d.used.Load() > d.budget/20 || u > d.spaceMark()
}

func (d *diskTier) sweepExpired() {
	now := d.opts.now().UnixNano()
	var victims []string
	d.mu.Lock()
	i := 0
	for k, e := range d.index {
		if e.keepUntil != 0 && e.keepUntil < now {
			victims = append(victims, k)
		}
		if i++; i == expirySample {
			break
		}
	}
	d.mu.Unlock()
	for _, k := range victims {
		if e, _, ku := d.lookup(k); e != nil && ku != 0 && ku < now {
			d.remove(k, e, pebble.NoSync)
		}
	}
}

// close stops the background loop, persists access times (unless the
// instance is read-only or faulted) and closes pebble. Nothing may use the
// instance any more (refs is zero).
func (d *diskTier) close() error {
	close(d.done)
	d.bgCancel()
	d.wg.Wait()
	var err error
	if !d.readOnly && !d.faulted.Load() {
		err = d.saveAccess()
	}
	err = errors.Join(err, d.closeDB())
	if err != nil {
		return fmt.Errorf("store: closing: %w", err)
	}
	return nil
}

func (d *diskTier) stats() Stats {
	d.mu.Lock()
	n := len(d.index)
	d.mu.Unlock()
	return Stats{
		DiskBytes:        d.used.Load(),
		DiskObjects:      int64(n),
		DiskObjectBudget: d.budget,
		Corrupt:          d.ctr.corrupt.Load(),
		Evictions:        d.ctr.evictions.Load(),
		WriteErrors:      d.ctr.writeErrors.Load(),
	}
}

// diskUsage returns the bytes pebble's files take (WAL, tables, obsolete).
func (d *diskTier) diskUsage() int64 {
	return int64(d.db.Metrics().DiskSpaceUsage())
}
