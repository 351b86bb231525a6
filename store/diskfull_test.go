package store

import (
	"context"
	"errors"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// quotaFS is the real file system with a modelled amount of free space:
// writes past it fail with ENOSPC and removing a file gives its bytes back.
// It is how a full disk looks to pebble, without filling a real one.
type quotaFS struct {
	vfs.FS
	free atomic.Int64
}

type quotaFile struct {
	vfs.File
	q *quotaFS
}

func (q *quotaFS) wrap(f vfs.File, err error) (vfs.File, error) {
	if err != nil {
		return nil, err
	}
	return &quotaFile{f, q}, nil
}

func (q *quotaFS) Create(name string, c vfs.DiskWriteCategory) (vfs.File, error) {
	return q.wrap(q.FS.Create(name, c))
}

func (q *quotaFS) OpenReadWrite(name string, c vfs.DiskWriteCategory, o ...vfs.OpenOption) (vfs.File, error) {
	return q.wrap(q.FS.OpenReadWrite(name, c, o...))
}

func (q *quotaFS) ReuseForWrite(old, name string, c vfs.DiskWriteCategory) (vfs.File, error) {
	return q.wrap(q.FS.ReuseForWrite(old, name, c))
}

func (q *quotaFS) Remove(name string) error {
	fi, err := q.FS.Stat(name)
	if err := q.FS.Remove(name); err != nil {
		return err
	}
	if err == nil {
		q.free.Add(fi.Size())
	}
	return nil
}

func (q *quotaFS) GetDiskUsage(string) (vfs.DiskUsage, error) {
	return vfs.DiskUsage{AvailBytes: uint64(max(q.free.Load(), 0)), TotalBytes: 1 << 40}, nil
}

func (q *quotaFS) take(n int) error {
	if q.free.Add(-int64(n)) < 0 {
		q.free.Add(int64(n))
		return syscall.ENOSPC
	}
	return nil
}

func (f *quotaFile) Write(p []byte) (int, error) {
	if err := f.q.take(len(p)); err != nil {
		return 0, err
	}
	return f.File.Write(p)
}

func (f *quotaFile) WriteAt(p []byte, off int64) (int, error) {
	if err := f.q.take(len(p)); err != nil {
		return 0, err
	}
	return f.File.WriteAt(p, off)
}

func TestFullDiskPausesStoringAndKeepsServing(t *testing.T) {
	q := &quotaFS{FS: vfs.Default}
	q.free.Store(1 << 30)
	clk := newClock()
	opts := testOptions(t)
	opts.fs = q
	opts.now = clk.now
	opts.ReserveBytes = 1 << 20
	opts.RetryInterval = time.Minute
	s := openTest(t, opts)
	ctx := context.Background()
	put(t, s, "before", body(20_000, 1), CreateOptions{SizeHint: -1})

	// The disk fills up: the next write meets ENOSPC, the ballast goes,
	// and the write lands in the space it freed.
	q.free.Store(0)
	w, err := s.Create(ctx, "during", testMeta(), CreateOptions{SizeHint: -1})
	if err != nil {
		t.Fatal(err)
	}
	var werr error
	for i := 0; i < 64 && werr == nil; i++ {
		_, werr = w.Write(body(4096, byte(i)))
	}
	if !errors.Is(werr, ErrUnavailable) {
		t.Fatalf("Write on a full disk: %v, want ErrUnavailable", werr)
	}
	if _, err := s.Create(ctx, "next", testMeta(), CreateOptions{SizeHint: -1}); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Create while paused: %v, want ErrUnavailable", err)
	}
	if _, err := s.Get(ctx, "during"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("fill cut short by the full disk is visible: %v", err)
	}
	if o, err := s.Get(ctx, "before"); err != nil || len(readAll(t, s, o)) != 20_000 {
		t.Fatalf("reads must continue while storing is paused: %v", err)
	}
	if st := s.Stats(); st.WriteErrors == 0 {
		t.Fatalf("write error not counted: %+v", st)
	}

	// Space returns, but storing resumes only after the retry interval.
	q.free.Store(1 << 30)
	if _, err := s.Create(ctx, "next", testMeta(), CreateOptions{SizeHint: -1}); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Create before the retry interval: %v, want ErrUnavailable", err)
	}
	clk.advance(time.Minute + time.Second)
	put(t, s, "after", body(20_000, 2), CreateOptions{SizeHint: -1})
	if fi, err := q.FS.Stat(s.disk.ballastPath()); err != nil || fi.Size() != opts.ReserveBytes {
		t.Fatalf("ballast not restored on resume: %v", err)
	}
}
