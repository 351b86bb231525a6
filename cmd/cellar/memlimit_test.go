package main

import (
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"runtime/debug"
	"strings"
	"testing"
	"time"
)

func TestHeapLimit(t *testing.T) {
	const mib = 1 << 20
	for _, c := range []struct{ resident, budget, want int64 }{
		{0, 256 * mib, 40 * mib},
		{100 * mib, 256 * mib, 165 * mib},
		{256 * mib, 256 * mib, 360 * mib},
		{64 * mib, 64 * mib, 120 * mib},
		{1000 * mib, 64 * mib, 208 * mib}, // never above 1.25 × budget + 128 MiB
	} {
		if got := heapLimit(c.resident, c.budget); got != c.want {
			t.Errorf("heapLimit(%d MiB, %d MiB) = %d MiB, want %d MiB", c.resident/mib, c.budget/mib, got/mib, c.want/mib)
		}
	}
}

// restoreLimit puts the process's memory limit back after a test of serve.
func restoreLimit(t *testing.T) {
	limit := debug.SetMemoryLimit(-1)
	t.Cleanup(func() { debug.SetMemoryLimit(limit) })
}

func TestServeMemoryLimitFollowsTheCache(t *testing.T) {
	restoreLimit(t)
	t.Setenv("GOMEMLIMIT", "")
	debug.SetMemoryLimit(math.MaxInt64)
	body := strings.Repeat("x", 1<<20)
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=600")
		io.WriteString(w, body)
	}))
	defer origin.Close()
	r, err := startServe(t, "-origin", origin.URL, "-data-dir", t.TempDir(), "-memory", "64MiB", "-access-log=false")
	if err != nil {
		t.Fatal(err)
	}
	waitLimit := func(what string, ok func(int64) bool) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for l := debug.SetMemoryLimit(-1); !ok(l); l = debug.SetMemoryLimit(-1) {
			if time.Now().After(deadline) {
				t.Fatalf("memory limit %d: want %s", l, what)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	if l := debug.SetMemoryLimit(-1); l != 40<<20 {
		t.Fatalf("memory limit %d when ready, want 40 MiB for an empty cache", l)
	}
	for i := range 8 {
		get(t, "http://"+r.proxy+"/"+string(rune('a'+i)))
	}
	// 8 MiB of bodies resident: the limit grows by 1.25 × that.
	waitLimit("at least 40 MiB + 1.25 × 8 MiB", func(l int64) bool { return l >= 40<<20+10<<20 })
}

func TestServeLeavesAnOperatorsGOMEMLIMIT(t *testing.T) {
	restoreLimit(t)
	t.Setenv("GOMEMLIMIT", "1GiB")
	debug.SetMemoryLimit(1 << 30)
	if _, err := startServe(t, "-data-dir", t.TempDir(), "-memory", "64MiB", "-access-log=false"); err != nil {
		t.Fatal(err)
	}
	// serve sets its own limit before it is ready, so a follower would
	// already have replaced the operator's.
	if got := debug.SetMemoryLimit(-1); got != 1<<30 {
		t.Errorf("memory limit = %d, want the operator's 1 GiB", got)
	}
}
