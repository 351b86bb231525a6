package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/cellar-cache/cellar/cache"
)

// testOptions returns small options for a store in a fresh temp dir.
func testOptions(t testing.TB) Options {
	return Options{
		Dir:         t.TempDir(),
		MemoryBytes: 8 << 20,
		DiskBytes:   64 << 20,
		ChunkSize:   4 << 10,
	}
}

func openTest(t testing.TB, opts Options) *Store {
	t.Helper()
	s, err := Open(opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func testMeta() cache.Meta {
	return cache.Meta{
		Status:       200,
		Header:       http.Header{"Content-Type": {"text/plain"}, "Etag": {`"x"`}},
		RequestTime:  time.Unix(1700000000, 0),
		ResponseTime: time.Unix(1700000001, 0),
	}
}

func put(t testing.TB, s *Store, key string, body []byte, opts CreateOptions) *Object {
	t.Helper()
	ctx := context.Background()
	w, err := s.Create(ctx, key, testMeta(), opts)
	if err != nil {
		t.Fatalf("Create(%q): %v", key, err)
	}
	if _, err := w.Write(body); err != nil {
		t.Fatalf("Write(%q): %v", key, err)
	}
	o, err := w.Commit(ctx)
	if err != nil {
		t.Fatalf("Commit(%q): %v", key, err)
	}
	return o
}

func readAll(t testing.TB, s *Store, o *Object) []byte {
	t.Helper()
	r, err := s.NewReader(context.Background(), o, 0, -1)
	if err != nil {
		t.Fatalf("NewReader: %v", err)
	}
	defer r.Close()
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("reading body of %q: %v", o.Key, err)
	}
	return b
}

func body(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = seed + byte(i*7+i/251)
	}
	return b
}

func TestStoreRoundTrip(t *testing.T) {
	s := openTest(t, testOptions(t))
	for _, n := range []int{0, 1, 4 << 10, 10000, 2 << 20} {
		key := "http://a/" + string(rune('a'+n%26))
		want := body(n, 3)
		put(t, s, key, want, CreateOptions{SizeHint: -1})
		o, err := s.Get(context.Background(), key)
		if err != nil {
			t.Fatalf("Get(%d bytes): %v", n, err)
		}
		if got := readAll(t, s, o); !bytes.Equal(got, want) {
			t.Fatalf("%d byte body: got %d bytes, differs", n, len(got))
		}
	}
	if _, err := s.Get(context.Background(), "http://nothing/"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get of absent key: %v, want ErrNotFound", err)
	}
}

// TestResidentBodyHasNoSlack fills a body of unknown length in small
// writes, as a chunked origin response does: the resident body's capacity
// is its length (within the allocator's rounding), since cost() charges
// the length only.
func TestResidentBodyHasNoSlack(t *testing.T) {
	s := openTest(t, testOptions(t))
	ctx := context.Background()
	const size = 1000 << 10
	w, err := s.Create(ctx, "k", testMeta(), CreateOptions{SizeHint: -1})
	if err != nil {
		t.Fatal(err)
	}
	p := make([]byte, 4<<10)
	for n := 0; n < size; n += len(p) {
		if _, err := w.Write(p[:min(len(p), size-n)]); err != nil {
			t.Fatal(err)
		}
	}
	o, err := w.Commit(ctx)
	if err != nil {
		t.Fatal(err)
	}
	b, ok := o.Body()
	if !ok || len(b) != size {
		t.Fatalf("body of %d bytes, resident %v; want %d", len(b), ok, size)
	}
	if cap(b) > size+size/32 {
		t.Errorf("resident body of %d bytes has capacity %d", len(b), cap(b))
	}
}

// TestReplacedObjectIsNotShadowedInMemory: two commits of one key in
// quick succession leave the newer object in memory. ristretto applies its
// Sets in the background and ignores a second new Set of a key whose first
// is still buffered, so without a Del between them the memory tier kept the
// older object while the disk held the newer one.
func TestReplacedObjectIsNotShadowedInMemory(t *testing.T) {
	s := openTest(t, testOptions(t))
	ctx := context.Background()
	const n = 300
	key := func(i int) string { return fmt.Sprintf("http://a.test/r/%d", i) }
	for i := range n {
		put(t, s, key(i), body(100, 1), CreateOptions{})
		put(t, s, key(i), body(100, 2), CreateOptions{})
	}
	s.mem.c.Wait()
	stale, resident := 0, 0
	for i := range n {
		o, err := s.Get(ctx, key(i))
		if err != nil {
			t.Fatalf("Get(%q): %v", key(i), err)
		}
		b, ok := o.Body()
		if !ok {
			continue // read from disk: the newer object
		}
		resident++
		if !bytes.Equal(b, body(100, 2)) {
			stale++
		}
	}
	if stale > 0 || resident == 0 {
		t.Errorf("%d of %d keys read back their older object from memory (%d from memory)", stale, n, resident)
	}
}
