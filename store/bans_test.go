package store

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestBanAppliesOnLookupToOlderObjectsOnly(t *testing.T) {
	opts := testOptions(t)
	opts.noSweep = true
	s := openTest(t, opts)
	ctx := context.Background()
	for _, k := range []string{"http://a.test/img/1.png", "http://a.test/img/1.png\x00e=gzip", "http://a.test/img/2.jpg", "http://a.test/page"} {
		put(t, s, k, body(100, 1), CreateOptions{})
	}
	if err := s.Ban(ctx, []string{`^http://a\.test/img/.*\.png$`}, false); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"http://a.test/img/1.png", "http://a.test/img/1.png\x00e=gzip"} {
		if _, err := s.Get(ctx, k); !errors.Is(err, ErrNotFound) {
			t.Errorf("Get(%q) after a hard ban: %v, want ErrNotFound", k, err)
		}
	}
	for _, k := range []string{"http://a.test/img/2.jpg", "http://a.test/page"} {
		if _, err := s.Get(ctx, k); err != nil {
			t.Errorf("Get(%q), not banned: %v", k, err)
		}
	}
	// An object stored after the ban is newer than it.
	put(t, s, "http://a.test/img/1.png", body(100, 2), CreateOptions{})
	if _, err := s.Get(ctx, "http://a.test/img/1.png"); err != nil {
		t.Errorf("Get of the object stored after the ban: %v", err)
	}
	// A soft ban marks older objects Invalid and keeps them.
	if err := s.Ban(ctx, []string{`/page$`}, true); err != nil {
		t.Fatal(err)
	}
	if o, err := s.Get(ctx, "http://a.test/page"); err != nil || !o.Meta.Invalid {
		t.Errorf("Get after a soft ban = %v, %v; want the object, Invalid", o, err)
	}
	if bs := s.BanStats(); bs.Pending != 2 || bs.Added != 2 || bs.Lazy != 3 {
		t.Errorf("BanStats = %+v, want 2 pending, 2 added, 3 banned on lookup", bs)
	}

	// Bans are durable: after a restart they still apply, and new fills
	// are newer than them.
	s.Close()
	s = openTest(t, opts)
	if bs := s.BanStats(); bs.Pending != 2 {
		t.Errorf("after restart: %d bans pending, want 2", bs.Pending)
	}
	if o, err := s.Get(ctx, "http://a.test/page"); err != nil || !o.Meta.Invalid {
		t.Errorf("after restart, Get = %v, %v; want the object, Invalid", o, err)
	}
	put(t, s, "http://a.test/page", body(100, 3), CreateOptions{})
	if o, err := s.Get(ctx, "http://a.test/page"); err != nil || o.Meta.Invalid {
		t.Errorf("Get of a fill after the restart = %v, %v; want it valid", o, err)
	}
}

func TestBanSweepsInTheBackgroundAndIsForgotten(t *testing.T) {
	opts := testOptions(t)
	s := openTest(t, opts)
	ctx := context.Background()
	for _, k := range []string{"http://a.test/x/1", "http://a.test/x/2", "http://a.test/y/1"} {
		put(t, s, k, body(100, 1), CreateOptions{})
	}
	if err := s.Ban(ctx, []string{`/x/`}, false); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for s.BanStats().Pending > 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if bs := s.BanStats(); bs.Pending != 0 || bs.Swept != 2 || bs.Lazy != 0 {
		t.Fatalf("BanStats = %+v, want the ban swept (2 objects) and forgotten", bs)
	}
	if st := s.Stats(); st.DiskObjects != 1 {
		t.Errorf("%d objects on disk, want 1", st.DiskObjects)
	}
	s.Close()
	s = openTest(t, opts)
	if bs := s.BanStats(); bs.Pending != 0 {
		t.Errorf("a swept ban came back after restart: %+v", bs)
	}
}

func TestBanRejectsBadPatterns(t *testing.T) {
	s := openTest(t, testOptions(t))
	err := s.Ban(context.Background(), []string{"ok", "(", "[z-a]"}, false)
	if !errors.Is(err, ErrBadPattern) {
		t.Fatalf("Ban = %v, want ErrBadPattern", err)
	}
	for _, w := range []string{`patterns[1] "("`, `patterns[2] "[z-a]"`} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not name %s", err, w)
		}
	}
	if bs := s.BanStats(); bs.Added != 0 {
		t.Errorf("a request with a bad pattern recorded %d bans", bs.Added)
	}
}

// With no ban newer than the object, the check on lookup is an atomic
// load and a comparison: no lock, no allocation, the object itself.
func TestBanCheckIsFreeForNewerObjects(t *testing.T) {
	opts := testOptions(t)
	opts.noSweep = true
	s := openTest(t, opts)
	ctx := context.Background()
	old := put(t, s, "http://a.test/old", body(100, 1), CreateOptions{})
	if err := s.Ban(ctx, []string{"^nothing-matches$"}, false); err != nil {
		t.Fatal(err)
	}
	o := put(t, s, "http://a.test/new", body(100, 1), CreateOptions{})
	var got *Object
	if n := testing.AllocsPerRun(1000, func() { got, _ = s.banned(o) }); n != 0 || got != o {
		t.Errorf("the ban check of a newer object allocates %v times (same object: %v)", n, got == o)
	}
	// An older object is checked against the ban, which does not match it.
	if g, gone := s.banned(old); g != old || gone {
		t.Errorf("an unmatched older object came back as %v, %v", g, gone)
	}
}
