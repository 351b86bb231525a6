package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand"
	"slices"
	"testing"
	"time"
)

// simTrace is a replay for the simulation tests: requests for keys drawn
// from a Zipf distribution, each key with its own size (1 to 20 KiB, so
// that bodies span several 4 KiB chunks).
type simTrace struct {
	keys  []int
	sizes map[int]int
}

func newSimTrace(n, objects int) simTrace {
	rng := rand.New(rand.NewSource(1))
	z := rand.NewZipf(rng, 1.1, 2, uint64(objects-1))
	tr := simTrace{sizes: make(map[int]int)}
	for range n {
		k := int(z.Uint64())
		tr.keys = append(tr.keys, k)
		if _, ok := tr.sizes[k]; !ok {
			tr.sizes[k] = 1<<10 + rng.Intn(19<<10)
		}
	}
	return tr
}

// replay looks each key up and fills it on a miss, as `cellar bench sim`
// does, calling committed after each commit. It returns the hits, the
// fills refused (ErrUnavailable: the real store's space gate, while
// compactions lag) and the keys the disk tier holds at the end.
func (tr simTrace) replay(t *testing.T, s *Store, committed func()) (hits, refused int, resident []string) {
	t.Helper()
	ctx := context.Background()
	body := bytes.Repeat([]byte("cellar simulation "), 20<<10/18+1)
	for _, k := range tr.keys {
		key := fmt.Sprintf("http://h/%d", k)
		if _, err := s.Get(ctx, key); err == nil {
			hits++
			continue
		} else if !errors.Is(err, ErrNotFound) {
			t.Fatal(err)
		}
		w, err := s.Create(ctx, key, testMeta(), CreateOptions{SizeHint: int64(tr.sizes[k])})
		if errors.Is(err, ErrUnavailable) {
			refused++
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(body[:tr.sizes[k]]); err != nil {
			t.Fatal(err)
		}
		if _, err := w.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		committed()
	}
	d := s.acquire()
	defer d.release()
	d.mu.Lock()
	for k := range d.index {
		resident = append(resident, k)
	}
	d.mu.Unlock()
	slices.Sort(resident)
	return hits, refused, resident
}

// TestSimulateKeepsWhatTheRealStoreKeeps replays one trace through a
// simulated store (Options.Simulate) and through a store on the real file
// system, with real bodies, WAL and compression, whose eviction is also
// run after each commit (its background loop stopped): what the
// simulation skips must not change the hits, the objects kept or the
// bytes charged for them.
func TestSimulateKeepsWhatTheRealStoreKeeps(t *testing.T) {
	tr := newSimTrace(4000, 2000)
	opts := testOptions(t)
	opts.DiskBytes = 2 << 20 // about 130 of the trace's 2000 objects
	opts.MemoryBytes = 512 << 10
	opts.ReserveBytes = -1
	opts.NoSync = true // the real store's fsyncs would only make the test slow

	real := openTest(t, opts)
	d := real.acquire()
	// The simulation evicts at each commit; stop the real store's loop and
	// do the same, so that only the I/O differs.
	close(d.done)
	d.wg.Wait()
	d.done = make(chan struct{})
	d.release()
	realHits, refused, realKept := tr.replay(t, real, func() {
		d.evictObjects()
		// As the loop does every 250 ms, and when pebble's files pass
		// the space gate's limit.
		d.measureSpace()
		if d.overSpace() {
			d.makeSpace()
		}
	})

	opts.Dir = t.TempDir()
	opts.NoSync = false
	opts.Simulate = true
	sim := openTest(t, opts)
	simHits, simRefused, simKept := tr.replay(t, sim, func() {})
	if simRefused > 0 || refused > len(tr.keys)/100 {
		t.Errorf("fills refused: simulated %d, real %d", simRefused, refused)
	}

	if len(realKept) < 100 {
		t.Fatalf("the real store kept %d objects; the test wants a full budget", len(realKept))
	}
	// The replacement policy hashes keys with a seed of its own per store,
	// so that its frequency sketch collides differently from run to run:
	// two simulations of this trace differ by up to about 0.5% of the
	// requests in hits and 10% in the objects kept (most of them near the
	// probation tail), and so may the real store and the simulation. A
	// charge or an eviction of its own in the simulation moves more.
	if diff := realHits - simHits; diff < -len(tr.keys)/100 || diff > len(tr.keys)/100 {
		t.Errorf("hits: simulated %d, real %d", simHits, realHits)
	}
	if diff := len(simKept) - len(realKept); diff < -len(realKept)/10 || diff > len(realKept)/10 {
		t.Errorf("objects kept: simulated %d, real %d", len(simKept), len(realKept))
	}
	common := 0
	for _, k := range simKept {
		if _, ok := slices.BinarySearch(realKept, k); ok {
			common++
		}
	}
	rs, ss := real.Stats(), sim.Stats()
	if rs.DiskObjectBudget != ss.DiskObjectBudget {
		t.Errorf("budget for objects: simulated %d, real %d", ss.DiskObjectBudget, rs.DiskObjectBudget)
	}
	// Both fill the policy to EvictTarget of the budget.
	if diff := rs.DiskBytes - ss.DiskBytes; diff < -rs.DiskObjectBudget/20 || diff > rs.DiskObjectBudget/20 {
		t.Errorf("bytes charged: simulated %d, real %d of %d", ss.DiskBytes, rs.DiskBytes, rs.DiskObjectBudget)
	}
	t.Logf("hits: simulated %d, real %d (%d fills refused); kept: simulated %d (%d bytes), real %d (%d bytes), %d in common",
		simHits, realHits, refused, len(simKept), ss.DiskBytes, len(realKept), rs.DiskBytes, common)
}

// TestSimulatedBodiesReadAsZeros: a simulated store writes no bodies, but
// every way of reading one gives its whole length, in zeros.
func TestSimulatedBodiesReadAsZeros(t *testing.T) {
	opts := testOptions(t)
	opts.Simulate = true
	opts.MaxMemoryObject = 8 << 10
	s := openTest(t, opts)
	ctx := context.Background()
	for _, size := range []int{0, 100, 4 << 10, 10<<10 + 7, 100 << 10} {
		key := fmt.Sprintf("http://h/%d", size)
		w, err := s.Create(ctx, key, testMeta(), CreateOptions{SizeHint: -1})
		if err != nil {
			t.Fatal(err)
		}
		follow := w.NewReader(ctx)
		if _, err := w.Write(bytes.Repeat([]byte{'x'}, size)); err != nil {
			t.Fatal(err)
		}
		if _, err := w.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(follow)
		follow.Close()
		if err != nil || len(got) != size || bytes.ContainsFunc(got, func(r rune) bool { return r != 0 }) {
			t.Errorf("size %d: reader following the fill got %d bytes, err %v; want %d zeros", size, len(got), err, size)
		}
		o, err := s.Get(ctx, key)
		if err != nil {
			t.Fatalf("size %d: Get: %v", size, err)
		}
		r, err := s.NewReader(ctx, o, 0, -1)
		if err != nil {
			t.Fatal(err)
		}
		got, err = io.ReadAll(r)
		r.Close()
		if err != nil || len(got) != size || bytes.ContainsFunc(got, func(r rune) bool { return r != 0 }) {
			t.Errorf("size %d: stored body read as %d bytes, err %v; want %d zeros", size, len(got), err, size)
		}
	}
}

// TestSimulatedStorePurgesByTag: a simulated store evicts without reading
// meta records, so the tag entries of evicted objects stay behind; a tag
// purge still removes exactly the objects held, and cleans the rest.
func TestSimulatedStorePurgesByTag(t *testing.T) {
	opts := testOptions(t)
	opts.Simulate = true
	opts.DiskBytes = 2 << 20
	opts.ReserveBytes = -1
	opts.MemoryBytes = -1
	s := openTest(t, opts)
	ctx := context.Background()
	for i := range 200 {
		w, err := s.Create(ctx, fmt.Sprintf("http://h/%d", i), testMeta(), CreateOptions{SizeHint: 10 << 10, Tags: []string{"t"}})
		if err != nil {
			t.Fatal(err)
		}
		w.Write(make([]byte, 10<<10))
		if _, err := w.Commit(ctx); err != nil {
			t.Fatal(err)
		}
	}
	held := s.Stats().DiskObjects
	if held == 0 || held >= 200 {
		t.Fatalf("%d of 200 objects held; the test wants evictions", held)
	}
	n, err := s.Purge(ctx, Selector{Tag: "t"}, false)
	if err != nil || int64(n) != held {
		t.Fatalf("tag purge: %d, %v; want the %d objects held", n, err, held)
	}
	if st := s.Stats(); st.DiskObjects != 0 {
		t.Errorf("%d objects left after the tag purge", st.DiskObjects)
	}
	if n, err := s.Purge(ctx, Selector{Tag: "t"}, false); err != nil || n != 0 {
		t.Errorf("second tag purge: %d, %v; want 0", n, err)
	}
}

// TestSimulatedStoreServesUpdatedMeta: a simulated store keeps each meta
// record beside its index entry rather than read it back on a hit; an
// update must reach that copy.
func TestSimulatedStoreServesUpdatedMeta(t *testing.T) {
	opts := testOptions(t)
	opts.Simulate = true
	opts.MemoryBytes = -1 // every hit goes to the disk tier
	s := openTest(t, opts)
	ctx := context.Background()
	w, err := s.Create(ctx, "http://h/a", testMeta(), CreateOptions{SizeHint: 10})
	if err != nil {
		t.Fatal(err)
	}
	w.Write(make([]byte, 10))
	if _, err := w.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	m := testMeta()
	m.Header.Set("Etag", `"y"`)
	if err := s.UpdateMeta(ctx, "http://h/a", m, time.Time{}); err != nil {
		t.Fatal(err)
	}
	o, err := s.Get(ctx, "http://h/a")
	if err != nil {
		t.Fatal(err)
	}
	if got := o.Meta.Header.Get("Etag"); got != `"y"` {
		t.Errorf("Etag after the update = %s, want \"y\"", got)
	}
}
