package store

import (
	"bytes"
	"context"
	"errors"
	"io"
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

	usedBefore := s.Stats().DiskBytes

	// The disk fills up: a write meets ENOSPC, the ballast goes, and
	// storing pauses. The fill goes on without storing, so that a reader
	// following it still gets the whole body, and its commit fails.
	q.SetFree(0)
	w, err := s.Create(ctx, "during", testMeta(), CreateOptions{SizeHint: -1})
	if err != nil {
		t.Fatal(err)
	}
	rd := w.NewReader(ctx)
	var want []byte
	for i := range 64 {
		p := body(4096, byte(i))
		want = append(want, p...)
		if _, err := w.Write(p); err != nil {
			t.Fatalf("Write %d on a full disk: %v; the fill must go on for its readers", i, err)
		}
	}
	if st := s.Stats(); st.WriteErrors == 0 {
		t.Fatalf("64 chunks written to a full disk and no write error: %+v", st)
	}
	w.Seal()
	if _, err := w.Commit(ctx); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Commit of a fill that met a full disk: %v, want ErrUnavailable", err)
	}
	got, err := io.ReadAll(rd)
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("reader of the fill: %d of %d bytes, %v; want the whole body", len(got), len(want), err)
	}
	rd.Close()
	if used := s.Stats().DiskBytes; used != usedBefore {
		t.Errorf("disk bytes %d after the unstored fill ended, want %d as before", used, usedBefore)
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
	if fi, err := q.FS.Stat(s.cur().ballastPath()); err != nil || fi.Size() != opts.ReserveBytes {
		t.Fatalf("ballast not restored on resume: %v", err)
	}
}

// TestFullDiskCutsOnlyReadersFarBehind fills past maxUnstoredBuffer after
// the disk filled up: a reader that keeps up gets the whole body, and one
// that stayed at the start is cut off with an error wrapping
// ErrUnavailable rather than given a wrong or short body.
func TestFullDiskCutsOnlyReadersFarBehind(t *testing.T) {
	q := quotafs.New(vfs.Default, 1<<30)
	opts := testOptions(t)
	opts.FS = q
	opts.ReserveBytes = 1 << 20
	opts.RetryInterval = time.Hour
	opts.MaxObject = 64 << 20
	s := openTest(t, opts)
	ctx := context.Background()
	w, err := s.Create(ctx, "big", testMeta(), CreateOptions{SizeHint: -1})
	if err != nil {
		t.Fatal(err)
	}
	slow, fast := w.NewReader(ctx), w.NewReader(ctx)
	defer slow.Close()
	var want, got []byte
	buf := make([]byte, 64<<10)
	q.SetFree(16 << 10) // a few chunks fit, then the disk is full
	for i := range 2 * maxUnstoredBuffer / 4096 {
		p := body(4096, byte(i))
		want = append(want, p...)
		if _, err := w.Write(p); err != nil {
			t.Fatalf("Write %d: %v", i, err)
		}
		for len(got) < len(want) {
			n, err := fast.Read(buf)
			if err != nil {
				t.Fatalf("fast reader after %d bytes: %v", len(got), err)
			}
			got = append(got, buf[:n]...)
		}
	}
	if s.Stats().WriteErrors == 0 {
		t.Fatal("the disk never filled up")
	}
	w.Seal()
	if _, err := w.Commit(ctx); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Commit: %v, want ErrUnavailable", err)
	}
	if rest, err := io.ReadAll(fast); err != nil || !bytes.Equal(append(got, rest...), want) {
		t.Fatalf("the reader that kept up: %d of %d bytes, %v", len(got)+len(rest), len(want), err)
	}
	fast.Close()
	b, err := io.ReadAll(slow)
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("the reader left behind: %d bytes, %v; want an error wrapping ErrUnavailable", len(b), err)
	}
	if !bytes.Equal(b, want[:len(b)]) {
		t.Fatal("the reader left behind got wrong bytes before its error")
	}
}
