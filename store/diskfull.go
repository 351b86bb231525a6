package store

import (
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"

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
	d.writeErrors.Add(1)
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

// pebbleLogger sends pebble's logs to slog. Pebble calls Fatalf on errors it
// cannot survive (a failed WAL write); we log them and panic rather than
// exit, so that the process's own handlers run.
type pebbleLogger struct{ l *slog.Logger }

func (p pebbleLogger) Infof(format string, args ...any) {
	p.l.Debug(fmt.Sprintf(format, args...), "source", "pebble")
}

func (p pebbleLogger) Errorf(format string, args ...any) {
	p.l.Warn(fmt.Sprintf(format, args...), "source", "pebble")
}

func (p pebbleLogger) Fatalf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	p.l.Error(msg, "source", "pebble")
	panic("store: pebble: " + msg)
}
