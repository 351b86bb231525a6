package store

import (
	"context"
	"io"
	"testing"

	"github.com/cellar-cache/cellar/cache"
)

func TestSealEndsFollowingReadersBeforeCommit(t *testing.T) {
	s, err := Open(Options{Dir: t.TempDir(), MemoryBytes: 1 << 20, DiskBytes: 16 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	w, err := s.Create(ctx, "k", cache.Meta{Status: 200}, CreateOptions{SizeHint: 5})
	if err != nil {
		t.Fatal(err)
	}
	rd := w.NewReader(ctx)
	defer rd.Close()
	w.Write([]byte("hello"))
	w.Seal()
	b, err := io.ReadAll(rd) // would block until Commit without Seal
	if err != nil || string(b) != "hello" {
		t.Fatalf("read %q, %v", b, err)
	}
	if _, err := w.Write([]byte("more")); err == nil {
		t.Error("Write after Seal succeeded")
	}
	if _, err := s.Get(ctx, "k"); err != ErrNotFound {
		t.Errorf("Get before Commit = %v, want ErrNotFound: Seal must not publish", err)
	}
	if _, err := w.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if o, err := s.Get(ctx, "k"); err != nil || o.Size != 5 {
		t.Errorf("Get after Commit = %v, %v", o, err)
	}
}
