package intern

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"unsafe"
)

func same(a, b string) bool { return unsafe.StringData(a) == unsafe.StringData(b) }

// A string met again is the table's copy, handed out without allocating;
// the bytes it was made from are not kept (changing them changes nothing).
func TestBytesReturnsTheKeptCopy(t *testing.T) {
	tb := New(64, 32)
	b := []byte("/1k/17")
	first := tb.Bytes(b)
	if first != "/1k/17" {
		t.Fatalf("Bytes = %q", first)
	}
	b[1] = '2'
	if first != "/1k/17" {
		t.Fatalf("the string changed with the bytes it was made from: %q", first)
	}
	b[1] = '1'
	if again := tb.Bytes(b); !same(first, again) {
		t.Errorf("a string met again is a new copy")
	}
	if n := testing.AllocsPerRun(100, func() { tb.Bytes(b) }); n != 0 {
		t.Errorf("%.1f allocations for a string met before, want 0", n)
	}
	if got := tb.Bytes([]byte("/1k/27")); got != "/1k/27" || same(got, first) {
		t.Errorf("Bytes(/1k/27) = %q (same copy as /1k/17: %v)", got, same(got, first))
	}
	if got := tb.Bytes(nil); got != "" {
		t.Errorf("Bytes(nil) = %q", got)
	}
	var nilTable *Table
	if got := nilTable.Bytes(b); got != "/1k/17" {
		t.Errorf("nil table: Bytes = %q", got)
	}
}

// Whatever it is given, the table keeps at most one string per slot and
// none longer than its limit.
func TestTableIsBounded(t *testing.T) {
	const slots, maxLen = 256, 40
	tb := New(slots, maxLen)
	if len(tb.slots) != slots {
		t.Fatalf("%d slots, want %d", len(tb.slots), slots)
	}
	for i := range 100_000 {
		s := fmt.Sprintf("https://example.com/%d", i)
		if got := tb.Bytes([]byte(s)); got != s {
			t.Fatalf("Bytes(%q) = %q", s, got)
		}
	}
	long := []byte(strings.Repeat("x", maxLen+1))
	if a, b := tb.Bytes(long), tb.Bytes(long); same(a, b) || a != string(long) {
		t.Errorf("a string over the limit was kept (or changed)")
	}
	kept, bytes := 0, 0
	for i := range tb.slots {
		if e := tb.slots[i].Load(); e != nil {
			kept++
			bytes += len(e.s)
			if len(e.s) > maxLen {
				t.Errorf("kept a string of %d bytes, limit %d", len(e.s), maxLen)
			}
		}
	}
	if kept > slots || bytes > slots*maxLen {
		t.Errorf("kept %d strings, %d bytes; bound %d strings, %d bytes", kept, bytes, slots, slots*maxLen)
	}
	if kept < slots/2 {
		t.Errorf("kept only %d strings in %d slots", kept, slots)
	}
}

// A hot set of 1000 strings, an eighth of the slots, stays in the table
// (a slot is shared by several, so hashes that meet do not evict each
// other): after a first pass, nearly every lookup is a hit.
func TestHotSetStays(t *testing.T) {
	tb := New(8192, 64)
	hot := make([][]byte, 1000)
	for i := range hot {
		hot[i] = fmt.Appendf(nil, "http://127.0.0.1:35080/1k/%d", i)
		tb.Bytes(hot[i])
	}
	copies := make([]*byte, len(hot))
	for i, b := range hot {
		copies[i] = unsafe.StringData(tb.Bytes(b))
	}
	misses := 0
	for i, b := range hot {
		if unsafe.StringData(tb.Bytes(b)) != copies[i] {
			misses++
		}
	}
	if misses > len(hot)/50 {
		t.Errorf("%d of %d hot strings were evicted by the others in one pass, want at most 2%%", misses, len(hot))
	}
}

// Lookups and replacements from many goroutines at once always return the
// string asked for (run with -race).
func TestConcurrentUse(t *testing.T) {
	tb := New(64, 64) // small: replacements all the time
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			b := make([]byte, 0, 64)
			for i := range 20_000 {
				b = fmt.Appendf(b[:0], "/obj/%d", (i*7+g)%300)
				if got := tb.Bytes(b); got != string(b) {
					t.Errorf("Bytes(%q) = %q", b, got)
					return
				}
			}
		})
	}
	wg.Wait()
}
