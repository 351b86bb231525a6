package store

import (
	"testing"

	"github.com/cockroachdb/pebble/v2"
)

// TestAccessRecordsKeepTheOrderAcrossRestarts: the last accesses packed at
// Close order the objects after a restart; an entry for an object removed
// since is skipped, and one older than the commit of the object that now
// holds its fill id does not move that object back.
func TestAccessRecordsKeepTheOrderAcrossRestarts(t *testing.T) {
	opts := testOptions(t)
	opts.MemoryBytes = -1
	s := openTest(t, opts)
	for _, k := range []string{"a", "b", "c"} {
		put(t, s, k, body(100, 1), CreateOptions{SizeHint: -1})
	}
	d := s.acquire()
	d.mu.Lock()
	d.index["a"].access.Add(5000) // read after b and c were stored
	access := map[string]int64{}
	for k, e := range d.index {
		access[k] = e.access.Load()
	}
	fillB, fillC := d.index["b"].fill, d.index["c"].fill
	d.mu.Unlock()
	d.release()
	s.Close()
	if n := rawKeys(t, opts.Dir, prefixOrder); n != 1 {
		t.Fatalf("%d access records after Close, want 1", n)
	}

	s = openTest(t, opts)
	d = s.acquire()
	d.mu.Lock()
	for k, want := range access {
		if got := d.index[k].access.Load(); got != want {
			t.Errorf("%q after restart: access %d, want %d", k, got, want)
		}
	}
	d.mu.Unlock()
	if !d.remove("b", nil, pebble.Sync) {
		t.Fatal("remove b failed")
	}
	// An entry older than c's commit under c's fill, as a removed object
	// whose fill id c took would have left.
	stale := encodeAccess([]accessEntry{{fill: fillC, access: access["c"] - 1000}, {fill: fillB, access: access["b"] + 1}})
	if err := d.db.Set(accessKey(1), stale, pebble.Sync); err != nil {
		t.Fatal(err)
	}
	d.release()
	s.Close()

	s = openTest(t, opts)
	d = s.acquire()
	defer d.release()
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.index) != 2 || d.index["b"] != nil {
		t.Fatalf("%d objects after restart, want a and c", len(d.index))
	}
	for _, k := range []string{"a", "c"} {
		if got := d.index[k].access.Load(); got != access[k] {
			t.Errorf("%q after a restart with stale entries: access %d, want %d", k, got, access[k])
		}
	}
}
