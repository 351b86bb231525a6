package store

import (
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

	"github.com/cellar-cache/cellar/internal/bytesize"
	"github.com/cockroachdb/pebble/v2"
)

// TestDataDirStaysWithinBudget fills the store with twice its DiskBytes
// of incompressible objects and checks that the data directory (pebble's
// tables, WALs and MANIFEST, the ballast) never grows past DiskBytes + 5%,
// with eviction running in the background as in production. The budgets
// are CELLAR_BUDGET_SIZES (comma-separated, e.g. "32MiB,256MiB,2GiB" for
// the figures in the issue note); by default 32 MiB.
func TestDataDirStaysWithinBudget(t *testing.T) {
	sizes := []int64{32 << 20}
	if env := os.Getenv("CELLAR_BUDGET_SIZES"); env != "" {
		sizes = nil
		for _, f := range strings.Split(env, ",") {
			n, err := bytesize.Parse(strings.TrimSpace(f))
			if err != nil {
				t.Fatal(err)
			}
			sizes = append(sizes, n)
		}
	}
	for _, budget := range sizes {
		t.Run(bytesize.Format(budget), func(t *testing.T) {
			opts := testOptions(t)
			opts.DiskBytes = budget
			opts.MemoryBytes = -1
			opts.ChunkSize = 0 // default 64 KiB
			s := openTest(t, opts)
			var peak int64
			const obj = 100 << 10
			n := int(2 * budget / obj)
			rng := rand.New(rand.NewPCG(1, 2))
			refused := 0
			ctx := context.Background()
			for i := range n {
				// Storing pauses while compactions catch up (the space
				// gate): such a fill is refused, as on a full disk, and
				// tried again as a client would, a little later. How many
				// are refused depends on how fast compactions run beside
				// the loop (machine load); that the gate reopens does not.
				deadline := time.Now().Add(time.Minute)
				for {
					err := func() error {
						w, err := s.Create(ctx, fmt.Sprintf("http://h/%d", i), testMeta(), CreateOptions{SizeHint: obj})
						if err != nil {
							return err
						}
						w.Write(randomBody(rng, obj))
						_, err = w.Commit(ctx)
						return err
					}()
					if err == nil {
						break
					}
					if !errors.Is(err, ErrUnavailable) {
						t.Fatal(err)
					}
					refused++
					if time.Now().After(deadline) {
						t.Fatalf("fill %d of %d refused for a minute: the space gate did not reopen (%v)", i, n, err)
					}
					time.Sleep(time.Millisecond)
				}
				if i%max(1, n/400) == 0 {
					peak = max(peak, dirSize(t, opts.Dir))
				}
			}
			peak = max(peak, dirSize(t, opts.Dir))
			st := s.Stats()
			t.Logf("-disk %s: after a 2x fill (%d refusals of %d fills while compactions caught up) the data dir peaked at %s (%.1f%% of -disk), ends at %s; objects charged %s of %s",
				bytesize.Format(budget), refused, n, bytesize.Format(peak), 100*float64(peak)/float64(budget),
				bytesize.Format(dirSize(t, opts.Dir)), bytesize.Format(st.DiskBytes), bytesize.Format(st.DiskObjectBudget))
			if peak > budget+budget/20 {
				t.Fatalf("data directory peaked at %d bytes, budget %d (+5%%)", peak, budget)
			}
			if st.Evictions == 0 || st.DiskBytes > budget {
				t.Fatalf("no eviction or over budget: %+v", st)
			}
		})
	}
}

func TestCorruptRecordIsMissDeletedAndCounted(t *testing.T) {
	opts := testOptions(t)
	opts.MaxMemoryObject = 10_000
	s := openTest(t, opts)
	put(t, s, "meta", body(100, 1), CreateOptions{Tags: []string{"t"}, SizeHint: -1})
	put(t, s, "bigchunk", body(30_000, 2), CreateOptions{SizeHint: -1})  // streamed from disk
	put(t, s, "smallchunk", body(3_000, 3), CreateOptions{SizeHint: -1}) // read whole on a disk hit
	put(t, s, "fine", body(3_000, 4), CreateOptions{SizeHint: -1})
	put(t, s, "updated", body(3_000, 5), CreateOptions{SizeHint: -1})
	s.Close()

	// Flip one value byte of three records with a raw pebble handle.
	db, err := pebble.Open(filepath.Join(opts.Dir, "db"), &pebble.Options{Logger: quietLogger{}})
	if err != nil {
		t.Fatal(err)
	}
	flip := func(k []byte, at int) {
		v, closer, err := db.Get(k)
		if err != nil {
			t.Fatalf("raw get %q: %v", k, err)
		}
		v = append([]byte(nil), v...)
		closer.Close()
		v[at] ^= 0x40
		if err := db.Set(k, v, pebble.Sync); err != nil {
			t.Fatal(err)
		}
	}
	fillOf := func(key string) uint64 {
		v, closer, err := db.Get(metaKey(key))
		if err != nil {
			t.Fatal(err)
		}
		defer closer.Close()
		rec, err := decodeMeta(v)
		if err != nil {
			t.Fatal(err)
		}
		return rec.fill
	}
	flip(metaKey("meta"), 10)
	flip(chunkKey(nil, fillOf("bigchunk"), 1), 100)
	flip(chunkKey(nil, fillOf("smallchunk"), 0), 2000)
	db.Close()

	s = openTest(t, opts)
	ctx := context.Background()
	// Corrupt a record under the running store, through its own handle.
	v, closer, err := s.cur().db.Get(metaKey("updated"))
	if err != nil {
		t.Fatal(err)
	}
	v = append([]byte(nil), v...)
	closer.Close()
	v[12] ^= 1
	s.cur().db.Set(metaKey("updated"), v, pebble.NoSync)
	if err := s.UpdateMeta(ctx, "updated", testMeta(), time.Time{}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("UpdateMeta of a corrupt record: %v, want ErrNotFound", err)
	}
	if _, err := s.Get(ctx, "meta"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("corrupt meta record: %v, want ErrNotFound", err)
	}
	if _, err := s.Get(ctx, "smallchunk"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("corrupt chunk of small object: %v, want ErrNotFound", err)
	}
	o, err := s.Get(ctx, "bigchunk")
	if err != nil {
		t.Fatalf("big object's meta is intact, Get: %v", err)
	}
	r, err := s.NewReader(ctx, o, 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadAll(r); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("reading a corrupt chunk: %v, want ErrCorrupt", err)
	}
	r.Close()
	if _, err := s.Get(ctx, "bigchunk"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("object with a corrupt chunk still served: %v", err)
	}
	if o, err := s.Get(ctx, "fine"); err != nil || o.Size != 3000 {
		t.Fatalf("intact object: %v", err)
	}
	if st := s.Stats(); st.Corrupt != 4 || st.DiskObjects != 1 {
		t.Fatalf("stats: Corrupt %d DiskObjects %d, want 4 and 1", st.Corrupt, st.DiskObjects)
	}
	s.Close()
	if n := rawKeys(t, opts.Dir, prefixChunk); n != 1 {
		t.Fatalf("%d chunk records left, want 1 (fine's)", n)
	}
}

// randomBody returns n incompressible bytes.
func randomBody(rng *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := 0; i < n; i += 8 {
		v := rng.Uint64()
		for j := i; j < min(i+8, n); j++ {
			b[j] = byte(v)
			v >>= 8
		}
	}
	return b
}

var _ = slog.Default

func TestEvictionKeepsRecentlyUsedObjects(t *testing.T) {
	clk := newClock()
	opts := testOptions(t)
	opts.DiskBytes = 4 << 20
	opts.MemoryBytes = -1
	opts.now = clk.now
	s := openTest(t, opts)
	ctx := context.Background()
	hot := []string{"hot/1", "hot/2", "hot/3"}
	for _, k := range hot {
		put(t, s, k, body(50_000, 1), CreateOptions{SizeHint: -1})
	}
	for i := range 200 { // 10 MB through a 4 MiB budget
		clk.advance(time.Second)
		put(t, s, fmt.Sprintf("cold/%d", i), body(50_000, 2), CreateOptions{SizeHint: -1})
		for _, k := range hot {
			if _, err := s.Get(ctx, k); err != nil {
				t.Fatalf("hot object %s evicted after %d fills: %v", k, i, err)
			}
		}
		s.cur().evict()
	}
	if s.Stats().Evictions < 100 {
		t.Fatalf("only %d evictions", s.Stats().Evictions)
	}
}
