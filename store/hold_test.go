package store

import (
	"bytes"
	"context"
	"errors"
	"testing"
)

// HoldStored hides every object stored before it (memory and disk, across
// a reopen) until released; what is stored meanwhile is found, and
// replaces a held object of its key.
func TestHoldStoredMissesOlderObjectsUntilReleased(t *testing.T) {
	opts := testOptions(t)
	s, err := Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	put(t, s, "http://x/old", body(100, 1), CreateOptions{})
	put(t, s, "http://x/replaced", body(100, 2), CreateOptions{})
	s.Close()
	s = openTest(t, opts) // a restart, as a cluster node's
	ctx := context.Background()
	if _, err := s.Get(ctx, "http://x/old"); err != nil {
		t.Fatalf("before the hold: %v", err)
	}
	release := s.HoldStored()
	for _, k := range []string{"http://x/old", "http://x/replaced"} {
		if _, err := s.Get(ctx, k); !errors.Is(err, ErrNotFound) {
			t.Errorf("Get(%q) while held = %v, want ErrNotFound", k, err)
		}
	}
	put(t, s, "http://x/new", body(100, 3), CreateOptions{})
	put(t, s, "http://x/replaced", body(100, 4), CreateOptions{})
	for k, want := range map[string][]byte{"http://x/new": body(100, 3), "http://x/replaced": body(100, 4)} {
		o, err := s.Get(ctx, k)
		if err != nil {
			t.Fatalf("Get(%q) stored during the hold: %v", k, err)
		}
		if !bytes.Equal(readAll(t, s, o), want) {
			t.Errorf("Get(%q): wrong body", k)
		}
	}
	release()
	release()
	o, err := s.Get(ctx, "http://x/old")
	if err != nil {
		t.Fatalf("after release: %v", err)
	}
	if !bytes.Equal(readAll(t, s, o), body(100, 1)) {
		t.Error("after release: wrong body")
	}
}
