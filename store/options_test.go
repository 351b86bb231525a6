package store

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/dgraph-io/ristretto/v2/z"
)

func TestOptionsValidateReportsEveryProblem(t *testing.T) {
	cases := []struct {
		name string
		opts Options
		want []string // substrings of the error; nil: valid
	}{
		{"defaults", Options{Dir: "/x"}, nil},
		{"no dir", Options{}, []string{"Dir"}},
		{"several", Options{Dir: "/x", DiskBytes: 10, ChunkSize: 10, EvictStart: 0.5, EvictTarget: 0.6},
			[]string{"DiskBytes 10", "ChunkSize 10", "EvictStart 0.5"}},
		{"negative max object", Options{Dir: "/x", MaxObject: -1}, []string{"MaxObject -1"}},
		{"simulated on the real file system", Options{Dir: "/x", Simulate: true, FS: vfs.Default}, []string{"Simulate"}},
		{"simulated", Options{Dir: "/x", Simulate: true}, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			o := tc.opts
			o.EnsureDefaults()
			err := o.Validate()
			if tc.want == nil {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("Validate accepted invalid options")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

func TestDiskHitIsPromotedToMemory(t *testing.T) {
	opts := testOptions(t)
	s := openTest(t, opts)
	put(t, s, "k", body(5000, 1), CreateOptions{SizeHint: -1})
	s.Close()
	s = openTest(t, opts)
	ctx := context.Background()
	o, err := s.Get(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	if b, ok := o.Body(); !ok || len(b) != 5000 {
		t.Fatal("small disk hit not read whole")
	}
	s.mem.c.Wait()
	if _, ok := s.mem.get("k", time.Time{}); !ok {
		t.Fatal("disk hit not promoted into the memory tier")
	}
	if st := s.Stats(); st.MemoryObjects != 1 || st.Hits != 1 || st.MemoryBytes <= 5000 {
		t.Fatalf("stats after promotion: %+v", st)
	}
	// A purge reaches the promoted copy.
	if n, _ := s.Purge(ctx, Selector{URL: "k"}, false); n != 1 {
		t.Fatalf("purged %d", n)
	}
	if _, err := s.Get(ctx, "k"); err == nil {
		t.Fatal("purged object served from memory")
	}
}

func TestLargeObjectsSkipMemory(t *testing.T) {
	opts := testOptions(t)
	opts.MaxMemoryObject = 1000
	s := openTest(t, opts)
	o := put(t, s, "big", body(1001, 1), CreateOptions{SizeHint: -1})
	if _, ok := o.Body(); ok {
		t.Fatal("object above MaxMemoryObject is resident")
	}
	s.mem.c.Wait()
	if _, ok := s.mem.get("big", time.Time{}); ok {
		t.Fatal("object above MaxMemoryObject in the memory tier")
	}
	o = put(t, s, "small", body(1000, 1), CreateOptions{SizeHint: -1})
	if _, ok := o.Body(); !ok {
		t.Fatal("object at MaxMemoryObject not resident")
	}
}

// TestPebbleMemoryFollowsTheBudgets: pebble's memtables and block cache
// live outside the Go heap, where the memory limit does not reach them,
// so their defaults stay small beside the memory budget (make soak-memory:
// with 16 MiB memtables and a 32 MiB block cache a filled 256 MiB cache
// peaked at 185-195 MiB RSS against 186, now 165-168).
func TestPebbleMemoryFollowsTheBudgets(t *testing.T) {
	cases := []struct {
		disk, memory         int64
		blockCache, memTable int64
	}{
		{2 << 30, 256 << 20, 32 << 20, 4 << 20},
		{2 << 30, 64 << 20, 8 << 20, 4 << 20},
		{2 << 30, -1, 32 << 20, 4 << 20}, // no memory tier
		{64 << 20, 256 << 20, 1 << 20, 512 << 10},
		{64 << 30, 4 << 30, 64 << 20, 4 << 20},
	}
	for _, c := range cases {
		o := Options{Dir: "/x", DiskBytes: c.disk, MemoryBytes: c.memory}
		o.EnsureDefaults()
		if o.BlockCacheBytes != c.blockCache || o.MemTableBytes != c.memTable {
			t.Errorf("disk %d, memory %d: block cache %d, memtable %d; want %d, %d",
				c.disk, c.memory, o.BlockCacheBytes, o.MemTableBytes, c.blockCache, c.memTable)
		}
	}
}

// TestGetAtTakesTheCallersReadingOfTheRealClock: on the real clock, a
// memory hit checks KeepUntil at the time the caller read (a reading past
// it drops the memory copy, as the clock would); on a test clock, the
// store reads its own and ignores the caller's.
func TestGetAtTakesTheCallersReadingOfTheRealClock(t *testing.T) {
	ctx := context.Background()
	opts := testOptions(t)
	s := openTest(t, opts)
	if !s.opts.realClock {
		t.Fatal("a store opened without a clock is not on the real one")
	}
	keep := time.Now().Add(time.Hour)
	put(t, s, "k", body(100, 1), CreateOptions{SizeHint: -1, KeepUntil: keep})
	s.mem.c.Wait()
	mem, err := s.GetAt(ctx, "k", keep.Add(-time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if again, ok := s.mem.get("k", time.Time{}); !ok || again != mem {
		t.Fatal("GetAt before KeepUntil did not answer from the memory tier")
	}
	// Past KeepUntil by the caller's reading, the memory copy is dropped;
	// the disk tier (on its own clock) reads the object back.
	if o, err := s.GetAt(ctx, "k", keep.Add(time.Second)); err == nil && o == mem {
		t.Error("GetAt past KeepUntil answered from the memory tier")
	}

	clk := newClock()
	opts = testOptions(t)
	opts.now = clk.now
	s = openTest(t, opts)
	put(t, s, "k", body(100, 1), CreateOptions{SizeHint: -1, KeepUntil: clk.now().Add(time.Minute)})
	s.mem.c.Wait()
	mem, _ = s.mem.get("k", time.Time{})
	if o, err := s.GetAt(ctx, "k", clk.now().Add(time.Hour)); err != nil || o != mem {
		t.Errorf("GetAt on a test clock took the caller's time: %v", err)
	}
}

// TestKeyToHashIsRistrettosOwn: the memory tier's key hash is the one
// ristretto would use by default, so that its admission decisions are
// unchanged.
func TestKeyToHashIsRistrettosOwn(t *testing.T) {
	for _, k := range []string{"", "k", "GET http://example.com/a?b=c", strings.Repeat("x", 1000)} {
		a1, b1 := keyToHash(k)
		a2, b2 := z.KeyToHash(k)
		if a1 != a2 || b1 != b2 {
			t.Errorf("keyToHash(%q) = %x %x, ristretto's %x %x", k, a1, b1, a2, b2)
		}
	}
}
