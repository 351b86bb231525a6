package proxy

import (
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cellar-cache/cellar/internal/quotafs"
	"github.com/cellar-cache/cellar/store"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// diskFullRig is a rig whose store sits on a file system with a modelled
// amount of free space (internal/quotafs), in front of an origin that
// serves /a (10 kB), /b (64 KiB: 16 chunks of the store's 4 KiB) and /c
// (1 kB: less than one chunk) and counts the requests for each.
type diskFullRig struct {
	*rig
	q                   *quotafs.FS
	bodyA, bodyB, bodyC string
	hitsA, hitsB, hitsC atomic.Int64
	// midBody makes /b stop after its first 48 KiB until the store has
	// counted a write error, so that the disk fills while the rest of the
	// body is still to come. (Chunks are written without a sync, so pebble
	// writes its log only once a 32 KiB block of it is full: 48 KiB of body
	// fill one.)
	midBody atomic.Bool
}

// diskFullRetry is the store's RetryInterval in these tests. The rig's
// store runs on the real clock (store.Options has no exported clock), so
// the interval is short and the tests sleep past it. Storing stays paused
// while the disk is full whatever the interval: resuming also needs room
// for the ballast again.
const diskFullRetry = 50 * time.Millisecond

func newDiskFullRig(t *testing.T) *diskFullRig {
	const size, first = 64 << 10, 48 << 10
	var sb strings.Builder
	for i := 0; sb.Len() < size; i++ {
		sb.WriteString(strconv.Itoa(i))
		sb.WriteByte(' ')
	}
	d := &diskFullRig{
		q:     quotafs.New(vfs.Default, 1<<30),
		bodyA: strings.Repeat("A", 10_000),
		bodyB: sb.String()[:size], // a gap or a repeat shows
		bodyC: strings.Repeat("C", 1_000),
	}
	var st atomic.Pointer[store.Store]
	send := func(w http.ResponseWriter, body string) {
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		io.WriteString(w, body)
	}
	d.rig = newRig(t, func(w http.ResponseWriter, req *http.Request) {
		w.Header().Set("Cache-Control", "max-age=3600")
		w.Header().Set("Content-Type", "application/octet-stream") // no compressed variants
		switch req.URL.Path {
		case "/a":
			d.hitsA.Add(1)
			send(w, d.bodyA)
		case "/c":
			d.hitsC.Add(1)
			send(w, d.bodyC)
		case "/b":
			d.hitsB.Add(1)
			if !d.midBody.Load() {
				send(w, d.bodyB)
				return
			}
			w.Header().Set("Content-Length", strconv.Itoa(len(d.bodyB)))
			io.WriteString(w, d.bodyB[:first])
			w.(http.Flusher).Flush()
			for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
				if st.Load().Stats().WriteErrors > 0 {
					break
				}
			}
			io.WriteString(w, d.bodyB[first:])
		default:
			http.NotFound(w, req)
		}
	}, withStoreOptions(func(o *store.Options) {
		o.FS = d.q
		o.ChunkSize = 4 << 10
		o.RetryInterval = diskFullRetry
	}))
	st.Store(d.store)
	return d
}

// get is rig.get that returns a failed body read, with what was read
// until then, instead of failing the test.
func (d *diskFullRig) get(path string) (*http.Response, string, error) {
	d.t.Helper()
	req, err := http.NewRequest(http.MethodGet, d.front.URL+path, nil)
	if err != nil {
		d.t.Fatal(err)
	}
	req.Host = testHost
	resp, err := d.front.Client().Do(req)
	if err != nil {
		d.t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp, string(b), err
}

// TestFullDiskPausesStoringThroughTheProxy: when the disk under the store
// fills up, clients still get the origin's whole responses, nothing more is
// stored, what is stored is still served, the failures are counted, and
// storing resumes once space returns.
func TestFullDiskPausesStoringThroughTheProxy(t *testing.T) {
	d := newDiskFullRig(t)
	if _, body, err := d.get("/a"); err != nil || body != d.bodyA {
		t.Fatalf("A: %d of %d bytes, %v", len(body), len(d.bodyA), err)
	}
	d.waitIdle()
	if resp, body, _ := d.get("/a"); body != d.bodyA || !isHit(resp.Header.Get("Cache-Status")) {
		t.Fatalf("A before the disk fills: %d bytes, Cache-Status %q; want a hit", len(body), resp.Header.Get("Cache-Status"))
	}

	// The disk fills up. C's body is less than a chunk, so the store's
	// first write to disk is its commit: it meets ENOSPC, the ballast
	// goes, the write lands in the space it freed, and storing pauses.
	d.q.SetFree(0)
	if resp, body, err := d.get("/c"); err != nil || resp.StatusCode != http.StatusOK || body != d.bodyC {
		t.Fatalf("C as the disk fills: status %d, %d of %d bytes, %v", resp.StatusCode, len(body), len(d.bodyC), err)
	}
	d.waitIdle()
	if n := d.store.Stats().WriteErrors; n == 0 {
		t.Fatal("store write errors = 0: the full disk was not met or not counted")
	}

	// Storing is paused: B is answered whole from the origin, each time,
	// and is not stored; A is still a hit.
	for i := 1; i <= 2; i++ {
		resp, body, err := d.get("/b")
		if err != nil || resp.StatusCode != http.StatusOK || body != d.bodyB {
			t.Errorf("B #%d while paused: status %d, %d of %d bytes, %v; want 200 and the origin's whole body", i, resp.StatusCode, len(body), len(d.bodyB), err)
		}
		cs := resp.Header.Get("Cache-Status")
		if isHit(cs) || strings.Contains(cs, "; stored") || !strings.Contains(cs, "detail=store-unavailable") {
			t.Errorf("B #%d while paused: Cache-Status %q; want a miss, not stored, detail=store-unavailable", i, cs)
		}
		d.waitIdle()
		if n := d.hitsB.Load(); n != int64(i) {
			t.Errorf("origin requests for B after %d requests while paused = %d: B was stored", i, n)
		}
	}
	if n := testutil.ToFloat64(d.server.metrics.storeErrors); n < 2 {
		t.Errorf("proxy store errors = %v, want the 2 refused fills of B counted", n)
	}
	if resp, body, _ := d.get("/a"); body != d.bodyA || !isHit(resp.Header.Get("Cache-Status")) {
		t.Errorf("A while storing is paused: %d bytes, Cache-Status %q; want a hit", len(body), resp.Header.Get("Cache-Status"))
	}
	if n := d.hitsA.Load(); n != 1 {
		t.Errorf("origin requests for A = %d, want 1", n)
	}

	// Space returns; past the retry interval B is stored again.
	d.q.SetFree(1 << 30)
	time.Sleep(2 * diskFullRetry)
	if resp, body, err := d.get("/b"); err != nil || body != d.bodyB || !strings.Contains(resp.Header.Get("Cache-Status"), "; stored") {
		t.Errorf("B after space returned: %d bytes, %v, Cache-Status %q; want a stored fill", len(body), err, resp.Header.Get("Cache-Status"))
	}
	d.waitIdle()
	if resp, body, _ := d.get("/b"); body != d.bodyB || !isHit(resp.Header.Get("Cache-Status")) {
		t.Errorf("B once stored again: %d bytes, Cache-Status %q; want a hit", len(body), resp.Header.Get("Cache-Status"))
	}
	if n := d.hitsB.Load(); n != 3 {
		t.Errorf("origin requests for B = %d, want 3", n)
	}
}

// TestFullDiskMidFillKeepsTheClientsBody: the disk fills while a
// response's body is on its way through a fill. The client must still get
// the origin's whole body, and the cut-short fill is not stored.
func TestFullDiskMidFillKeepsTheClientsBody(t *testing.T) {
	d := newDiskFullRig(t)
	d.q.SetFree(0)
	d.midBody.Store(true)
	resp, body, err := d.get("/b")
	d.midBody.Store(false)
	if err != nil || resp.StatusCode != http.StatusOK || body != d.bodyB {
		t.Errorf("B as the disk fills mid-body: status %d, %d of %d bytes, err %v; want 200 and the origin's whole body",
			resp.StatusCode, len(body), len(d.bodyB), err)
	}
	d.waitIdle()
	if n := d.store.Stats().WriteErrors; n == 0 {
		t.Error("store write errors = 0: the full disk was not met or not counted")
	}
	if n := testutil.ToFloat64(d.server.metrics.storeErrors); n == 0 {
		t.Error("proxy store errors = 0, want the failed store write counted")
	}
	if _, body, err := d.get("/b"); err != nil || body != d.bodyB {
		t.Errorf("B again: %d of %d bytes, %v", len(body), len(d.bodyB), err)
	}
	if n := d.hitsB.Load(); n != 2 {
		t.Errorf("origin requests for B = %d, want 2: the cut-short fill must not be stored", n)
	}
}
