package store

import (
	"errors"
	"fmt"
	"path/filepath"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// Full disks. Pebble treats a failed WAL write as fatal, so cellar keeps a
// ballast file of ReserveBytes in Dir. When a write meets ENOSPC, pebble's
// vfs.OnDiskFull wrapper calls onDiskFull, which deletes the ballast and
// pauses storing; pebble then retries the write into the freed space.
// Storing stays paused (Create and Write fail with ErrUnavailable) until
// RetryInterval has passed and the disk has room for the ballast again.
// Errors that pebble returns on a write pause storing the same way.

const ballastName = "reserve.ballast"

func vfsOnDiskFull(fs vfs.FS, fn func()) vfs.FS {
	return vfs.OnDiskFull(fs, fn)
}

func (d *diskTier) ballastPath() string {
	return filepath.Join(d.opts.Dir, ballastName)
}

// ensureBallast creates the ballast file if it is missing and there is
// room for it (twice its size free). It reports whether the ballast exists.
func (d *diskTier) ensureBallast() bool {
	if d.opts.ReserveBytes <= 0 {
		return true
	}
	fs := d.opts.FS
	if fi, err := fs.Stat(d.ballastPath()); err == nil && fi.Size() == d.opts.ReserveBytes {
		return true
	}
	if du, err := fs.GetDiskUsage(d.opts.Dir); err == nil && du.AvailBytes < 2*uint64(d.opts.ReserveBytes) {
		return false
	}
	f, err := fs.Create(d.ballastPath(), vfs.WriteCategoryUnspecified)
	if err != nil {
		return false
	}
	buf := make([]byte, 64<<10)
	var werr error
	for left := d.opts.ReserveBytes; left > 0 && werr == nil; left -= int64(len(buf)) {
		_, werr = f.Write(buf[:min(left, int64(len(buf)))])
	}
	werr = errors.Join(werr, f.Sync(), f.Close())
	if werr != nil {
		fs.Remove(d.ballastPath())
		return false
	}
	return true
}

// onDiskFull runs inside pebble's file system wrapper, with pebble's writes
// held, after a write met ENOSPC.
func (d *diskTier) onDiskFull() {
	if d.opts.ReserveBytes > 0 {
		d.opts.FS.Remove(d.ballastPath())
	}
	d.writeFailed(fmt.Errorf("disk full (ENOSPC)"))
}

// writeFailed pauses storing after a write error, counts it, and logs the
// first of a series.
func (d *diskTier) writeFailed(err error) {
	d.ctr.writeErrors.Add(1)
	if errors.Is(err, errPebbleFatal) {
		d.fault(classify(err), err)
	}
	d.pauseMu.Lock()
	defer d.pauseMu.Unlock()
	d.pausedUntil = d.opts.now().Add(d.opts.RetryInterval)
	if !d.paused.Swap(true) {
		d.log.Error("storing paused; serving what is stored", "err", err, "retry", d.opts.RetryInterval)
	}
}

// checkStoring returns ErrUnavailable while storing is paused, and resumes
// it once the retry time has passed and the ballast fits again.
func (d *diskTier) checkStoring() error {
	if d.readOnly || d.faulted.Load() {
		return ErrUnavailable
	}
	if d.overSpace() {
		// Compactions lag behind eviction: wait for the loop to free
		// space rather than grow past the budget.
		select {
		case d.evictCh <- struct{}{}:
		default:
		}
		return ErrUnavailable
	}
	if !d.paused.Load() {
		return nil
	}
	d.pauseMu.Lock()
	defer d.pauseMu.Unlock()
	if !d.paused.Load() {
		return nil
	}
	if d.opts.now().Before(d.pausedUntil) || !d.ensureBallast() {
		if !d.opts.now().Before(d.pausedUntil) {
			d.pausedUntil = d.opts.now().Add(d.opts.RetryInterval)
		}
		return ErrUnavailable
	}
	d.paused.Store(false)
	d.log.Info("storing resumed")
	return nil
}

// fault retires the instance after an error it cannot recover from in
// place: it takes no new work, and the supervisor closes it and opens the
// tier again. It runs on any goroutine, pebble's included, and does not
// block. Errors while the instance closes are expected and ignored.
func (d *diskTier) fault(kind faultKind, err error) {
	if d.closing.Load() {
		d.log.Debug("pebble error while closing", "err", err)
		return
	}
	if d.faulted.Swap(true) {
		return
	}
	d.kind.Store(int32(kind))
	d.log.Error("disk tier failed: serving from memory and the origin until it is back", "fault", kind.String(), "err", err.Error())
	if d.onFault != nil {
		d.onFault(d, kind, err)
	}
}

// backgroundError is pebble's BackgroundError event: a flush or
// compaction failed, which pebble would retry forever (spinning on a full
// disk, crashing on a corrupt table). A corrupt file or a full disk
// faults the instance; other errors are logged, at most once per interval.
func (d *diskTier) backgroundError(err error) {
	if d.closing.Load() || errors.Is(err, pebble.ErrCancelledCompaction) || errors.Is(err, pebble.ErrClosed) {
		return
	}
	kind := classify(err)
	if kind == faultCorrupt || kind == faultFull {
		d.fault(kind, err)
		return
	}
	if ok, held := d.logs.allow("background"); ok {
		d.log.Warn("pebble background error", "err", err.Error(), "suppressed", held)
	}
}

// dataCorruption is pebble's DataCorruption event (by default a Fatalf).
// A read that meets corruption gets an error and the caller drops the
// object; background work that meets it reports a BackgroundError too.
func (d *diskTier) dataCorruption(info pebble.DataCorruptionInfo) {
	if ok, held := d.logs.allow("corruption"); ok {
		d.log.Warn("pebble found a corrupt file", "path", info.Path, "err", info.Details.Error(), "suppressed", held)
	}
}

// faultKind is the kind of the instance's first fault.
func (d *diskTier) faultKind() faultKind {
	return faultKind(d.kind.Load())
}
