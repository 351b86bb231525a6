// Package walgate is a pebble file system for tests whose WAL syncs block
// while the gate is shut, so that a test can see what other goroutines can
// do while a commit is in its fsync.
package walgate

import (
	"strings"
	"sync"
	"sync/atomic"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// FS wraps a file system; syncs of its WAL files (*.log) block while the
// gate is shut, until Release. Safe for concurrent use.
type FS struct {
	vfs.FS
	shut    atomic.Bool
	blocked chan struct{} // receives (best effort) when a sync blocks
	open    chan struct{} // closed by Release
	once    sync.Once
}

// New returns an open gate over fs.
func New(fs vfs.FS) *FS {
	return &FS{FS: fs, blocked: make(chan struct{}, 16), open: make(chan struct{})}
}

// Shut makes WAL syncs from now on block until Release.
func (g *FS) Shut() { g.shut.Store(true) }

// Blocked receives when a WAL sync has blocked on the shut gate.
func (g *FS) Blocked() <-chan struct{} { return g.blocked }

// Release lets every blocked and later sync through. It is idempotent.
func (g *FS) Release() { g.once.Do(func() { close(g.open) }) }

func (g *FS) wait(name string) {
	if !strings.HasSuffix(name, ".log") || !g.shut.Load() {
		return
	}
	select {
	case g.blocked <- struct{}{}:
	default:
	}
	<-g.open
}

// Create wraps the created file so that its syncs pass the gate.
func (g *FS) Create(name string, c vfs.DiskWriteCategory) (vfs.File, error) {
	f, err := g.FS.Create(name, c)
	return file{f, g, name}, err
}

// ReuseForWrite wraps the reused file so that its syncs pass the gate.
func (g *FS) ReuseForWrite(oldname, newname string, c vfs.DiskWriteCategory) (vfs.File, error) {
	f, err := g.FS.ReuseForWrite(oldname, newname, c)
	return file{f, g, newname}, err
}

type file struct {
	vfs.File
	g    *FS
	name string
}

func (f file) Sync() error                  { f.g.wait(f.name); return f.File.Sync() }
func (f file) SyncData() error              { f.g.wait(f.name); return f.File.SyncData() }
func (f file) SyncTo(n int64) (bool, error) { f.g.wait(f.name); return f.File.SyncTo(n) }
