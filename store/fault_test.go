package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cellar-cache/cellar/internal/quotafs"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// faultObjects is how many objects the fault tests store; objBody(i) is
// the body of object i, so that any body read back can be checked.
const faultObjects = 40

func objKey(i int) string { return fmt.Sprintf("http://h/obj/%d", i) }

func objBody(i int) []byte { return body(3000+i*500, byte(i)) }

// fillForFaults stores the objects in two sessions, so that the directory
// holds tables (the first session's WAL, flushed by the second open) and
// a WAL (the second session's).
func fillForFaults(t *testing.T, opts Options) {
	t.Helper()
	s := openTest(t, opts)
	for i := range faultObjects / 2 {
		put(t, s, objKey(i), objBody(i), CreateOptions{Tags: []string{"t"}, SizeHint: -1})
	}
	s.Close()
	s = openTest(t, opts)
	for i := faultObjects / 2; i < faultObjects; i++ {
		put(t, s, objKey(i), objBody(i), CreateOptions{Tags: []string{"t"}, SizeHint: -1})
	}
	s.Close()
}

// checkBodies reads every object and fails on a body that is not the one
// stored; a miss is fine. It returns the number of hits.
func checkBodies(t *testing.T, s *Store) int {
	t.Helper()
	ctx := context.Background()
	hits := 0
	for i := range faultObjects {
		o, err := s.Get(ctx, objKey(i))
		if err != nil {
			continue
		}
		r, err := s.NewReader(ctx, o, 0, -1)
		if err != nil {
			continue
		}
		b, err := io.ReadAll(r)
		r.Close()
		if err != nil {
			continue // a corrupt chunk mid-body: an error, never wrong bytes
		}
		if !bytes.Equal(b, objBody(i)) {
			t.Fatalf("object %d: wrong body (%d bytes, want %d)", i, len(b), len(objBody(i)))
		}
		hits++
	}
	return hits
}

// waitMode waits (with a generous bound) until the disk tier is in mode.
func waitMode(t *testing.T, s *Store, mode string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for s.DiskState().Mode != mode {
		if time.Now().After(deadline) {
			t.Fatalf("disk tier %+v, want mode %s", s.DiskState(), mode)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// damage changes the files of pebble's directory whose names pick selects.
func damage(t *testing.T, dir string, pick func(name string) bool, how string, rng *rand.Rand) []string {
	t.Helper()
	ents, err := os.ReadDir(filepath.Join(dir, dbDirName))
	if err != nil {
		t.Fatal(err)
	}
	var hit []string
	for _, e := range ents {
		if !pick(e.Name()) {
			continue
		}
		p := filepath.Join(dir, dbDirName, e.Name())
		b, err := os.ReadFile(p)
		if err != nil || len(b) == 0 {
			continue
		}
		switch how {
		case "flip":
			for range 1 + len(b)/2000 {
				i := rng.IntN(len(b))
				b[i] ^= byte(1 + rng.IntN(255))
			}
		case "truncate":
			b = b[:rng.IntN(len(b))]
		case "delete":
			if err := os.Remove(p); err != nil {
				t.Fatal(err)
			}
			hit = append(hit, e.Name())
			return hit // one file
		}
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		hit = append(hit, e.Name())
	}
	return hit
}

func isSST(n string) bool      { return strings.HasSuffix(n, ".sst") }
func isManifest(n string) bool { return strings.HasPrefix(n, "MANIFEST-") }
func isOptions(n string) bool  { return strings.HasPrefix(n, "OPTIONS-") }

// TestDamagedFilesNeverStopTheStore damages each kind of pebble file in
// several ways, then opens the store, reads everything, compacts it (the
// background work that used to hit pebble's Fatalf and crash the process)
// and stores again. The store must open, never serve a wrong byte, and
// end online.
func TestDamagedFilesNeverStopTheStore(t *testing.T) {
	cases := []struct {
		name string
		pick func(string) bool
		how  string
	}{
		{"sst flip", isSST, "flip"},
		{"sst truncate", isSST, "truncate"},
		{"sst delete", isSST, "delete"},
		{"wal flip", isWAL, "flip"},
		{"wal truncate", isWAL, "truncate"},
		{"manifest flip", isManifest, "flip"},
		{"manifest truncate", isManifest, "truncate"},
		{"options flip", isOptions, "flip"},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			opts := testOptions(t)
			opts.RetryInterval = 50 * time.Millisecond
			fillForFaults(t, opts)
			rng := rand.New(rand.NewPCG(uint64(i), 12))
			if hit := damage(t, opts.Dir, tc.pick, tc.how, rng); len(hit) == 0 {
				t.Fatal("no file to damage")
			}
			s, err := Open(opts)
			if err != nil {
				t.Fatalf("Open of a damaged directory: %v", err)
			}
			defer s.Close()
			checkBodies(t, s)
			if d := s.acquire(); d != nil {
				// What a background compaction does; on a corrupt table
				// it faults the instance rather than the process.
				guard(func() error { return d.db.Compact(context.Background(), []byte{0}, []byte{0xff}, true) })
				d.release()
			}
			waitMode(t, s, DiskOnline)
			checkBodies(t, s)
			put(t, s, "http://h/new", body(5000, 9), CreateOptions{SizeHint: -1})
			o, err := s.Get(context.Background(), "http://h/new")
			if err != nil || !bytes.Equal(readAll(t, s, o), body(5000, 9)) {
				t.Fatalf("storing after the damage: %v", err)
			}
			t.Logf("state %+v", s.DiskState())
		})
	}
}

// TestUnopenableDirectoryIsQuarantined: a directory pebble cannot open is
// moved to Dir/quarantine/<time>/ (one kept), and the store starts empty.
func TestUnopenableDirectoryIsQuarantined(t *testing.T) {
	opts := testOptions(t)
	fillForFaults(t, opts)
	for round := range 2 {
		// An unreadable MANIFEST pointer: pebble cannot open the directory.
		ents, _ := os.ReadDir(filepath.Join(opts.Dir, dbDirName))
		for _, e := range ents {
			if strings.HasPrefix(e.Name(), "marker.manifest") || isManifest(e.Name()) {
				os.WriteFile(filepath.Join(opts.Dir, dbDirName, e.Name()), []byte("garbage"), 0o600)
			}
		}
		s := openTest(t, opts)
		st := s.DiskState()
		if st.Mode != DiskOnline || st.Quarantines != 1 || st.Quarantined == "" {
			t.Fatalf("round %d: state %+v, want online after one quarantine", round, st)
		}
		if _, err := s.Get(context.Background(), objKey(1)); !errors.Is(err, ErrNotFound) {
			t.Fatalf("round %d: the quarantined data is served: %v", round, err)
		}
		put(t, s, objKey(1), objBody(1), CreateOptions{SizeHint: -1})
		s.Close()
		q, _ := os.ReadDir(filepath.Join(opts.Dir, quarantineDirName))
		if len(q) != 1 {
			t.Fatalf("round %d: %d quarantined directories, want 1", round, len(q))
		}
		if _, err := os.Stat(filepath.Join(st.Quarantined, dbDirName)); err != nil {
			t.Fatalf("round %d: quarantined files: %v", round, err)
		}
	}
}

// TestFailedWALWriteFaultsTheTierNotTheProcess: with no ballast, a write
// that meets a full disk fails in the WAL, where pebble calls Fatalf
// ("fatal commit error"), which used to panic. The tier goes offline, the
// memory tier still serves, storing fails with ErrUnavailable, and the
// tier comes back once there is room.
func TestFailedWALWriteFaultsTheTierNotTheProcess(t *testing.T) {
	q := quotafs.New(vfs.Default, 1<<30)
	opts := testOptions(t)
	opts.FS = q
	opts.ReserveBytes = -1
	opts.RetryInterval = 50 * time.Millisecond
	s := openTest(t, opts)
	ctx := context.Background()
	put(t, s, "resident", body(2000, 1), CreateOptions{SizeHint: -1})
	s.mem.c.Wait()

	q.SetFree(0)
	w, err := s.Create(ctx, "k", testMeta(), CreateOptions{SizeHint: -1})
	if err != nil {
		t.Fatal(err)
	}
	w.Write(body(20_000, 2))
	if _, err := w.Commit(ctx); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Commit on a full disk without ballast: %v, want ErrUnavailable", err)
	}
	if st := s.DiskState(); st.Mode == DiskOnline || st.Faults == 0 {
		t.Fatalf("state after a failed WAL write: %+v", st)
	}
	if o, err := s.Get(ctx, "resident"); err != nil || !bytes.Equal(readAll(t, s, o), body(2000, 1)) {
		t.Fatalf("memory tier while the disk is out: %v", err)
	}
	if _, err := s.Create(ctx, "k2", testMeta(), CreateOptions{SizeHint: -1}); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Create while the disk is out: %v, want ErrUnavailable", err)
	}
	q.SetFree(1 << 30)
	waitMode(t, s, DiskOnline)
	put(t, s, "k3", body(20_000, 3), CreateOptions{SizeHint: -1})
	if o, err := s.Get(ctx, "k3"); err != nil || !bytes.Equal(readAll(t, s, o), body(20_000, 3)) {
		t.Fatalf("after the tier came back: %v", err)
	}
}

// TestFullDiskAtOpenServesReadOnly: a restart on a full disk opens
// read-only at once: it serves what is stored, stores nothing, and goes
// read-write when room returns.
func TestFullDiskAtOpenServesReadOnly(t *testing.T) {
	q := quotafs.New(vfs.Default, 1<<30)
	opts := testOptions(t)
	opts.FS = q
	opts.RetryInterval = 50 * time.Millisecond
	fillForFaults(t, opts)
	q.SetFree(0)
	start := time.Now()
	s := openTest(t, opts)
	t.Logf("open on a full disk took %v", time.Since(start))
	if st := s.DiskState(); st.Mode != DiskReadOnly {
		t.Fatalf("state on a full disk: %+v, want read-only", st)
	}
	if n := checkBodies(t, s); n != faultObjects {
		t.Fatalf("%d of %d objects served read-only", n, faultObjects)
	}
	ctx := context.Background()
	if _, err := s.Create(ctx, "new", testMeta(), CreateOptions{SizeHint: -1}); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Create on a read-only tier: %v, want ErrUnavailable", err)
	}
	if n, err := s.Purge(ctx, Selector{URL: objKey(3)}, false); n != 1 || !errors.Is(err, ErrUnavailable) {
		t.Fatalf("purge on a read-only tier: %d, %v; want 1 and an error saying it is not durable yet", n, err)
	}
	if _, err := s.Get(ctx, objKey(3)); !errors.Is(err, ErrNotFound) {
		t.Fatalf("purged object served: %v", err)
	}
	q.SetFree(1 << 30)
	waitMode(t, s, DiskOnline)
	put(t, s, "new", body(5000, 4), CreateOptions{SizeHint: -1})
	if n := checkBodies(t, s); n != faultObjects-1 {
		t.Fatalf("%d objects after going read-write, want %d", n, faultObjects-1)
	}
	s.Close()
	s = openTest(t, opts)
	if _, err := s.Get(ctx, objKey(3)); !errors.Is(err, ErrNotFound) {
		t.Fatalf("the purge made read-only did not reach the disk: %v", err)
	}
}

// TestPebbleFatalfOnItsOwnGoroutineReturns: a Fatalf on one of pebble's
// goroutines must neither exit nor panic (either kills the process); it
// faults the instance. A Fatalf inside guard panics and is recovered.
func TestPebbleFatalfOnItsOwnGoroutineReturns(t *testing.T) {
	var kinds []faultKind
	l := pebbleLogger{l: testOptionsLogger(), fault: func(k faultKind, err error) { kinds = append(kinds, k) }}
	done := make(chan struct{})
	go func() {
		defer close(done)
		l.Fatalf("pebble: background: %s", "no space left on device")
	}()
	<-done
	err := guard(func() error {
		l.Fatalf("pebble: fatal commit error: %s", "EIO")
		return nil
	})
	if !errors.Is(err, errPebbleFatal) {
		t.Fatalf("guarded Fatalf: %v, want errPebbleFatal", err)
	}
	if len(kinds) != 2 || kinds[0] != faultFull || kinds[1] != faultIO {
		t.Fatalf("faults %v, want [disk full, I/O error]", kinds)
	}
}

func testOptionsLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// TestFillReaderSurvivesAFaultMidFill: the WAL write that fails (no
// ballast) faults the tier in the middle of a fill; a reader following the
// fill still gets the whole body, from the chunks stored before and the
// writer's buffer after.
func TestFillReaderSurvivesAFaultMidFill(t *testing.T) {
	q := quotafs.New(vfs.Default, 1<<30)
	opts := testOptions(t)
	opts.FS = q
	opts.ReserveBytes = -1
	opts.RetryInterval = 50 * time.Millisecond
	opts.MaxMemoryObject = 1000 // the body is not kept whole for memory
	s := openTest(t, opts)
	ctx := context.Background()
	w, err := s.Create(ctx, "k", testMeta(), CreateOptions{SizeHint: -1})
	if err != nil {
		t.Fatal(err)
	}
	r := w.NewReader(ctx)
	defer r.Close()
	var want []byte
	for i := range 64 {
		if i == 20 {
			q.SetFree(0)
		}
		p := body(4096, byte(i))
		want = append(want, p...)
		if _, err := w.Write(p); err != nil {
			t.Fatalf("Write %d: %v", i, err)
		}
	}
	w.Seal()
	got, err := io.ReadAll(r)
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("reader across the fault: %d of %d bytes, %v", len(got), len(want), err)
	}
	if _, err := w.Commit(ctx); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Commit: %v, want ErrUnavailable", err)
	}
}
