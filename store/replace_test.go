package store

import (
	"bufio"
	"compress/gzip"
	"container/list"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/ulikunitz/xz"
)

// TestDiskTierKeepsFrequentObjectsThroughAScan: objects requested often
// survive a scan of one-time objects twice the disk budget. The disk
// tier's former sampled LRU evicted all of them (nothing touched them
// during the scan); W-TinyLFU admission turns the scan away.
func TestDiskTierKeepsFrequentObjectsThroughAScan(t *testing.T) {
	opts := testOptions(t)
	opts.DiskBytes = 4 << 20
	opts.MemoryBytes = -1
	opts.MeanObjectSize = 8 << 10
	s := openTest(t, opts)
	ctx := context.Background()
	const hot = 40
	for i := range hot {
		put(t, s, fmt.Sprintf("hot/%d", i), body(8<<10, 1), CreateOptions{SizeHint: -1})
	}
	for range 5 {
		for i := range hot {
			if _, err := s.Get(ctx, fmt.Sprintf("hot/%d", i)); err != nil {
				t.Fatal(err)
			}
		}
	}
	budget := s.Stats().DiskObjectBudget
	scan := int(2 * budget / (8 << 10))
	for i := range scan {
		key := fmt.Sprintf("cold/%d", i)
		if _, err := s.Get(ctx, key); err == nil {
			t.Fatalf("%s found before it was stored", key)
		}
		put(t, s, key, body(8<<10, 2), CreateOptions{SizeHint: -1})
		s.cur().evict()
	}
	kept := 0
	for i := range hot {
		if e, _, _ := s.cur().lookup(fmt.Sprintf("hot/%d", i)); e != nil {
			kept++
		}
	}
	st := s.Stats()
	if kept < hot*9/10 {
		t.Errorf("%d of %d frequent objects survived a scan of %d one-time objects (stats %+v)", kept, hot, scan, st)
	}
	if st.DiskBytes > budget || st.Evictions < int64(scan/2) {
		t.Errorf("charge %d of budget %d, %d evictions: eviction did not keep up", st.DiskBytes, budget, st.Evictions)
	}
}

// TestDiskTierFillsItsBudget: in steady state the disk tier holds at least
// 90% of its budget for objects (it held 65-75% when it evicted in the
// background between those marks).
func TestDiskTierFillsItsBudget(t *testing.T) {
	opts := testOptions(t)
	opts.DiskBytes = 8 << 20
	opts.MemoryBytes = -1
	opts.MeanObjectSize = 8 << 10
	s := openTest(t, opts)
	budget := s.Stats().DiskObjectBudget
	n := int(2 * budget / (8 << 10))
	low := int64(-1)
	for i := range n {
		put(t, s, fmt.Sprintf("o/%d", i), body(8<<10, byte(i)), CreateOptions{SizeHint: -1})
		s.cur().evict()
		if st := s.Stats(); i > n/2 && (low < 0 || st.DiskBytes < low) {
			low = st.DiskBytes
		}
	}
	st := s.Stats()
	if st.Evictions == 0 || st.DiskBytes > budget {
		t.Fatalf("stats %+v: want evictions and the charge within the budget %d", st, budget)
	}
	if low < budget*9/10 {
		t.Errorf("the charge fell to %d bytes in steady state, %.1f%% of the budget %d; want at least 90%%", low, 100*float64(low)/float64(budget), budget)
	}
}

// TestReplacerRebuiltOnReopen: after a restart the policy knows the stored
// objects again, so eviction goes on keeping the store within its budget
// and a frequent object found on disk stays.
func TestReplacerRebuiltOnReopen(t *testing.T) {
	opts := testOptions(t)
	opts.DiskBytes = 4 << 20
	opts.MemoryBytes = -1
	opts.MeanObjectSize = 8 << 10
	s, err := Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	budget := s.Stats().DiskObjectBudget
	n := int(budget / (8 << 10))
	for i := range n {
		put(t, s, fmt.Sprintf("a/%d", i), body(8<<10, 1), CreateOptions{SizeHint: -1})
		s.cur().evict()
	}
	before := s.Stats().DiskObjects
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openTest(t, opts)
	d := s.cur()
	d.repl.mu.Lock()
	held := d.repl.p.Len()
	d.repl.mu.Unlock()
	if st := s.Stats(); st.DiskObjects != before || int64(held) != before {
		t.Fatalf("after reopen: %d objects stored, %d in the policy; want %d", st.DiskObjects, held, before)
	}
	ctx := context.Background()
	for range 3 {
		if _, err := s.Get(ctx, "a/0"); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 2 * n {
		put(t, s, fmt.Sprintf("b/%d", i), body(8<<10, 2), CreateOptions{SizeHint: -1})
		s.cur().evict()
	}
	st := s.Stats()
	if st.DiskBytes > budget || st.Evictions < int64(n) {
		t.Errorf("after reopen: charge %d of budget %d with %d evictions", st.DiskBytes, budget, st.Evictions)
	}
	if e, _, _ := s.cur().lookup("a/0"); e == nil {
		t.Errorf("the object requested after the restart was evicted by one-time objects")
	}
}

// TestDiskTierKeepsPartOfALoop: a loop over a quarter more objects than
// the disk budget holds. LRU hits nothing on it (each object is evicted
// just before its turn comes again); the policy's window must shrink so
// that frequency admission keeps a fixed part of the loop. The store's
// policy used to grow its window to plain LRU here and stay there (its
// hill climber saw no change in a hit ratio of zero).
func TestDiskTierKeepsPartOfALoop(t *testing.T) {
	opts := testOptions(t)
	opts.DiskBytes = 4 << 20
	opts.MemoryBytes = -1
	opts.MeanObjectSize = 16 << 10
	opts.NoSync = true
	s := openTest(t, opts)
	ctx := context.Background()
	fit := int(float64(s.Stats().DiskObjectBudget) * s.opts.EvictTarget / (16<<10 + 300))
	if fit < 50 {
		t.Fatalf("%d objects fit the budget; the test needs at least 50", fit)
	}
	n := fit * 5 / 4
	hits, requests := 0, 0
	for round := range 30 {
		for i := range n {
			key := fmt.Sprintf("loop/%d", i)
			_, err := s.Get(ctx, key)
			if round >= 12 { // the first rounds warm up and adapt
				requests++
				if err == nil {
					hits++
				}
			}
			if err == nil {
				continue
			}
			w, err := s.Create(ctx, key, testMeta(), CreateOptions{SizeHint: 16 << 10})
			if err != nil {
				continue // storing paused for a moment: a miss
			}
			if _, err := w.Write(body(16<<10, byte(i))); err != nil {
				t.Fatal(err)
			}
			if _, err := w.Commit(ctx); err != nil {
				t.Fatal(err)
			}
			s.cur().evict()
		}
	}
	// The optimum keeps fit-1 of the n objects: 4/5 of the requests. The
	// store's former policy got 0.55-0.71 here, this one 0.76-0.79.
	t.Logf("fit %d n %d hits %d requests %d", fit, n, hits, requests)
	if r := float64(hits) / float64(requests); r < 0.72 {
		t.Errorf("hit ratio %.3f on a loop of %d objects, %d of which fit; want at least 0.72", r, n, fit)
	}
}

// TestReplacerHitsWhateverTheSeed replays two LIRS traces through the disk
// tier's policy, configured as the store configures it, with seeds that
// the policy once handled much worse than others (its hash is seeded, so
// the figures moved from run to run):
//   - loop at 800 objects, seed 5: equally frequent keys displaced each
//     other (one sketch count apart from noise); 68-70% against 77.7-78.4%
//     for the other seeds (the store in bench sim at 3200 KiB: 63.5%
//     against 71%). SetWarmMargin.
//   - gli at 455 and 910 objects (the store's count at 2000 and 4000 KiB),
//     seeds 4 and 9: one-time keys sharing sketch counters with frequent
//     ones were admitted; 27.6% and 46.7% against 30.3-30.5% and 47.9-
//     48.9%. WidenSketch.
func TestReplacerHitsWhateverTheSeed(t *testing.T) {
	if testing.Short() {
		t.Skip("replays 505,500 requests")
	}
	loop, gli := traceKeys(t, "lirs-loop.trace.gz"), traceKeys(t, "lirs-gli.trace.gz")
	for _, c := range []struct {
		name    string
		keys    []string
		objects int64
		seed    uint64
		want    float64
	}{
		{"loop", loop, 800, 5, 0.775},
		{"loop", loop, 800, 6, 0.775},
		{"gli", gli, 455, 4, 0.30},
		{"gli", gli, 910, 9, 0.48},
	} {
		r := newReplacer(c.objects, c.objects, c.seed, nil)
		hits := 0
		for _, k := range c.keys {
			if r.p.Access(k) {
				hits++
				continue
			}
			r.p.Add(k, 1, func(string) {})
		}
		ratio := float64(hits) / float64(len(c.keys))
		t.Logf("%s at %d objects, seed %d: %.2f%%", c.name, c.objects, c.seed, 100*ratio)
		if ratio < c.want {
			t.Errorf("%s at %d objects, seed %d: the policy hit %.2f%%; want at least %.1f%%", c.name, c.objects, c.seed, 100*ratio, 100*c.want)
		}
	}
}

// TestReplacerKeepsBytesOfVariedSizes replays the adaptsize trace (objects
// of 1 B to 4 MB, 67k requests) through the disk tier's policy, weighted by
// bytes as the store weighs objects, for seeds 1 to 3, and checks that its
// hit ratio and byte hit ratio are at least LRU's for every seed. Two
// decisions of the policy make it so:
//   - the shadows' periods are a quarter request per expected key and start
//     when the policy fills: with periods of one request per expected key
//     counted from the first request, the policy kept its initial 1% window
//     at 128 MiB until the last fifth of the trace (which fills the cache in
//     its first half) and hit 40.9% of the bytes against LRU's 41.2%;
//   - a heavy candidate competes with the victims it displaces on average
//     (SetAdmitByBytes): beating each in turn, it hit 38.8-39.5% of the
//     bytes at 64 MiB depending on the seed (LRU 38.85%), now 39.9-40.1%.
func TestReplacerKeepsBytesOfVariedSizes(t *testing.T) {
	if testing.Short() {
		t.Skip("replays the adaptsize trace 8 times")
	}
	keys, sizes := sizedTrace(t, "adaptsize-request.trace.xz")
	var total int64
	for _, s := range sizes {
		total += s
	}
	mean := total / int64(len(sizes))
	for _, capacity := range []int64{64 << 20, 128 << 20} {
		lruHits, lruBytes := lruReplay(keys, sizes, capacity)
		lru, lruB := float64(lruHits)/float64(len(keys)), float64(lruBytes)/float64(total)
		for seed := uint64(1); seed <= 3; seed++ {
			r := newReplacer(capacity, capacity/mean, seed, nil)
			var hits int
			var bytes int64
			for i, k := range keys {
				if r.p.Access(k) {
					hits++
					bytes += sizes[i]
					continue
				}
				r.p.Add(k, sizes[i], func(string) {})
			}
			h, b := float64(hits)/float64(len(keys)), float64(bytes)/float64(total)
			t.Logf("%d MiB, seed %d: hit %.2f%% (bytes %.2f%%); LRU %.2f%% (%.2f%%)", capacity>>20, seed, 100*h, 100*b, 100*lru, 100*lruB)
			if h < lru || b < lruB {
				t.Errorf("%d MiB, seed %d: the policy hit %.2f%% (bytes %.2f%%); LRU %.2f%% (%.2f%%); want at least LRU's", capacity>>20, seed, 100*h, 100*b, 100*lru, 100*lruB)
			}
		}
	}
}

// lruReplay replays keys of the given sizes through an LRU of capacity
// bytes and returns its hits and the bytes they served.
func lruReplay(keys []string, sizes []int64, capacity int64) (hits int, bytes int64) {
	type entry struct {
		key  string
		size int64
	}
	order := list.New()
	index := map[string]*list.Element{}
	var used int64
	for i, k := range keys {
		if e, ok := index[k]; ok {
			order.MoveToFront(e)
			hits++
			bytes += sizes[i]
			continue
		}
		if sizes[i] > capacity {
			continue
		}
		index[k] = order.PushFront(entry{k, sizes[i]})
		for used += sizes[i]; used > capacity; {
			old := order.Remove(order.Back()).(entry)
			delete(index, old.key)
			used -= old.size
		}
	}
	return hits, bytes
}

// sizedTrace returns the keys and sizes of an AdaptSize trace in
// testdata/traces (xz, "time id size" per line), keys as bench sim names
// them.
func sizedTrace(t *testing.T, file string) ([]string, []int64) {
	t.Helper()
	f, err := os.Open(filepath.Join("..", "testdata", "traces", file))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := xz.NewReader(bufio.NewReader(f))
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	var sizes []int64
	names := map[string]string{}
	sc := bufio.NewScanner(zr)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) != 3 {
			continue
		}
		size, err := strconv.ParseInt(fields[2], 10, 64)
		if err != nil {
			t.Fatalf("%s: %q: %v", file, sc.Text(), err)
		}
		k, ok := names[fields[1]]
		if !ok {
			k = "https://bench.invalid/o/" + fields[1]
			names[fields[1]] = k
		}
		keys = append(keys, k)
		sizes = append(sizes, max(size, 1))
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return keys, sizes
}

// traceKeys returns the keys of a LIRS trace in testdata/traces (gzip, one
// integer per line), as bench sim names them.
func traceKeys(t *testing.T, file string) []string {
	t.Helper()
	f, err := os.Open(filepath.Join("..", "testdata", "traces", file))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	names := map[string]string{}
	sc := bufio.NewScanner(zr)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		k, ok := names[line]
		if !ok {
			k = "https://bench.invalid/o/" + line
			names[line] = k
		}
		keys = append(keys, k)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return keys
}
