package store

import (
	"bytes"
	"context"
	"io"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/cellar-cache/cellar/internal/walgate"
)

// TestCommitHoldsNoLockAcrossFsync blocks a fill's commit in its WAL sync
// and checks that meanwhile a reader following the fill reads the bytes
// not yet flushed to a chunk, and that taking a store ticket (what every
// miss does) and a metadata read of another key do not wait for it.
func TestCommitHoldsNoLockAcrossFsync(t *testing.T) {
	g := walgate.New(vfs.Default)
	opts := testOptions(t)
	opts.FS = g
	s := openTest(t, opts)
	t.Cleanup(g.Release) // before the store closes, even when the test fails
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

	g.Shut()
	committed := make(chan error, 1)
	go func() {
		_, err := w.Commit(ctx)
		committed <- err
	}()
	select {
	case <-g.Blocked():
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
	g.Release()
	if err := <-committed; err != nil {
		t.Fatal(err)
	}
	if rest, err := io.ReadAll(rd); err != nil || len(rest) != 0 {
		t.Fatalf("after commit: %d more bytes, %v; want EOF", len(rest), err)
	}
}
