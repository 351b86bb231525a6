package store

import (
	"bytes"
	"context"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// syncGate is a file system whose WAL syncs block while it is closed, so
// that a test can look at what other goroutines can do while a commit is
// in its fsync.
type syncGate struct {
	vfs.FS
	mu      sync.Mutex
	closed  bool
	blocked chan struct{} // receives when a sync blocks on the gate
	open    chan struct{} // closed to let blocked syncs through
}

func newSyncGate() *syncGate {
	return &syncGate{FS: vfs.Default, blocked: make(chan struct{}, 16), open: make(chan struct{})}
}

func (g *syncGate) close() {
	g.mu.Lock()
	g.closed = true
	g.mu.Unlock()
}

func (g *syncGate) wait(name string) {
	if !strings.HasSuffix(name, ".log") {
		return
	}
	g.mu.Lock()
	closed := g.closed
	g.mu.Unlock()
	if closed {
		select {
		case g.blocked <- struct{}{}:
		default:
		}
		<-g.open
	}
}

func (g *syncGate) Create(name string, c vfs.DiskWriteCategory) (vfs.File, error) {
	f, err := g.FS.Create(name, c)
	return gatedFile{f, g, name}, err
}

func (g *syncGate) ReuseForWrite(oldname, newname string, c vfs.DiskWriteCategory) (vfs.File, error) {
	f, err := g.FS.ReuseForWrite(oldname, newname, c)
	return gatedFile{f, g, newname}, err
}

type gatedFile struct {
	vfs.File
	g    *syncGate
	name string
}

func (f gatedFile) Sync() error     { f.g.wait(f.name); return f.File.Sync() }
func (f gatedFile) SyncData() error { f.g.wait(f.name); return f.File.SyncData() }
func (f gatedFile) SyncTo(n int64) (bool, error) {
	f.g.wait(f.name)
	return f.File.SyncTo(n)
}

// TestCommitHoldsNoLockAcrossFsync blocks a fill's commit in its WAL sync
// and checks that meanwhile a reader following the fill reads the bytes
// not yet flushed to a chunk, and that taking a store ticket (what every
// miss does) and a metadata read of another key do not wait for it.
func TestCommitHoldsNoLockAcrossFsync(t *testing.T) {
	g := newSyncGate()
	opts := testOptions(t)
	opts.FS = g
	s := openTest(t, opts)
	var once sync.Once
	release := func() { once.Do(func() { close(g.open) }) }
	t.Cleanup(release) // before the store closes, even when the test fails
	ctx := context.Background()
	put(t, s, "other", body(100, 1), CreateOptions{SizeHint: -1})

	w, err := s.Create(ctx, "k", testMeta(), CreateOptions{SizeHint: -1})
	if err != nil {
		t.Fatal(err)
	}
	want := body(1000, 2) // less than a chunk: it stays in the writer's buffer until Commit
	if _, err := w.Write(want); err != nil {
		t.Fatal(err)
	}
	rd := w.NewReader(ctx)
	defer rd.Close()

	g.close()
	committed := make(chan error, 1)
	go func() {
		_, err := w.Commit(ctx)
		committed <- err
	}()
	select {
	case <-g.blocked:
	case <-time.After(time.Minute):
		t.Fatal("the commit never reached its sync")
	}

	done := make(chan string, 3)
	go func() {
		got := make([]byte, len(want))
		if _, err := io.ReadFull(rd, got); err != nil || !bytes.Equal(got, want) {
			done <- "reader: " + err.Error()
			return
		}
		done <- ""
	}()
	go func() {
		s.Ticket().Release()
		done <- ""
	}()
	go func() {
		if _, err := s.Get(ctx, "other"); err != nil {
			done <- "get: " + err.Error()
			return
		}
		done <- ""
	}()
	for range 3 {
		select {
		case msg := <-done:
			if msg != "" {
				t.Error(msg)
			}
		case <-time.After(time.Minute):
			t.Fatal("a reader, a ticket or a lookup waited for the commit's fsync")
		}
	}
	release()
	if err := <-committed; err != nil {
		t.Fatal(err)
	}
	if rest, err := io.ReadAll(rd); err != nil || len(rest) != 0 {
		t.Fatalf("after commit: %d more bytes, %v; want EOF", len(rest), err)
	}
}
