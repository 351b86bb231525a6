package store

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"
)

// TestReserveFollowsTheFillsInFlight: with nothing in flight the objects
// fill nearly the whole budget (the policy kept 3% free for fills before);
// a fill in progress makes the policy evict as much as it has written, so
// that objects and the fill stay within the budget; its commit gives the
// room back to the object, and an aborted fill gives it back to the policy.
func TestReserveFollowsTheFillsInFlight(t *testing.T) {
	opts := testOptions(t)
	opts.MemoryBytes = -1
	opts.DiskBytes = 16 << 20
	s := openTest(t, opts)
	d := s.acquire()
	defer d.release()
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(5, 6))
	const obj = 4 << 10
	// What the background loop does when it wakes: measure pebble's
	// files, compact if storing paused, evict.
	settle := func() {
		d.measureSpace()
		if d.overSpace() {
			d.makeSpace()
		}
		d.evictObjects()
	}
	// Storing pauses while deletions wait for compaction (the space gate):
	// settle as the loop would, then store.
	store := func(key string) {
		t.Helper()
		for range 3 {
			w, err := s.Create(ctx, key, testMeta(), CreateOptions{SizeHint: obj})
			if errors.Is(err, ErrUnavailable) {
				settle()
				continue
			}
			if err != nil {
				t.Fatal(err)
			}
			w.Write(randomBody(rng, obj))
			if _, err := w.Commit(ctx); err != nil {
				t.Fatal(err)
			}
			return
		}
		t.Fatalf("storing %q: still paused after compacting", key)
	}
	// Just over the budget, then compacted: the policy shrinks while
	// pebble's files near the space gate (deletions not yet compacted),
	// and the room goes back to the objects once compactions catch up.
	store("k0000")
	for i := range int(d.budget/d.used.Load()) + 8 {
		store(fmt.Sprintf("k%04d", i))
	}
	compact := func() {
		t.Helper()
		if err := d.db.Compact(ctx, []byte{0}, []byte{0xff}, true); err != nil {
			t.Fatal(err)
		}
		settle()
	}
	compact()
	for i := range 32 {
		store(fmt.Sprintf("m%d", i))
	}
	settle()
	full := d.charged()
	if full < d.budget*98/100 || full > d.budget {
		t.Fatalf("with nothing in flight objects take %d bytes of a %d-byte budget (%.2f%%); want at least 98%% (it kept 3%% free before)",
			full, d.budget, 100*float64(full)/float64(d.budget))
	}

	big := 64 * int64(opts.ChunkSize)
	w, err := s.Create(ctx, "big", testMeta(), CreateOptions{SizeHint: big})
	if err != nil {
		t.Fatal(err)
	}
	w.Write(randomBody(rng, int(big)))
	settle()
	if f := d.filling.Load(); f < big-int64(opts.ChunkSize) {
		t.Fatalf("fills in progress charged %d bytes, want about %d", f, big)
	}
	if u := d.charged(); u > d.budget {
		t.Errorf("a fill in progress took the charge to %d bytes, past the %d-byte budget ", u, d.budget)
	}
	if c := d.policyCap.Load(); c > int64(d.opts.EvictTarget*float64(d.budget))-d.filling.Load() {
		t.Errorf("policy capacity %d, want at most EvictTarget of the budget less %d in flight", c, d.filling.Load())
	}
	if _, err := w.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	settle()
	if _, err := s.Get(ctx, "big"); err != nil {
		t.Errorf("the committed fill is not held: %v", err)
	}
	if f, u := d.filling.Load(), d.charged(); f != 0 || u > d.budget {
		t.Errorf("after the commit: %d bytes in flight, %d charged of %d; want 0 and within the budget", f, u, d.budget)
	}

	w, err = s.Create(ctx, "aborted", testMeta(), CreateOptions{SizeHint: big})
	if err != nil {
		t.Fatal(err)
	}
	w.Write(randomBody(rng, int(big)))
	settle()
	w.Abort()
	if f := d.filling.Load(); f != 0 {
		t.Errorf("after an abort %d bytes still in flight", f)
	}
	// The room goes back to the objects once the deletions are compacted.
	compact()
	for i := range 2 * big / obj {
		store(fmt.Sprintf("n%d", i))
	}
	settle()
	if u := d.charged(); u < d.budget*98/100 {
		t.Errorf("after an abort and new objects: %d charged of %d (%.2f%%); want at least 98%%", u, d.budget, 100*float64(u)/float64(d.budget))
	}
}
