package store

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync/atomic"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// Why pebble's write-ahead log files are shielded.
//
// When pebble rotates its WAL (a memtable filled, or a flush was asked
// for) it closes the old log and creates the new one with DB.mu released,
// and it panics if either fails. Its callers hold DB.mu through a deferred
// Unlock, so the unwinding unlocks a mutex that is not locked: a fatal
// error that no recover stops, and the process dies. A full disk makes it
// happen: the log writer keeps the first write or sync error and returns
// it from Close.
//
// So the WAL's failures never reach pebble. The first failed write, sync,
// close or create of a log file makes the shield dead: it reports the
// error to onFail (which faults the instance: the store stops using it and
// opens the tier again) and from then on every log file operation of this
// instance succeeds without touching the disk. Pebble may then acknowledge
// a commit whose log record was not written; diskTier.commit checks lost
// after every commit and reports such a commit failed, so nothing is ever
// reported durable that is not. On reopening, pebble reads the last log as
// one whose tail was torn.

// errWALLost is the error of a commit made after the WAL failed.
var errWALLost = errors.New("store: the write-ahead log failed; the commit is not durable")

// walShield is a vfs.FS whose WAL files never fail pebble's rotation.
type walShield struct {
	vfs.FS
	onFail func(error)
	dead   atomic.Bool
}

func shieldWAL(fs vfs.FS, onFail func(error)) *walShield {
	return &walShield{FS: fs, onFail: onFail}
}

// lost reports whether a log write failed: a commit acknowledged since may
// not be durable.
func (s *walShield) lost() bool { return s.dead.Load() }

// fail makes the shield dead; the first failure is reported.
func (s *walShield) fail(what, name string, err error) {
	if !s.dead.Swap(true) {
		s.onFail(fmt.Errorf("%w: %s the write-ahead log %s: %w", errPebbleFatal, what, filepath.Base(name), err))
	}
}

// isWAL reports whether name is one of pebble's write-ahead logs
// (NNNNNN.log in the database directory).
func isWAL(name string) bool {
	return strings.HasSuffix(filepath.Base(name), ".log")
}

func (s *walShield) Create(name string, c vfs.DiskWriteCategory) (vfs.File, error) {
	if !isWAL(name) {
		return s.FS.Create(name, c)
	}
	if s.dead.Load() {
		return discardWAL(name)
	}
	f, err := s.FS.Create(name, c)
	return s.wrap(name, f, err)
}

func (s *walShield) ReuseForWrite(old, name string, c vfs.DiskWriteCategory) (vfs.File, error) {
	if !isWAL(name) {
		return s.FS.ReuseForWrite(old, name, c)
	}
	if s.dead.Load() {
		return discardWAL(name)
	}
	f, err := s.FS.ReuseForWrite(old, name, c)
	return s.wrap(name, f, err)
}

func (s *walShield) wrap(name string, f vfs.File, err error) (vfs.File, error) {
	if err != nil {
		s.fail("creating", name, err)
		return discardWAL(name)
	}
	return &shieldedWAL{File: f, name: name, s: s}, nil
}

// discardWAL is the log file pebble gets once the shield is dead: in
// memory, never on the disk.
func discardWAL(name string) (vfs.File, error) {
	return vfs.NewMem().Create(filepath.Base(name), vfs.WriteCategoryUnspecified)
}

// shieldedWAL is a log file on the disk whose failures make its shield
// dead instead of reaching pebble.
type shieldedWAL struct {
	vfs.File
	name string
	s    *walShield
}

func (f *shieldedWAL) Write(p []byte) (int, error) {
	if f.s.dead.Load() {
		return len(p), nil
	}
	if _, err := f.File.Write(p); err != nil {
		f.s.fail("writing", f.name, err)
	}
	return len(p), nil
}

func (f *shieldedWAL) WriteAt(p []byte, off int64) (int, error) {
	if f.s.dead.Load() {
		return len(p), nil
	}
	if _, err := f.File.WriteAt(p, off); err != nil {
		f.s.fail("writing", f.name, err)
	}
	return len(p), nil
}

func (f *shieldedWAL) Sync() error {
	if !f.s.dead.Load() {
		if err := f.File.Sync(); err != nil {
			f.s.fail("syncing", f.name, err)
		}
	}
	return nil
}

func (f *shieldedWAL) SyncData() error {
	if !f.s.dead.Load() {
		if err := f.File.SyncData(); err != nil {
			f.s.fail("syncing", f.name, err)
		}
	}
	return nil
}

func (f *shieldedWAL) SyncTo(length int64) (bool, error) {
	if f.s.dead.Load() {
		return true, nil
	}
	full, err := f.File.SyncTo(length)
	if err != nil {
		f.s.fail("syncing", f.name, err)
		return true, nil
	}
	return full, nil
}

// Preallocate is advisory: a log that cannot be preallocated fails at its
// next write if the disk is really full.
func (f *shieldedWAL) Preallocate(off, length int64) error {
	if !f.s.dead.Load() {
		f.File.Preallocate(off, length)
	}
	return nil
}

func (f *shieldedWAL) Close() error {
	err := f.File.Close()
	if err != nil && !f.s.dead.Load() {
		f.s.fail("closing", f.name, err)
	}
	return nil
}
