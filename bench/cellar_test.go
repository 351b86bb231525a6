package bench

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
)

// TestCellarStoreNearTheReferencePolicy replays the shipped gli trace and
// the first 60,000 requests of loop, with 4 KiB objects, through the real
// store (-policy cellar) and the reference W-TinyLFU at equal bytes. Both
// traces punish recency and reward frequency. The store's former policy
// (its hill climber ran the window up to plain LRU, and a key kept newest
// skipped admission) hit 17.9% and 31.3% on gli at 500 and 1000 objects and
// 0% on loop at 500, against the reference's 33.3%, 50.7% and 47.5%.
func TestCellarStoreNearTheReferencePolicy(t *testing.T) {
	if testing.Short() {
		t.Skip("replays traces through pebble")
	}
	ctx := context.Background()
	for _, c := range []struct {
		file     string
		requests int
		objects  int64
	}{
		{"lirs-gli.trace.gz", 0, 500},
		{"lirs-gli.trace.gz", 0, 1000},
		{"lirs-loop.trace.gz", 60_000, 500},
	} {
		tr, err := Load(filepath.Join(tracesDir, c.file), "")
		if err != nil {
			t.Fatal(err)
		}
		if err := tr.SetObjectSize(4096); err != nil {
			t.Fatal(err)
		}
		reqs := tr.Requests
		if c.requests > 0 {
			reqs = reqs[:c.requests]
		}
		ref, err := Replay(ctx, NewWTinyLFUBytes(c.objects*4096, 4096), reqs, nil)
		if err != nil {
			t.Fatal(err)
		}
		p, err := newCellarPolicy(ctx, c.objects*4096, true, 0.1, 4096, 1)
		if err != nil {
			t.Fatal(err)
		}
		got, err := Replay(ctx, p, reqs, nil)
		if err := p.Close(); err != nil {
			t.Fatal(err)
		}
		if err != nil {
			t.Fatal(err)
		}
		// The store holds about 9% fewer objects at equal bytes (the
		// per-object charge and the room for fills in progress): it may
		// trail the reference by that, not by the climber's 25-35%.
		t.Logf("%s at %d objects: store %.2f%%, W-TinyLFU %.2f%%", c.file, c.objects, 100*got.HitRatio, 100*ref.HitRatio)
		if got.HitRatio < 0.85*ref.HitRatio {
			t.Errorf("%s at %d objects: the store hit %.2f%%, the reference W-TinyLFU %.2f%%; want at least 85%% of it", c.file, c.objects, 100*got.HitRatio, 100*ref.HitRatio)
		}
	}
}

// TestCellarSeedRepeatsTheReplay replays gli twice through the store with
// the same seed: the store's policy hashes with it, so the replays make
// the same decisions (before the seed, the hash was seeded at random per
// store and the figures moved by up to 2 points between runs).
func TestCellarSeedRepeatsTheReplay(t *testing.T) {
	if testing.Short() {
		t.Skip("replays a trace through pebble")
	}
	ctx := context.Background()
	tr, err := Load(filepath.Join(tracesDir, "lirs-gli.trace.gz"), "")
	if err != nil {
		t.Fatal(err)
	}
	if err := tr.SetObjectSize(4096); err != nil {
		t.Fatal(err)
	}
	var hits []int64
	for range 2 {
		p, err := newCellarPolicy(ctx, 1000*4096, true, 0.1, 4096, 9)
		if err != nil {
			t.Fatal(err)
		}
		res, err := Replay(ctx, p, tr.Requests, nil)
		if err := errors.Join(err, p.Close()); err != nil {
			t.Fatal(err)
		}
		hits = append(hits, res.Hits)
	}
	if hits[0] != hits[1] {
		t.Errorf("two replays with seed 9 hit %d and %d times; want the same", hits[0], hits[1])
	}
}
