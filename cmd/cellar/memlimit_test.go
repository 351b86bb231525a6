package main

import (
	"math"
	"runtime/debug"
	"testing"
)

// restoreGC puts the process's GC settings back after a test of serve.
func restoreGC(t *testing.T) {
	limit := debug.SetMemoryLimit(-1)
	pct := debug.SetGCPercent(-1)
	debug.SetGCPercent(pct)
	t.Cleanup(func() {
		debug.SetMemoryLimit(limit)
		debug.SetGCPercent(pct)
	})
}

func TestServeSetsTheGoMemoryLimitFromTheBudget(t *testing.T) {
	restoreGC(t)
	t.Setenv("GOMEMLIMIT", "")
	t.Setenv("GOGC", "")
	debug.SetMemoryLimit(math.MaxInt64)
	debug.SetGCPercent(100)
	if _, err := startServe(t, "-data-dir", t.TempDir(), "-memory", "64MiB", "-access-log=false"); err != nil {
		t.Fatal(err)
	}
	if got, want := debug.SetMemoryLimit(-1), int64(64<<20+16<<20+128<<20); got != want {
		t.Errorf("memory limit = %d, want %d (1.25 × 64 MiB + 128 MiB)", got, want)
	}
	if got := debug.SetGCPercent(gcPercent); got != gcPercent {
		t.Errorf("GC percent = %d, want %d", got, gcPercent)
	}
}

func TestServeLeavesAnOperatorsGOMEMLIMITAndGOGC(t *testing.T) {
	restoreGC(t)
	t.Setenv("GOMEMLIMIT", "1GiB")
	t.Setenv("GOGC", "150")
	debug.SetMemoryLimit(1 << 30)
	debug.SetGCPercent(150)
	if _, err := startServe(t, "-data-dir", t.TempDir(), "-memory", "64MiB", "-access-log=false"); err != nil {
		t.Fatal(err)
	}
	if got := debug.SetMemoryLimit(-1); got != 1<<30 {
		t.Errorf("memory limit = %d, want the operator's 1 GiB", got)
	}
	if got := debug.SetGCPercent(150); got != 150 {
		t.Errorf("GC percent = %d, want the operator's 150", got)
	}
}
