package quotafs

import (
	"errors"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
)

func TestWritePastFreeSpaceIsENOSPCAndRemoveGivesItBack(t *testing.T) {
	q := New(vfs.Default, 100)
	name := filepath.Join(t.TempDir(), "f")
	f, err := q.Create(name, vfs.WriteCategoryUnspecified)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(make([]byte, 60)); err != nil {
		t.Fatalf("write within the free space: %v", err)
	}
	if got := q.Free(); got != 40 {
		t.Fatalf("free after 60 bytes = %d, want 40", got)
	}
	if n, err := f.Write(make([]byte, 41)); !errors.Is(err, syscall.ENOSPC) || n != 0 {
		t.Fatalf("write past the free space = %d, %v; want 0, ENOSPC", n, err)
	}
	if got := q.Free(); got != 40 {
		t.Fatalf("a failed write took space: free = %d, want 40", got)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if du, err := q.GetDiskUsage(filepath.Dir(name)); err != nil || du.AvailBytes != 40 {
		t.Fatalf("GetDiskUsage = %+v, %v; want 40 bytes available", du, err)
	}
	if err := q.Remove(name); err != nil {
		t.Fatal(err)
	}
	if got := q.Free(); got != 100 {
		t.Fatalf("free after Remove = %d, want 100", got)
	}
	q.SetFree(0)
	if got := q.Free(); got != 0 {
		t.Fatalf("free after SetFree(0) = %d", got)
	}
}
