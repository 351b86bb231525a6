package main

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cellar-cache/cellar/internal/proxytest"
)

// TestServeHitAllocations counts what a 1 KiB memory hit allocates in
// cellar serve at its defaults (access log on, metrics, the dashboard's
// URL tracker), over a real loopback connection: every allocation in the
// process during thousands of hits of a hot set of URLs larger than the
// dashboard's summary. A hit allocates nothing of its own (the released
// request, kept target, key and tracked URL strings); what is left is
// ristretto's get buffer, 512 B every 64 hits. So the collector, whose
// pauses make most of a small hit's p99 on one CPU (docs/DESIGN.md, the
// tail of small hits), runs rarely.
func TestServeHitAllocations(t *testing.T) {
	if testing.Short() || raceEnabled {
		t.Skip("allocation count (with -race, ristretto's pools allocate at random)")
	}
	body := strings.Repeat("x", 1<<10)
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=3600")
		w.Header().Set("Content-Type", "application/octet-stream")
		fmt.Fprint(w, body)
	}))
	defer origin.Close()
	dir := t.TempDir()
	r, err := startServe(t, "-origin", origin.URL, "-data-dir", filepath.Join(dir, "data"),
		"-access-log-path", filepath.Join(dir, "access.log"))
	if err != nil {
		t.Fatal(err)
	}
	paths := make([]string, 400) // twice the dashboard's summary
	for i := range paths {
		paths[i] = fmt.Sprintf("/1k/%d", i)
		get(t, "http://"+r.proxy+paths[i])
	}
	// The memory tier admits in the background.
	for deadline := time.Now().Add(20 * time.Second); ; {
		if _, rd := readyz(t, r.admin); rd.Store.MemoryObjects >= int64(len(paths)) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not all %d objects in memory after 20s", len(paths))
		}
		for _, p := range paths {
			get(t, "http://"+r.proxy+p)
		}
	}
	c := proxytest.DialHits(t, r.proxy, r.proxy, paths, "", len(body))
	c.Hits(t, 10_000) // each URL met, buffers (the access log's chunks) grown
	allocs, bytes := c.AllocsPerHit(t, 3, 10_000)
	t.Logf("per 1 KiB memory hit: %.3f allocations, %.1f bytes", allocs, bytes)
	// Budget: ristretto's 1/64 allocation and 8 bytes per hit, with room
	// for the runtime's, the test's own and the dashboard's summary.
	if allocs > 0.05 || bytes > 16 {
		t.Errorf("a memory hit allocates %.3f times, %.1f bytes; want at most 0.05 and 16", allocs, bytes)
	}
}
