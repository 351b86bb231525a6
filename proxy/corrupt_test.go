package proxy

import (
	"bytes"
	"io"
	"net/http"
	"path/filepath"
	"testing"

	"github.com/cockroachdb/pebble/v2"
)

// TestCorruptRecordIsAMissNeverServed corrupts the stored body in the data
// directory of a stopped cellar: after the restart the request is answered
// from the origin with the right bytes, and the record is counted corrupt.
func TestCorruptRecordIsAMissNeverServed(t *testing.T) {
	const marker = "body-that-will-be-corrupted"
	r := newRig(t, func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Cache-Control", "max-age=3600")
		w.Header().Set("Content-Type", "application/octet-stream")
		io.WriteString(w, marker)
	})
	if _, body := r.get("/c"); body != marker {
		t.Fatalf("first body %q", body)
	}
	r.waitIdle()
	r.stop()

	db, err := pebble.Open(filepath.Join(r.dir, "db"), &pebble.Options{})
	if err != nil {
		t.Fatal(err)
	}
	it, err := db.NewIter(nil)
	if err != nil {
		t.Fatal(err)
	}
	corrupted := 0
	for it.First(); it.Valid(); it.Next() {
		v := it.Value()
		i := bytes.Index(v, []byte(marker))
		if i < 0 {
			continue
		}
		bad := bytes.Clone(v)
		bad[i] ^= 0xff
		if err := db.Set(bytes.Clone(it.Key()), bad, pebble.Sync); err != nil {
			t.Fatal(err)
		}
		corrupted++
	}
	it.Close()
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if corrupted == 0 {
		t.Fatal("found no record holding the body to corrupt")
	}

	r.start()
	resp, body := r.get("/c")
	if body != marker {
		t.Fatalf("after corruption the client got %q, want the origin's bytes", body)
	}
	if isHit(resp.Header.Get("Cache-Status")) {
		t.Errorf("a corrupt record was served as a hit: %q", resp.Header.Get("Cache-Status"))
	}
	if n := r.origin.hits.Load(); n != 2 {
		t.Errorf("origin hits = %d, want 2", n)
	}
	if c := r.store.Stats().Corrupt; c < 1 {
		t.Errorf("corrupt records counted = %d, want at least 1", c)
	}
	// The fresh copy is stored again and served.
	r.waitIdle()
	if resp, body := r.get("/c"); body != marker || !isHit(resp.Header.Get("Cache-Status")) {
		t.Errorf("after refill: %q %q", body, resp.Header.Get("Cache-Status"))
	}
}
