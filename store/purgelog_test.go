package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// TestPurgeWinsOverFillInProgress checks that a purge arriving while a fill
// of a matching object is in progress (or after its origin request began,
// CreateOptions.Ticket) makes the fill commit Invalid, and that purges that
// do not match it leave it fresh.
func TestPurgeWinsOverFillInProgress(t *testing.T) {
	const key = "http://h.example/a"
	tags := []string{"product-42"}
	tests := []struct {
		name        string
		key         string // the fill's key; default key
		sinceBefore bool   // take the ticket before the purge, Create after it
		sel         Selector
		soft        bool
		purges      int // how many times to purge sel
		wantInvalid bool
	}{
		{name: "url", sel: Selector{URL: key}, purges: 1, wantInvalid: true},
		{name: "url soft", sel: Selector{URL: key}, soft: true, purges: 1, wantInvalid: true},
		{name: "variant of url", key: key + "\x00e=gzip", sel: Selector{URL: key}, purges: 1, wantInvalid: true},
		{name: "prefix", sel: Selector{Prefix: "http://h.example/"}, purges: 1, wantInvalid: true},
		{name: "tag", sel: Selector{Tag: "product-42"}, purges: 1, wantInvalid: true},
		{name: "all", sel: Selector{All: true}, purges: 1, wantInvalid: true},
		{name: "purge between fetch start and create", sinceBefore: true, sel: Selector{URL: key}, purges: 1, wantInvalid: true},
		{name: "other url", sel: Selector{URL: "http://h.example/ab"}, purges: 1},
		{name: "tag that is a prefix of the object's tag", sel: Selector{Tag: "product-4"}, purges: 1},
		{name: "other prefix", sel: Selector{Prefix: "http://other.example/"}, purges: 1},
		{name: "many unrelated purges", sel: Selector{URL: "http://h.example/other"}, purges: 2000},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := openTest(t, testOptions(t))
			ctx := context.Background()
			key := key
			if tt.key != "" {
				key = tt.key
			}
			var opts CreateOptions
			opts.Tags, opts.SizeHint = tags, -1
			if tt.sinceBefore {
				opts.Ticket = s.Ticket()
				defer opts.Ticket.Release()
			}
			var w *Writer
			create := func() {
				var err error
				if w, err = s.Create(ctx, key, testMeta(), opts); err != nil {
					t.Fatal(err)
				}
			}
			if !tt.sinceBefore {
				create()
			}
			for range tt.purges {
				if _, err := s.Purge(ctx, tt.sel, tt.soft); err != nil {
					t.Fatal(err)
				}
			}
			if tt.sinceBefore {
				create()
			}
			w.Write(body(5000, 1))
			o, err := w.Commit(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if o.Meta.Invalid != tt.wantInvalid {
				t.Errorf("committed object Invalid = %v, want %v", o.Meta.Invalid, tt.wantInvalid)
			}
			got, err := s.Get(ctx, key)
			if err != nil {
				t.Fatalf("Get after commit: %v", err)
			}
			if got.Meta.Invalid != tt.wantInvalid {
				t.Errorf("stored object Invalid = %v, want %v", got.Meta.Invalid, tt.wantInvalid)
			}
		})
	}
}

// TestPurgeRacingCommitsNeverLeavesFreshObject runs purges concurrently
// with fills that started before them: whichever comes first, every object
// is afterwards absent or Invalid.
func TestPurgeRacingCommitsNeverLeavesFreshObject(t *testing.T) {
	s := openTest(t, testOptions(t))
	ctx := context.Background()
	const n = 64
	writers := make([]*Writer, n)
	for i := range writers {
		w, err := s.Create(ctx, fmt.Sprintf("http://h.example/%d", i), testMeta(), CreateOptions{Tags: []string{"t"}, SizeHint: -1})
		if err != nil {
			t.Fatal(err)
		}
		w.Write(body(100, byte(i)))
		writers[i] = w
	}
	var wg sync.WaitGroup
	for _, w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := w.Commit(ctx); err != nil {
				t.Error(err)
			}
		}()
	}
	if _, err := s.Purge(ctx, Selector{Tag: "t"}, false); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	for i := range n {
		o, err := s.Get(ctx, fmt.Sprintf("http://h.example/%d", i))
		if err == nil && !o.Meta.Invalid {
			t.Errorf("object %d is fresh after a purge that raced its commit", i)
		}
	}
}

// TestSoftPurgeWinsOverRevalidationInProgress checks that a 304 whose
// request started before a matching soft purge does not make the object
// fresh again (UpdateObjectMeta), while one that started after it does.
func TestSoftPurgeWinsOverRevalidationInProgress(t *testing.T) {
	for _, tt := range []struct {
		name        string
		sel         Selector
		purgeFirst  bool // purge before the revalidation starts
		wantInvalid bool
	}{
		{"url purge during revalidation", Selector{URL: "http://h.example/r"}, false, true},
		{"tag purge during revalidation", Selector{Tag: "r-tag"}, false, true},
		{"other tag during revalidation", Selector{Tag: "r"}, false, false},
		{"purge before revalidation", Selector{URL: "http://h.example/r"}, true, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := openTest(t, testOptions(t))
			ctx := context.Background()
			const key = "http://h.example/r"
			stored := put(t, s, key, body(100, 1), CreateOptions{Tags: []string{"r-tag"}, SizeHint: -1})
			if tt.purgeFirst {
				s.Purge(ctx, tt.sel, true)
			}
			since := s.Ticket() // the revalidation's request starts
			defer since.Release()
			if !tt.purgeFirst {
				s.Purge(ctx, tt.sel, true)
			}
			m := testMeta() // the freshened meta of a 304: Invalid false
			if err := s.UpdateObjectMeta(ctx, since, stored, m, time.Time{}); err != nil {
				t.Fatal(err)
			}
			o, err := s.Get(ctx, key)
			if err != nil {
				t.Fatal(err)
			}
			if o.Meta.Invalid != tt.wantInvalid {
				t.Errorf("Invalid after the 304 = %v, want %v", o.Meta.Invalid, tt.wantInvalid)
			}
		})
	}
}

// TestFillOvertakenByPurgeNeverReplacesNewerObject starts fill A, purges
// its key, commits fill B (which began after the purge), then commits A:
// A's commit is dropped with ErrSuperseded and B stays, while a reader that
// was following A still gets A's whole body and A's chunks go once it
// closes. For a soft purge the same holds.
func TestFillOvertakenByPurgeNeverReplacesNewerObject(t *testing.T) {
	const key = "http://h.example/a"
	for _, soft := range []bool{false, true} {
		t.Run(fmt.Sprintf("soft=%v", soft), func(t *testing.T) {
			s := openTest(t, testOptions(t))
			ctx := context.Background()
			put(t, s, key, body(3000, 9), CreateOptions{SizeHint: -1})
			a, err := s.Create(ctx, key, testMeta(), CreateOptions{SizeHint: -1})
			if err != nil {
				t.Fatal(err)
			}
			bodyA := body(10_000, 1) // more than two 4 KiB chunks
			if _, err := a.Write(bodyA); err != nil {
				t.Fatal(err)
			}
			rd := a.NewReader(ctx)
			first := make([]byte, 100)
			if _, err := io.ReadFull(rd, first); err != nil {
				t.Fatal(err)
			}
			if _, err := s.Purge(ctx, Selector{URL: key}, soft); err != nil {
				t.Fatal(err)
			}
			bodyB := body(6000, 2)
			put(t, s, key, bodyB, CreateOptions{SizeHint: -1})
			a.Seal()
			if o, err := a.Commit(ctx); !errors.Is(err, ErrSuperseded) {
				t.Fatalf("Commit of the overtaken fill = %v, %v; want ErrSuperseded", o, err)
			}
			got, err := s.Get(ctx, key)
			if err != nil || got.Meta.Invalid || !bytes.Equal(readAll(t, s, got), bodyB) {
				t.Fatalf("after the overtaken commit: %v (Invalid %v); want the newer object, valid", err, got != nil && got.Meta.Invalid)
			}
			rest, err := io.ReadAll(rd)
			if err != nil || !bytes.Equal(append(first, rest...), bodyA) {
				t.Fatalf("reader of the overtaken fill: %d bytes, %v; want its whole body", 100+len(rest), err)
			}
			rd.Close()
			it, err := s.cur().db.NewIter(&pebble.IterOptions{})
			if err != nil {
				t.Fatal(err)
			}
			defer it.Close()
			start, end := chunkSpan(a.fill)
			for it.SeekGE(start); it.Valid() && bytes.Compare(it.Key(), end) < 0; it.Next() {
				t.Fatalf("chunk %q of the overtaken fill is still stored after its last reader closed", it.Key())
			}
		})
	}
}

// TestFillReaderOutlivesPurgeAfterCommit follows a fill with a slow reader,
// commits it, then purges (hard) and replaces the object: the reader still
// gets the whole body it was following, and a later Close releases what
// pinned it (the store closes cleanly).
func TestFillReaderOutlivesPurgeAfterCommit(t *testing.T) {
	const key = "http://h.example/slow"
	s := openTest(t, testOptions(t))
	ctx := context.Background()
	w, err := s.Create(ctx, key, testMeta(), CreateOptions{SizeHint: -1})
	if err != nil {
		t.Fatal(err)
	}
	want := body(20_000, 3) // five 4 KiB chunks
	if _, err := w.Write(want); err != nil {
		t.Fatal(err)
	}
	rd := w.NewReader(ctx)
	first := make([]byte, 10)
	if _, err := io.ReadFull(rd, first); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if n, err := s.Purge(ctx, Selector{URL: key}, false); err != nil || n != 1 {
		t.Fatalf("Purge = %d, %v", n, err)
	}
	put(t, s, key, body(5000, 4), CreateOptions{SizeHint: -1})
	s.cur().db.Compact(ctx, []byte{0}, []byte{0xff}, true)
	rest, err := io.ReadAll(rd)
	if err != nil || !bytes.Equal(append(first, rest...), want) {
		t.Fatalf("reader after purge and replacement: %d bytes, %v; want the whole body it followed", len(first)+len(rest), err)
	}
	if err := rd.Close(); err != nil {
		t.Fatal(err)
	}
	if w.snap != nil {
		t.Fatal("the last reader's Close left the snapshot open")
	}
}

// TestPurgeManyMatchesEachObjectOnce purges with several selectors at once:
// URLs (with their variants, and not URLs they are a prefix of), a prefix
// and a tag that overlap, and counts every object once.
func TestPurgeManyMatchesEachObjectOnce(t *testing.T) {
	s := openTest(t, testOptions(t))
	ctx := context.Background()
	keys := []string{
		"http://h.example/a",
		"http://h.example/a\x00lang=en",
		"http://h.example/ab",
		"http://h.example/blog/1",
		"http://h.example/blog/2",
		"http://other.example/x",
	}
	for i, k := range keys {
		put(t, s, k, body(100, byte(i)), CreateOptions{Tags: []string{fmt.Sprintf("t%d", i)}, SizeHint: -1})
	}
	n, err := s.PurgeMany(ctx, []Selector{
		{URL: "http://h.example/a"},
		{Prefix: "http://h.example/blog/"},
		{Tag: "t3"}, // blog/1 again
		{URL: "http://h.example/missing"},
	}, false)
	if err != nil || n != 4 {
		t.Fatalf("PurgeMany = %d, %v; want 4 objects", n, err)
	}
	for i, k := range keys {
		_, err := s.Get(ctx, k)
		gone := errors.Is(err, ErrNotFound)
		if want := i <= 1 || i == 3 || i == 4; gone != want {
			t.Errorf("%q gone = %v, want %v", k, gone, want)
		}
	}
	if _, err := s.PurgeMany(ctx, []Selector{{URL: "http://h.example/ab"}, {}}, false); err == nil {
		t.Error("an empty selector among others must be refused")
	}
	if _, err := s.Get(ctx, "http://h.example/ab"); err != nil {
		t.Errorf("a refused PurgeMany purged: %v", err)
	}
}

// TestUpdateObjectMetaNeverLandsOnANewerBody reads object A, lets a fill
// replace it with B, and checks that A's metadata update is refused with
// ErrSuperseded and B keeps its own; an update of the current object goes
// through, and one whose request began before a matching purge is stored
// Invalid.
func TestUpdateObjectMetaNeverLandsOnANewerBody(t *testing.T) {
	const key = "http://h.example/u"
	s := openTest(t, testOptions(t))
	ctx := context.Background()
	a := put(t, s, key, body(3000, 1), CreateOptions{SizeHint: -1})
	metaB := testMeta()
	metaB.Header = metaB.Header.Clone()
	metaB.Header.Set("Etag", `"b"`)
	w, err := s.Create(ctx, key, metaB, CreateOptions{SizeHint: -1})
	if err != nil {
		t.Fatal(err)
	}
	w.Write(body(5000, 2))
	if _, err := w.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	old := a.Meta
	old.Header = a.Meta.Header.Clone()
	old.Header.Set("X-From", "a")
	if err := s.UpdateObjectMeta(ctx, s.Ticket(), a, old, time.Time{}); !errors.Is(err, ErrSuperseded) {
		t.Fatalf("update of the replaced object: %v, want ErrSuperseded", err)
	}
	cur, err := s.Get(ctx, key)
	if err != nil || cur.Meta.Header.Get("X-From") != "" || cur.Meta.Header.Get("Etag") != `"b"` || cur.Size != 5000 {
		t.Fatalf("after the refused update: %v %v size %d; want B untouched", err, cur.Meta.Header, cur.Size)
	}
	since := s.Ticket()
	defer since.Release()
	next := cur.Meta
	next.Header = cur.Meta.Header.Clone()
	next.Header.Set("X-From", "b")
	if err := s.UpdateObjectMeta(ctx, since, cur, next, time.Time{}); err != nil {
		t.Fatalf("update of the current object: %v", err)
	}
	if got, _ := s.Get(ctx, key); got.Meta.Header.Get("X-From") != "b" || got.Meta.Invalid {
		t.Fatalf("after the update: %v (Invalid %v)", got.Meta.Header, got.Meta.Invalid)
	}
	cur, _ = s.Get(ctx, key)
	if _, err := s.Purge(ctx, Selector{URL: key}, true); err != nil {
		t.Fatal(err)
	}
	if err := s.UpdateObjectMeta(ctx, since, cur, next, time.Time{}); err != nil {
		t.Fatalf("update after a soft purge: %v", err)
	}
	if got, _ := s.Get(ctx, key); !got.Meta.Invalid {
		t.Error("an update whose request began before a soft purge made the object valid again")
	}
}
