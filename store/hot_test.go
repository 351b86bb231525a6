package store

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/cellar-cache/cellar/cache"
)

// putHot keeps a hot copy of key (body b, fresh for a minute) and fails the
// test if the store turned it away; it waits until ristretto has it.
func putHot(t *testing.T, s *Store, key string, b []byte) {
	t.Helper()
	tk := s.Ticket()
	defer tk.Release()
	meta := cache.Meta{Status: 200, Header: http.Header{"Content-Type": {"image/png"}}}
	if !s.PutHot(tk, key, meta, b, time.Now().Add(time.Minute)) {
		t.Fatalf("PutHot(%q) kept nothing", key)
	}
	s.mem.c.Wait()
}

// TestHotCopiesLiveInMemoryOnlyAndEveryPurgeReachesThem: a hot copy is
// served by Get (marked Hot), is never on disk, and every kind of purge
// removes it: URL, prefix, tag (any tag: its tags are unknown), all, and a
// ban; a put whose ticket a purge overtook keeps nothing.
func TestHotCopiesLiveInMemoryOnlyAndEveryPurgeReachesThem(t *testing.T) {
	s := openTest(t, testOptions(t))
	ctx := context.Background()
	const key = "http://a.test/img/hot.png"
	for _, tc := range []struct {
		name  string
		purge func() error
	}{
		{"url", func() error { _, err := s.Purge(ctx, Selector{URL: key}, false); return err }},
		{"soft url", func() error { _, err := s.Purge(ctx, Selector{URL: key}, true); return err }},
		{"prefix", func() error { _, err := s.Purge(ctx, Selector{Prefix: "http://a.test/img/"}, false); return err }},
		{"any tag", func() error { _, err := s.Purge(ctx, Selector{Tag: "unrelated"}, false); return err }},
		{"all", func() error { _, err := s.Purge(ctx, Selector{All: true}, false); return err }},
		{"ban", func() error { return s.Ban(ctx, []string{`/img/.*\.png$`}, false) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			putHot(t, s, key, body(1000, 7))
			o, err := s.Get(ctx, key)
			if err != nil || !o.Hot() || o.Size != 1000 {
				t.Fatalf("Get of the hot copy = %+v, %v", o, err)
			}
			if l, err := s.List(ctx, Selector{URL: key}, 0); err != nil || len(l) != 0 {
				t.Fatalf("the disk tier lists %d objects for the hot copy (%v), want none", len(l), err)
			}
			if s.HotCopies() != 1 {
				t.Fatalf("HotCopies = %d, want 1", s.HotCopies())
			}
			if err := tc.purge(); err != nil {
				t.Fatal(err)
			}
			if _, err := s.Get(ctx, key); !errors.Is(err, ErrNotFound) {
				t.Errorf("Get after the purge: %v, want ErrNotFound", err)
			}
			if s.HotCopies() != 0 {
				t.Errorf("HotCopies after the purge = %d, want 0", s.HotCopies())
			}
		})
	}
	// The bans above are pending until their sweep: a later copy would be
	// hidden by them; wait for the sweep to forget them.
	for deadline := time.Now().Add(time.Minute); s.BanStats().Pending > 0; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("bans still pending after a minute")
		}
	}

	// A purge between the owner's request (the ticket) and the put wins.
	tk := s.Ticket()
	if _, err := s.Purge(ctx, Selector{URL: key}, false); err != nil {
		t.Fatal(err)
	}
	if s.PutHot(tk, key, cache.Meta{Status: 200, Header: http.Header{}}, body(10, 1), time.Now().Add(time.Minute)) {
		t.Error("PutHot kept a copy that a purge since its ticket matched")
	}
	tk.Release()

	// Too large for the memory tier, or expired: nothing kept.
	tk = s.Ticket()
	defer tk.Release()
	if s.PutHot(tk, key, cache.Meta{Status: 200, Header: http.Header{}}, make([]byte, s.HotLimit()+1), time.Now().Add(time.Minute)) {
		t.Error("PutHot kept a body larger than the memory tier's largest object")
	}
	if s.PutHot(tk, key, cache.Meta{Status: 200, Header: http.Header{}}, body(10, 1), time.Now().Add(-time.Second)) {
		t.Error("PutHot kept an expired copy")
	}

	// A copy that leaves the memory tier (here: replaced by a stored
	// object of the same key) leaves the index.
	putHot(t, s, key, body(1000, 8))
	put(t, s, key, body(100, 9), CreateOptions{})
	s.mem.c.Wait()
	if o, err := s.Get(ctx, key); err != nil || o.Hot() || o.Size != 100 {
		t.Errorf("Get after a fill of the key = %+v, %v; want the stored object", o, err)
	}
	if s.HotCopies() != 0 {
		t.Errorf("HotCopies = %d after the copy was replaced, want 0", s.HotCopies())
	}
}
