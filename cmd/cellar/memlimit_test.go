package main

import (
	"context"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"
	"time"

	"github.com/cellar-cache/cellar/compress"
)

func TestHeapLimit(t *testing.T) {
	const mib = 1 << 20
	for _, c := range []struct{ resident, budget, encoders, want int64 }{
		{0, 256 * mib, 0, 32 * mib},
		{100 * mib, 256 * mib, 0, 157 * mib},
		{256 * mib, 256 * mib, 0, 352 * mib},
		{64 * mib, 64 * mib, 0, 112 * mib},
		{64 * mib, 64 * mib, 40 * mib, 152 * mib},   // encoders in use come on top
		{1000 * mib, 64 * mib, 0, 208 * mib},        // never above 1.25 × budget + 128 MiB,
		{1000 * mib, 64 * mib, 10 * mib, 218 * mib}, // but for the encoders
	} {
		if got := heapLimit(c.resident, c.budget, c.encoders); got != c.want {
			t.Errorf("heapLimit(%d MiB, %d MiB, %d MiB) = %d MiB, want %d MiB", c.resident/mib, c.budget/mib, c.encoders/mib, got/mib, c.want/mib)
		}
	}
}

func TestGCFloor(t *testing.T) {
	const mib = 1 << 20
	for _, c := range []struct{ live, held, want int64 }{
		{0, 0, 16 * mib},
		{100 * mib, 10 * mib, 126 * mib},   // 16 MiB of room
		{256 * mib, 20 * mib, 292 * mib},   // 16 MiB up to a live heap of 256 MiB,
		{1024 * mib, 40 * mib, 1128 * mib}, // then 1/16 of it
	} {
		if got := gcFloor(heapState{live: c.live, held: c.held}); got != c.want {
			t.Errorf("gcFloor(live %d MiB, held %d MiB) = %d MiB, want %d MiB", c.live/mib, c.held/mib, got/mib, c.want/mib)
		}
	}
}

func TestAfterGCSignalsEachCollectionUntilCanceled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c := afterGC(ctx)
	for range 3 {
		runtime.GC()
		select {
		case <-c:
		case <-time.After(10 * time.Second):
			t.Fatal("no signal within 10 s of a collection")
		}
	}
}

// restoreLimit puts the process's memory limit back after a test of serve.
func restoreLimit(t *testing.T) {
	limit := debug.SetMemoryLimit(-1)
	t.Cleanup(func() { debug.SetMemoryLimit(limit) })
}

// serveWithLimit starts serve with -memory 64MiB and no GOMEMLIMIT in
// front of an origin answering every request with body as ctype.
func serveWithLimit(t *testing.T, ctype, body string) *running {
	restoreLimit(t)
	t.Setenv("GOMEMLIMIT", "")
	debug.SetMemoryLimit(math.MaxInt64)
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=600")
		w.Header().Set("Content-Type", ctype)
		io.WriteString(w, body)
	}))
	t.Cleanup(origin.Close)
	r, err := startServe(t, "-origin", origin.URL, "-data-dir", t.TempDir(), "-memory", "64MiB", "-access-log=false")
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestServeMemoryLimitFollowsTheCache(t *testing.T) {
	r := serveWithLimit(t, "application/octet-stream", strings.Repeat("x", 1<<20))
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
	if l := debug.SetMemoryLimit(-1); l < 32<<20 {
		t.Fatalf("memory limit %d when ready, want at least 32 MiB for an empty cache", l)
	}
	for i := range 8 {
		get(t, "http://"+r.proxy+"/"+string(rune('a'+i)))
	}
	// 8 MiB of bodies resident: the limit grows by 1.25 × that.
	waitLimit("at least 32 MiB + 1.25 × 8 MiB", func(l int64) bool { return l >= 32<<20+10<<20 })
}

// TestServeMemoryLimitLeavesTheCollectorRoom: a live heap larger than the
// empty cache's limit (32 MiB) raises the limit after the next collection
// to at least that heap and 16 MiB, so that the collector does not run back
// to back.
func TestServeMemoryLimitLeavesTheCollectorRoom(t *testing.T) {
	serveWithLimit(t, "application/octet-stream", "x")
	live := make([]byte, 64<<20)
	for i := range live {
		live[i] = byte(i)
	}
	deadline := time.Now().Add(20 * time.Second)
	for l := debug.SetMemoryLimit(-1); l < 80<<20; l = debug.SetMemoryLimit(-1) {
		if time.Now().After(deadline) {
			t.Fatalf("memory limit %d MiB with 64 MiB live: want at least 80 MiB", l>>20)
		}
		runtime.GC()
		time.Sleep(10 * time.Millisecond)
	}
	runtime.KeepAlive(live)
}

// TestServeMemoryLimitMakesRoomForEncoders: an encoding job's encoders
// raise the limit by what they hold, from when they are made.
func TestServeMemoryLimitMakesRoomForEncoders(t *testing.T) {
	r := serveWithLimit(t, "text/html", strings.Repeat("<p>a compressible page</p>\n", 4<<10))
	get(t, "http://"+r.proxy+"/page") // stores it and starts its encoding job
	deadline := time.Now().Add(20 * time.Second)
	for {
		enc := compress.EncoderBytes()
		if l := debug.SetMemoryLimit(-1); enc > 0 && l >= 32<<20+enc {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("memory limit %d with %d bytes of encoders: want at least 32 MiB more", debug.SetMemoryLimit(-1), enc)
		}
		time.Sleep(5 * time.Millisecond)
	}
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
