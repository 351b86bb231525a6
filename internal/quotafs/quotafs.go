// Package quotafs is a test file system that models free space: it wraps a
// pebble vfs.FS, and writes past the modelled free space fail with ENOSPC
// while removing a file gives its bytes back. It is how a full disk looks to
// pebble without filling a real one; the store and proxy tests use it.
package quotafs

import (
	"sync/atomic"
	"syscall"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// FS is a vfs.FS with a modelled amount of free space. It is safe for
// concurrent use.
type FS struct {
	vfs.FS
	free atomic.Int64
}

// New returns fs with free bytes of free space.
func New(fs vfs.FS, free int64) *FS {
	q := &FS{FS: fs}
	q.free.Store(free)
	return q
}

// SetFree sets the free space to n bytes.
func (q *FS) SetFree(n int64) { q.free.Store(n) }

// Free returns the free space in bytes.
func (q *FS) Free() int64 { return q.free.Load() }

type file struct {
	vfs.File
	q *FS
}

func (q *FS) wrap(f vfs.File, err error) (vfs.File, error) {
	if err != nil {
		return nil, err
	}
	return &file{f, q}, nil
}

// Create creates name; writes to it draw on the free space.
func (q *FS) Create(name string, c vfs.DiskWriteCategory) (vfs.File, error) {
	return q.wrap(q.FS.Create(name, c))
}

// OpenReadWrite opens name; writes to it draw on the free space.
func (q *FS) OpenReadWrite(name string, c vfs.DiskWriteCategory, o ...vfs.OpenOption) (vfs.File, error) {
	return q.wrap(q.FS.OpenReadWrite(name, c, o...))
}

// ReuseForWrite reuses old as name; writes to it draw on the free space.
func (q *FS) ReuseForWrite(old, name string, c vfs.DiskWriteCategory) (vfs.File, error) {
	return q.wrap(q.FS.ReuseForWrite(old, name, c))
}

// Remove removes name and gives its size back to the free space.
func (q *FS) Remove(name string) error {
	fi, err := q.FS.Stat(name)
	if err := q.FS.Remove(name); err != nil {
		return err
	}
	if err == nil {
		q.free.Add(fi.Size())
	}
	return nil
}

// GetDiskUsage reports the modelled free space.
func (q *FS) GetDiskUsage(string) (vfs.DiskUsage, error) {
	return vfs.DiskUsage{AvailBytes: uint64(max(q.free.Load(), 0)), TotalBytes: 1 << 40}, nil
}

// take draws n bytes from the free space, or fails with ENOSPC and draws
// nothing.
func (q *FS) take(n int) error {
	if q.free.Add(-int64(n)) < 0 {
		q.free.Add(int64(n))
		return syscall.ENOSPC
	}
	return nil
}

func (f *file) Write(p []byte) (int, error) {
	if err := f.q.take(len(p)); err != nil {
		return 0, err
	}
	return f.File.Write(p)
}

func (f *file) WriteAt(p []byte, off int64) (int, error) {
	if err := f.q.take(len(p)); err != nil {
		return 0, err
	}
	return f.File.WriteAt(p, off)
}
