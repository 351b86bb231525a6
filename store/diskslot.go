package store

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// The disk tier's supervisor. A Store never depends on the state of its
// disk to open or to serve: it holds the current pebble instance (a
// diskTier) in a slot that is empty while the tier is offline. Then Get
// misses, Create and UpdateMeta return ErrUnavailable, and Purge purges
// the memory tier and remembers the selectors for the disk.
//
// At Open and after each fault, the supervisor opens the tier again:
//   - the data directory opens: it serves it (read-only while the disk has
//     no room for pebble's writes, re-opened read-write once it does);
//   - pebble cannot open it (corrupt, truncated or missing files, a panic):
//     it is moved to Dir/quarantine/<time>/ (the one quarantined copy kept)
//     and the tier starts empty;
//   - the open fails for want of space, or the empty tier cannot be
//     created: the tier stays offline and the supervisor tries again with
//     back-off, up to RetryInterval between tries.
// A fault (diskguard.go) retires the instance: it takes no new work, and
// once the calls, readers and fills using it are done, it is closed and
// the tier is opened again as above (a corrupt table quarantines the
// directory first). The memory tier is cleared when a new instance comes
// in, so that every object in memory is one the disk index knows of
// (purges find objects through the disk index).

// Disk tier modes, for DiskState.Mode.
const (
	// DiskOnline: serving and storing.
	DiskOnline = "online"
	// DiskPaused: serving what is stored; storing paused after a full
	// disk or a write error, resumed after RetryInterval once there is room.
	DiskPaused = "paused"
	// DiskReadOnly: the disk was full at open: serving what is stored,
	// storing nothing until there is room.
	DiskReadOnly = "read-only"
	// DiskOffline: the tier failed or could not be opened: serving from
	// memory and the origin while the supervisor opens it again.
	DiskOffline = "offline"
)

// DiskState is the disk tier's condition, for health checks and metrics.
type DiskState struct {
	// Mode is DiskOnline, DiskPaused, DiskReadOnly or DiskOffline.
	Mode string
	// Reason is why the tier is not online, or the last fault.
	Reason string
	// Since is when the tier entered Mode (DiskPaused: when it opened).
	Since time.Time
	// Faults counts the faults since Open (each retires a pebble instance);
	// Quarantines the data directories moved aside.
	Faults, Quarantines int64
	// Quarantined is the directory the last quarantine moved pebble's
	// files to; "" if none.
	Quarantined string
}

// quarantineDirName is the directory, inside the data directory, holding
// the last pebble directory that could not be opened.
const quarantineDirName = "quarantine"

type diskSlot struct {
	cur  atomic.Pointer[diskTier] // nil while offline
	kick chan struct{}            // wakes the supervisor; buffered 1
	done chan struct{}
	wg   sync.WaitGroup

	faults, quarantines atomic.Int64

	mu          sync.Mutex // protects the fields below
	mode        string
	reason      string
	since       time.Time
	quarantined string
	pending     []pendingPurge // purges made while offline
	retiring    *diskTier      // the faulted instance being drained, if any
}

// pendingPurge is a purge the disk tier missed while offline.
type pendingPurge struct {
	sels []Selector
	soft bool
}

// acquire returns the current instance with a reference taken, or nil
// while the tier is offline. The caller releases it.
//
// The reference is taken before faulted is read, and the supervisor reads
// refs only after setting faulted: so either this call sees the fault and
// backs off, or the supervisor sees the reference and waits for it.
func (s *Store) acquire() *diskTier {
	d := s.slot.cur.Load()
	if d == nil || !d.acquire() {
		return nil
	}
	return d
}

// onFault is every instance's fault callback. It runs on any goroutine,
// pebble's included, so it only wakes the supervisor.
func (s *Store) onFault(d *diskTier, kind faultKind, err error) {
	s.slot.faults.Add(1)
	s.slot.mu.Lock()
	s.slot.reason = kind.String() + ": " + err.Error()
	s.slot.mu.Unlock()
	s.wake()
}

func (s *Store) wake() {
	select {
	case s.slot.kick <- struct{}{}:
	default:
	}
}

// setMode records the tier's mode and why.
func (s *Store) setMode(mode, reason string) {
	s.slot.mu.Lock()
	defer s.slot.mu.Unlock()
	if s.slot.mode != mode {
		s.slot.since = s.opts.now()
	}
	s.slot.mode = mode
	if reason != "" || mode == DiskOnline {
		s.slot.reason = reason
	}
}

// DiskState reports the disk tier's condition.
func (s *Store) DiskState() DiskState {
	s.slot.mu.Lock()
	st := DiskState{Mode: s.slot.mode, Reason: s.slot.reason, Since: s.slot.since, Quarantined: s.slot.quarantined}
	s.slot.mu.Unlock()
	st.Faults, st.Quarantines = s.slot.faults.Load(), s.slot.quarantines.Load()
	if d := s.slot.cur.Load(); st.Mode == DiskOnline && d != nil && d.paused.Load() {
		st.Mode = DiskPaused
		if st.Reason == "" {
			st.Reason = "storing paused after a full disk or a write error"
		}
	}
	return st
}

// startTier opens the tier at Open, then starts the supervisor. It never
// fails: a tier that does not open is offline until the supervisor
// brings it up.
func (s *Store) startTier() {
	s.slot.kick = make(chan struct{}, 1)
	s.slot.done = make(chan struct{})
	if du, err := s.opts.FS.GetDiskUsage(s.opts.Dir); err == nil && du.TotalBytes < uint64(s.opts.DiskBytes) {
		s.opts.Logger.Warn("the file system of the data directory is smaller than the disk budget: it will fill up before the budget does (storing then pauses)",
			"dir", s.opts.Dir, "size", du.TotalBytes, "disk_budget", s.opts.DiskBytes)
	}
	s.bringUp(faultIO)
	s.slot.wg.Add(1)
	go s.supervise()
}

// supervise retires faulted instances and brings the tier back, with
// back-off between failed tries, until the Store closes.
func (s *Store) supervise() {
	defer s.slot.wg.Done()
	minWait := min(time.Second, s.opts.RetryInterval)
	wait := minWait
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	for {
		d := s.slot.cur.Load()
		if d != nil && d.faulted.Load() {
			kind := d.faultKind()
			if !s.retire(d) {
				return // closing
			}
			if time.Since(d.openedAt) < time.Minute {
				// It failed soon after it came up: back off, so that a
				// disk that fails every time is not opened in a loop.
				select {
				case <-s.slot.done:
					return
				case <-time.After(wait):
				}
				wait = min(2*wait, s.opts.RetryInterval)
			} else {
				wait = minWait
			}
			s.bringUp(kind)
			continue
		}
		t.Stop()
		if d == nil || d.readOnly {
			t.Reset(wait)
		}
		select {
		case <-s.slot.done:
			return
		case <-s.slot.kick:
		case <-t.C:
			if d == nil {
				s.bringUp(faultIO)
			} else if s.hasRoom() {
				// Room again: the read-only instance makes way for a
				// read-write one.
				d.faulted.Store(true)
				if !s.retire(d) {
					return
				}
				s.bringUp(faultIO)
			}
			if d := s.slot.cur.Load(); d == nil || d.readOnly {
				wait = min(2*wait, s.opts.RetryInterval)
			}
		}
	}
}

// retire takes the faulted instance d out of the slot, waits until
// nothing uses it and closes it. It returns false if the Store closed
// first (Close then closes d).
func (s *Store) retire(d *diskTier) bool {
	s.slot.cur.CompareAndSwap(d, nil)
	s.setMode(DiskOffline, "")
	s.slot.mu.Lock()
	s.slot.retiring = d
	s.slot.mu.Unlock()
	logged := time.Now()
	for wait := time.Millisecond; d.refs.Load() > 0; wait = min(2*wait, 100*time.Millisecond) {
		select {
		case <-s.slot.done:
			return false
		case <-time.After(wait):
		}
		if time.Since(logged) > 30*time.Second {
			logged = time.Now()
			d.log.Warn("disk tier: waiting for readers and fills of the failed instance to finish", "refs", d.refs.Load())
		}
	}
	if err := d.close(); err != nil {
		d.log.Warn("closing the failed disk tier instance", "err", err)
	}
	s.slot.mu.Lock()
	s.slot.retiring = nil
	s.slot.mu.Unlock()
	return true
}

// bringUp opens the tier (after a fault of kind) and puts it in the slot,
// or leaves the tier offline for the next try.
func (s *Store) bringUp(after faultKind) {
	log := s.opts.Logger.With("component", "store")
	if after == faultCorrupt {
		s.quarantine("pebble found a corrupt file while compacting")
	}
	d, err := s.openTier()
	if err == nil {
		err = s.applyPending(d)
		if err != nil {
			d.faulted.Store(true)
			d.close()
		}
	}
	if err != nil {
		s.setMode(DiskOffline, err.Error())
		log.Error("disk tier offline: serving from memory and the origin; will try again", "err", err.Error(), "retry_max", s.opts.RetryInterval)
		return
	}
	if err := s.adoptBans(d); err != nil {
		d.faulted.Store(true)
		d.close()
		s.setMode(DiskOffline, err.Error())
		log.Error("disk tier offline: serving from memory and the origin; will try again", "err", err.Error(), "retry_max", s.opts.RetryInterval)
		return
	}
	if s.mem != nil {
		s.mem.clear()
	}
	s.slot.cur.Store(d)
	if s.sweepCh != nil {
		s.wakeSweeper() // pending bans (bans.go)
	}
	if d.readOnly {
		s.setMode(DiskReadOnly, "the disk is full: serving what is stored, storing nothing")
		log.Warn("disk tier read-only: the disk is full; serving what is stored, storing paused until there is room", "dir", s.opts.Dir)
	} else {
		s.setMode(DiskOnline, "")
	}
}

// openTier opens the data directory: read-only while the disk has no
// room, and quarantining it when pebble cannot open it.
func (s *Store) openTier() (*diskTier, error) {
	ro := !s.hasRoom()
	d, err := s.openInstance(ro)
	if err == nil {
		return d, nil
	}
	if !ro && classify(err) == faultFull {
		// Replaying the WAL met a full disk: serve what is stored.
		if d, err := s.openInstance(true); err == nil {
			return d, nil
		}
	}
	if classify(err) == faultFull || isLockError(err) || (ro && errors.Is(err, pebble.ErrDBDoesNotExist)) {
		return nil, err
	}
	s.quarantine(err.Error())
	return s.openInstance(ro)
}

// openInstance opens one pebble instance; a fault during the open fails it.
func (s *Store) openInstance(readOnly bool) (*diskTier, error) {
	var peer indexPeer
	if s.mem != nil {
		peer = s.mem
	}
	d, err := openDisk(s.opts, peer, &s.ctr, readOnly, s.onFault)
	if err != nil {
		return nil, err
	}
	if d.faulted.Load() {
		d.close()
		return nil, fmt.Errorf("store: the disk tier failed as it opened: %s", s.DiskState().Reason)
	}
	return d, nil
}

func isLockError(err error) bool {
	return strings.Contains(err.Error(), "lock held")
}

// hasRoom reports whether the disk has room for pebble to open read-write
// and make progress: two memtables' worth of WAL and flushed tables and a
// MiB for its MANIFEST and OPTIONS, or 4 MiB if that is less. It is not
// the budget: a disk smaller than DiskBytes is used as far as it goes, and
// when it fills up the tier goes read-only until there is room again.
func (s *Store) hasRoom() bool {
	du, err := s.opts.FS.GetDiskUsage(s.opts.Dir)
	if err != nil {
		return true
	}
	return du.AvailBytes >= uint64(min(2*s.opts.MemTableBytes+1<<20, 4<<20))
}

// quarantine moves pebble's directory to Dir/quarantine/<time>/,
// replacing the copy quarantined before.
func (s *Store) quarantine(why string) {
	fs := s.opts.FS
	log := s.opts.Logger.With("component", "store")
	src := filepath.Join(s.opts.Dir, dbDirName)
	if _, err := fs.Stat(src); err != nil {
		return
	}
	qdir := filepath.Join(s.opts.Dir, quarantineDirName)
	if err := fs.RemoveAll(qdir); err != nil {
		log.Warn("removing the previous quarantined directory", "err", err)
	}
	dst := filepath.Join(qdir, s.opts.now().UTC().Format("20060102T150405.000Z"))
	err := fs.MkdirAll(dst, 0o700)
	if err == nil {
		err = fs.Rename(src, filepath.Join(dst, dbDirName))
	}
	if err != nil {
		// Cannot move it: delete it, it is only a cache.
		log.Warn("cannot quarantine the data directory; deleting it", "err", err)
		if err := fs.RemoveAll(src); err != nil {
			log.Error("cannot delete the data directory either", "dir", src, "err", err)
			return
		}
		dst = ""
	}
	s.slot.quarantines.Add(1)
	s.slot.mu.Lock()
	s.slot.quarantined = dst
	s.slot.mu.Unlock()
	log.Error("the disk tier could not be opened: moved its files aside and starting it empty", "why", why, "quarantine", dst)
}

// purgeUnwritable purges while the disk tier cannot write (offline, or
// read-only: then d is the instance, else nil): it clears the memory tier,
// hides what d holds, and keeps the selectors for the next read-write
// instance. It counts the objects d held.
// The purge is not durable until then, which the error says.
func (s *Store) purgeUnwritable(d *diskTier, sels []Selector, soft bool) (int, error) {
	seen := make(map[string]struct{})
	if d != nil {
		for _, sel := range sels {
			if err := d.matching(sel, seen); err != nil {
				return 0, fmt.Errorf("store: purge: %w", err)
			}
		}
		for k := range seen {
			d.remove(k, nil, nil)
		}
	}
	if s.mem != nil {
		// Whatever the memory tier holds may match: it starts over.
		s.mem.clear()
	}
	s.slot.mu.Lock()
	s.slot.pending = append(s.slot.pending, pendingPurge{sels: sels, soft: soft})
	s.slot.mu.Unlock()
	return len(seen), fmt.Errorf("store: purge: the disk tier cannot write (%s): purged from memory, the disk follows when it is back (not durable until then): %w", s.DiskState().Mode, ErrUnavailable)
}

// applyPending applies the purges made while the tier was offline to the
// instance d before it serves.
func (s *Store) applyPending(d *diskTier) error {
	s.slot.mu.Lock()
	pending := s.slot.pending
	s.slot.pending = nil
	s.slot.mu.Unlock()
	if d.readOnly {
		// Nothing can be deleted yet: hide what the purges match, and
		// keep them for the next read-write instance.
		s.slot.mu.Lock()
		s.slot.pending = append(pending, s.slot.pending...)
		s.slot.mu.Unlock()
		keys := make(map[string]struct{})
		for _, p := range pending {
			for _, sel := range p.sels {
				if err := d.matching(sel, keys); err != nil {
					return err
				}
			}
		}
		for k := range keys {
			d.remove(k, nil, nil)
		}
		return nil
	}
	for _, p := range pending {
		if _, err := d.purge(context.Background(), p.sels, p.soft); err != nil {
			return fmt.Errorf("store: applying a purge made while the disk tier was offline: %w", err)
		}
	}
	return nil
}

// closeTier stops the supervisor and closes the current instance (and one
// being retired).
func (s *Store) closeTier() error {
	close(s.slot.done)
	s.slot.wg.Wait()
	var err error
	s.slot.mu.Lock()
	retiring := s.slot.retiring
	s.slot.mu.Unlock()
	if retiring != nil {
		retiring.close()
	}
	if d := s.slot.cur.Swap(nil); d != nil {
		err = d.close()
	}
	return err
}

// cur returns the current instance, nil while offline (tests).
func (s *Store) cur() *diskTier { return s.slot.cur.Load() }
