package store

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/cellar-cache/cellar/internal/quotafs"
	"github.com/cockroachdb/pebble/v2/vfs"
)

func TestFullDiskPausesStoringAndKeepsServing(t *testing.T) {
	q := quotafs.New(vfs.Default, 1<<30)
	clk := newClock()
	opts := testOptions(t)
	opts.FS = q
	opts.now = clk.now
	opts.ReserveBytes = 1 << 20
	opts.RetryInterval = time.Minute
	s := openTest(t, opts)
	ctx := context.Background()
	put(t, s, "before", body(20_000, 1), CreateOptions{SizeHint: -1})

	// The disk fills up: the next write meets ENOSPC, the ballast goes,
	// and the write lands in the space it freed.
	q.SetFree(0)
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
	q.SetFree(1 << 30)
	if _, err := s.Create(ctx, "next", testMeta(), CreateOptions{SizeHint: -1}); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Create before the retry interval: %v, want ErrUnavailable", err)
	}
	clk.advance(time.Minute + time.Second)
	put(t, s, "after", body(20_000, 2), CreateOptions{SizeHint: -1})
	if fi, err := q.FS.Stat(s.disk.ballastPath()); err != nil || fi.Size() != opts.ReserveBytes {
		t.Fatalf("ballast not restored on resume: %v", err)
	}
}
