package store

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/cellar-cache/cellar/internal/quotafs"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// TestWALRotationOnAFullDiskFaultsTheTier: pebble rotates its WAL with its
// mutex released and panics when closing the old log fails, which on a
// full disk it does; unshielded, the unwinding unlocks an unlocked mutex
// and the process dies (a fatal error no recover stops). Shielded, the
// rotation goes on, the instance is faulted, and the tier comes back once
// there is room, with everything committed before the fault.
func TestWALRotationOnAFullDiskFaultsTheTier(t *testing.T) {
	q := quotafs.New(vfs.Default, 1<<30)
	opts := testOptions(t)
	opts.FS = q
	opts.ReserveBytes = -1 // no ballast to give back: the close must fail
	opts.RetryInterval = 50 * time.Millisecond
	s := openTest(t, opts)
	for i := range 8 {
		put(t, s, objKey(i), objBody(i), CreateOptions{SizeHint: -1})
	}
	d := s.cur()
	q.SetFree(0)
	// A flush rotates the WAL: the old log's trailer cannot be written.
	err := guard(func() error { _, err := d.db.AsyncFlush(); return err })
	t.Logf("flush on a full disk: %v", err)
	if !d.faulted.Load() {
		t.Fatalf("the WAL close failed on a full disk and the tier is not faulted: %+v", s.DiskState())
	}
	ctx := context.Background()
	if _, err := s.Create(ctx, "new", testMeta(), CreateOptions{SizeHint: -1}); err == nil {
		t.Log("Create accepted while faulted (memory only)")
	} else if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Create on a faulted tier: %v", err)
	}
	q.SetFree(1 << 30)
	waitMode(t, s, DiskOnline)
	for i := range 8 {
		if o, err := s.Get(ctx, objKey(i)); err != nil || o == nil {
			t.Fatalf("object %d committed before the fault: %v", i, err)
		}
	}
	if n := checkBodies(t, s); n != 8 {
		t.Fatalf("%d of 8 objects served after the tier came back", n)
	}
}
