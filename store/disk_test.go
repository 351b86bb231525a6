package store

import (
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// rawKeys counts the records with the given prefix in a closed store's
// pebble directory.
func rawKeys(t *testing.T, dir string, prefix byte) int {
	t.Helper()
	db, err := pebble.Open(filepath.Join(dir, "db"), &pebble.Options{Logger: quietLogger{}})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	return rawKeysOf(t, db, prefix)
}

// rawKeysOf counts db's keys that start with prefix.
func rawKeysOf(t *testing.T, db *pebble.DB, prefix byte) int {
	t.Helper()
	it, _ := db.NewIter(&pebble.IterOptions{LowerBound: []byte{prefix}, UpperBound: []byte{prefix + 1}})
	n := 0
	for it.First(); it.Valid(); it.Next() {
		n++
	}
	it.Close()
	return n
}

func TestWriterReadWhileWrite(t *testing.T) {
	s := openTest(t, testOptions(t))
	ctx := context.Background()
	want := body(100_000, 9) // many 4 KiB chunks plus a partial one
	w, err := s.Create(ctx, "k", testMeta(), CreateOptions{SizeHint: -1})
	if err != nil {
		t.Fatal(err)
	}
	const readers = 8
	var wg sync.WaitGroup
	got := make([][]byte, readers)
	errs := make([]error, readers)
	for i := range readers {
		r := w.NewReader(ctx)
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer r.Close()
			got[i], errs[i] = io.ReadAll(r)
		}()
	}
	for p := want; len(p) > 0; {
		n := min(len(p), 777)
		if _, err := w.Write(p[:n]); err != nil {
			t.Fatal(err)
		}
		p = p[n:]
	}
	if _, err := w.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	for i := range readers {
		if errs[i] != nil || !bytes.Equal(got[i], want) {
			t.Fatalf("reader %d: %d bytes, err %v", i, len(got[i]), errs[i])
		}
	}
	// A reader started after Commit reads the whole body too.
	b, err := io.ReadAll(w.NewReader(ctx))
	if err != nil || !bytes.Equal(b, want) {
		t.Fatalf("reader after Commit: %d bytes, %v", len(b), err)
	}
}

func TestWriterReadersSeeAbort(t *testing.T) {
	s := openTest(t, testOptions(t))
	ctx := context.Background()
	w, err := s.Create(ctx, "k", testMeta(), CreateOptions{SizeHint: -1})
	if err != nil {
		t.Fatal(err)
	}
	r := w.NewReader(ctx)
	defer r.Close()
	w.Write(body(10_000, 1))
	done := make(chan error)
	go func() {
		_, err := io.ReadAll(r)
		done <- err
	}()
	w.Abort()
	if err := <-done; err == nil {
		t.Fatal("reader of an aborted fill ended without an error")
	}
	w.Abort() // idempotent
	if _, err := s.Get(ctx, "k"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get after Abort: %v, want ErrNotFound", err)
	}
}

func TestWriterReaderHonoursContext(t *testing.T) {
	s := openTest(t, testOptions(t))
	w, err := s.Create(context.Background(), "k", testMeta(), CreateOptions{SizeHint: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Abort()
	ctx, cancel := context.WithCancel(context.Background())
	r := w.NewReader(ctx)
	defer r.Close()
	done := make(chan error)
	go func() {
		_, err := r.Read(make([]byte, 10))
		done <- err
	}()
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("blocked Read after cancel: %v, want context.Canceled", err)
	}
}

// TestFillPastMaxObjectStreamsAndLeavesNothing writes past MaxObject: the
// fill stops storing but its reader gets the whole body, Commit fails with
// ErrTooLarge, and nothing of it stays on disk.
func TestFillPastMaxObjectStreamsAndLeavesNothing(t *testing.T) {
	opts := testOptions(t)
	opts.MaxObject = 50_000
	s := openTest(t, opts)
	ctx := context.Background()
	put(t, s, "k", body(100, 1), CreateOptions{SizeHint: -1})
	w, err := s.Create(ctx, "k", testMeta(), CreateOptions{SizeHint: -1})
	if err != nil {
		t.Fatal(err)
	}
	rd := w.NewReader(ctx)
	want := append(body(40_000, 2), body(20_000, 3)...)
	if _, err := w.Write(want[:40_000]); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(want[40_000:]); err != nil {
		t.Fatalf("Write past MaxObject: %v, want the fill to go on unstored", err)
	}
	w.Seal()
	if _, err := w.Commit(ctx); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("Commit of a fill past MaxObject: %v, want ErrTooLarge", err)
	}
	got, err := io.ReadAll(rd)
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("reader of the oversized fill: %d bytes, %v; want all %d", len(got), err, len(want))
	}
	rd.Close()
	o, err := s.Get(ctx, "k")
	if err != nil || !bytes.Equal(readAll(t, s, o), body(100, 1)) {
		t.Fatalf("the older object is gone or changed: %v", err)
	}
	if _, err := s.Create(ctx, "big", testMeta(), CreateOptions{SizeHint: 60_000}); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("Create with SizeHint past MaxObject: %v, want ErrTooLarge", err)
	}
	if st := s.Stats(); st.DiskObjects != 1 || st.DiskBytes > 1000 {
		t.Fatalf("stats after aborted fill: %+v", st)
	}
	s.Close()
	if n := rawKeys(t, opts.Dir, prefixChunk); n != 1 {
		t.Fatalf("%d chunk records on disk, want 1 (the surviving object's)", n)
	}
}

func TestRangeReadsOnlyItsBytes(t *testing.T) {
	opts := testOptions(t)
	opts.MemoryBytes = -1
	s := openTest(t, opts)
	want := body(50_000, 5)
	put(t, s, "k", want, CreateOptions{SizeHint: -1})
	o, err := s.Get(context.Background(), "k")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := o.Body(); ok {
		t.Fatal("object resident without a memory tier")
	}
	for _, r := range []struct{ off, n int64 }{{0, 1}, {4095, 2}, {4096, 4096}, {10_000, -1}, {49_999, 1}, {50_000, 0}, {12_345, 20_000}} {
		rd, err := s.NewReader(context.Background(), o, r.off, r.n)
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(rd)
		rd.Close()
		end := r.off + r.n
		if r.n < 0 {
			end = int64(len(want))
		}
		if err != nil || !bytes.Equal(got, want[r.off:end]) {
			t.Fatalf("range %d+%d: %d bytes, %v", r.off, r.n, len(got), err)
		}
	}
}

func TestReaderSurvivesReplacement(t *testing.T) {
	opts := testOptions(t)
	opts.MemoryBytes = -1
	s := openTest(t, opts)
	old := body(30_000, 1)
	put(t, s, "k", old, CreateOptions{SizeHint: -1})
	o, _ := s.Get(context.Background(), "k")
	r, err := s.NewReader(context.Background(), o, 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	put(t, s, "k", body(10, 2), CreateOptions{SizeHint: -1})
	if got, err := io.ReadAll(r); err != nil || !bytes.Equal(got, old) {
		t.Fatalf("stream of the replaced body: %d bytes, %v", len(got), err)
	}
	if _, err := s.NewReader(context.Background(), o, 0, -1); !errors.Is(err, ErrNotFound) {
		t.Fatalf("NewReader of a replaced object: %v, want ErrNotFound", err)
	}
}

func TestSecondOpenIsLocked(t *testing.T) {
	opts := testOptions(t)
	s := openTest(t, opts)
	if _, err := Open(opts); !errors.Is(err, ErrLocked) {
		t.Fatalf("second Open: %v, want ErrLocked", err)
	}
	s.Close()
	s2, err := Open(opts)
	if err != nil {
		t.Fatalf("Open after Close: %v", err)
	}
	s2.Close()
}

func TestReopenServesObjectsTagsAndPurges(t *testing.T) {
	opts := testOptions(t)
	ctx := context.Background()
	s := openTest(t, opts)
	put(t, s, "a", body(20_000, 1), CreateOptions{Tags: []string{"t"}, SizeHint: -1})
	put(t, s, "b", body(100, 2), CreateOptions{Tags: []string{"t"}, SizeHint: -1})
	put(t, s, "c", body(100, 3), CreateOptions{SizeHint: -1})
	put(t, s, "d", body(100, 4), CreateOptions{SizeHint: -1})
	if n, err := s.Purge(ctx, Selector{URL: "c"}, false); n != 1 || err != nil {
		t.Fatalf("purge: %d, %v", n, err)
	}
	if n, err := s.Purge(ctx, Selector{URL: "d"}, true); n != 1 || err != nil {
		t.Fatalf("soft purge: %d, %v", n, err)
	}
	// An unfinished fill at shutdown must not survive.
	w, _ := s.Create(ctx, "e", testMeta(), CreateOptions{SizeHint: -1})
	w.Write(body(20_000, 5))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = openTest(t, opts)
	o, err := s.Get(ctx, "a")
	if err != nil || !bytes.Equal(readAll(t, s, o), body(20_000, 1)) {
		t.Fatalf("a after reopen: %v", err)
	}
	for _, k := range []string{"c", "e"} {
		if _, err := s.Get(ctx, k); !errors.Is(err, ErrNotFound) {
			t.Fatalf("%s after reopen: %v, want ErrNotFound", k, err)
		}
	}
	if o, err := s.Get(ctx, "d"); err != nil || !o.Meta.Invalid {
		t.Fatalf("soft-purged d after reopen: %v, Invalid %v", err, o != nil && o.Meta.Invalid)
	}
	if n, err := s.Purge(ctx, Selector{Tag: "t"}, false); n != 2 || err != nil {
		t.Fatalf("tag purge after reopen: %d, %v; want 2", n, err)
	}
	s.Close()
	// a's and e's fill records went with them; d, committed in one
	// batch, never had one.
	if n := rawKeys(t, opts.Dir, prefixFill); n != 0 {
		t.Fatalf("%d fill records left after recovery, want 0", n)
	}
	if n := rawKeys(t, opts.Dir, prefixChunk); n != 1 {
		t.Fatalf("%d chunk records left, want 1 (d's)", n)
	}
}

// dirSize is the bytes of all files under dir.
func dirSize(t *testing.T, dir string) int64 {
	var n int64
	filepath.WalkDir(dir, func(_ string, e fs.DirEntry, err error) error {
		if err == nil && !e.IsDir() {
			if fi, err := e.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	return n
}

type quietLogger struct{}

func (quietLogger) Infof(string, ...any)         {}
func (quietLogger) Errorf(string, ...any)        {}
func (quietLogger) Fatalf(f string, args ...any) { panic(f) }

var _ = os.Remove

func TestConcurrentGetUpdatePurgeEvict(t *testing.T) {
	opts := testOptions(t)
	opts.DiskBytes = 2 << 20
	s := openTest(t, opts)
	ctx := context.Background()
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 60 {
				key := "k" + string(rune('a'+(i+g)%6))
				switch (i + g) % 4 {
				case 0:
					// A purge may overtake the fill: ErrSuperseded then.
					w, err := s.Create(ctx, key, testMeta(), CreateOptions{Tags: []string{"t"}, SizeHint: -1})
					if err != nil {
						t.Errorf("Create(%q): %v", key, err)
						return
					}
					w.Write(body(30_000+i, byte(g)))
					if _, err := w.Commit(ctx); err != nil && !errors.Is(err, ErrSuperseded) {
						t.Errorf("Commit(%q): %v", key, err)
					}
				case 1:
					if o, err := s.Get(ctx, key); err == nil {
						if r, err := s.NewReader(ctx, o, 0, -1); err == nil {
							io.Copy(io.Discard, r)
							r.Close()
						}
					}
				case 2:
					s.UpdateMeta(ctx, key, testMeta(), time.Time{})
				case 3:
					s.Purge(ctx, Selector{Tag: "t"}, i%8 == 3)
				}
				if i%10 == 0 {
					s.cur().evict()
				}
			}
		}()
	}
	wg.Wait()
	if _, err := s.Purge(ctx, Selector{All: true}, false); err != nil {
		t.Fatal(err)
	}
	if st := s.Stats(); st.DiskBytes != 0 || st.DiskObjects != 0 {
		t.Fatalf("byte accounting drifted: %+v after purging everything", st)
	}
}
