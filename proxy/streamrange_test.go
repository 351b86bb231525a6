package proxy

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/cellar-cache/cellar/cache"
)

func TestStreamRange(t *testing.T) {
	const size = 100
	lm := "Mon, 02 Jan 2006 15:04:05 GMT"
	m := &cache.Meta{Status: 200, Header: http.Header{"Etag": {`"v1"`}, "Last-Modified": {lm}}}
	tests := []struct {
		rng, ifRange string
		ans          rangeAnswer
		start, n     int64
	}{
		{"bytes=0-9", "", rangePartial, 0, 10},
		{"bytes=90-", "", rangePartial, 90, 10},
		{"bytes=95-200", "", rangePartial, 95, 5},
		{"bytes=-5", "", rangePartial, 95, 5},
		{"bytes=-500", "", rangePartial, 0, 100},
		{"Bytes = 1-1", "", rangePartial, 1, 1},
		{"bytes=99-99", "", rangePartial, 99, 1},
		{"bytes=100-", "", rangeUnsatisfiable, 0, 0},
		{"bytes=-0", "", rangeUnsatisfiable, 0, 0},
		{"bytes=0-1,5-6", "", rangeIgnore, 0, 0},
		{"bytes=5-1", "", rangeIgnore, 0, 0},
		{"bytes=a-b", "", rangeIgnore, 0, 0},
		{"bytes=+1-2", "", rangeIgnore, 0, 0},
		{"bytes=99999999999999999999-", "", rangeIgnore, 0, 0},
		{"items=0-1", "", rangeIgnore, 0, 0},
		{"bytes", "", rangeIgnore, 0, 0},
		{"bytes=0-9", `"v1"`, rangePartial, 0, 10},
		{"bytes=0-9", `"v2"`, rangeIgnore, 0, 0},
		{"bytes=0-9", `W/"v1"`, rangeIgnore, 0, 0},
		{"bytes=0-9", lm, rangePartial, 0, 10},
		{"bytes=0-9", "Tue, 03 Jan 2006 15:04:05 GMT", rangeIgnore, 0, 0},
		{"bytes=0-9", "garbage", rangeIgnore, 0, 0},
	}
	for _, tt := range tests {
		r, _ := http.NewRequest(http.MethodGet, "http://x/", nil)
		r.Header.Set("Range", tt.rng)
		if tt.ifRange != "" {
			r.Header.Set("If-Range", tt.ifRange)
		}
		ans, start, n := streamRange(r, m, size)
		if ans != tt.ans || start != tt.start || n != tt.n {
			t.Errorf("Range %q If-Range %q: %v %d+%d, want %v %d+%d", tt.rng, tt.ifRange, ans, start, n, tt.ans, tt.start, tt.n)
		}
	}
	r, _ := http.NewRequest(http.MethodGet, "http://x/", nil)
	r.Header.Set("Range", "bytes=0-9")
	if ans, _, _ := streamRange(r, m, -1); ans != rangeIgnore {
		t.Error("a range of a body of unknown length must be ignored")
	}
}

// TestRangeRequestsOnAMissGetTheirRangeAsTheFillStreams checks RFC 9110
// §14.2 on a miss: the fill asks the origin for the whole object, and each
// client that asked for one byte range, the leader and collapsed waiters,
// gets a 206 with its range as soon as those bytes have arrived, while the
// whole object is stored once.
func TestRangeRequestsOnAMissGetTheirRangeAsTheFillStreams(t *testing.T) {
	half := strings.Repeat("a", 5000)
	rest := strings.Repeat("b", 5000)
	release := make(chan struct{})
	r := newRig(t, func(w http.ResponseWriter, req *http.Request) {
		if req.Header.Get("Range") != "" {
			t.Errorf("the fill forwarded Range %q", req.Header.Get("Range"))
		}
		w.Header().Set("Cache-Control", "max-age=60")
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Content-Length", "10000")
		w.Header().Set("Etag", `"e1"`)
		io.WriteString(w, half)
		w.(http.Flusher).Flush()
		select {
		case <-release:
		case <-time.After(10 * time.Second):
			return
		}
		io.WriteString(w, rest)
	})
	defer func() {
		select {
		case <-release:
		default:
			close(release)
		}
	}()
	type answer struct {
		status       int
		contentRange string
		body         string
		err          error
	}
	c := herdClient(t, 4)
	ask := func(rng string) <-chan answer {
		ch := make(chan answer, 1)
		go func() {
			req, _ := http.NewRequest(http.MethodGet, r.front.URL+"/video", nil)
			req.Host = testHost
			req.Header.Set("Range", rng)
			resp, err := c.Do(req)
			if err != nil {
				ch <- answer{err: err}
				return
			}
			defer resp.Body.Close()
			b, err := io.ReadAll(resp.Body)
			ch <- answer{resp.StatusCode, resp.Header.Get("Content-Range"), string(b), err}
		}()
		return ch
	}
	leader := ask("bytes=10-19")
	var a answer
	select {
	case a = <-leader:
	case <-time.After(10 * time.Second):
		t.Fatal("a range in the bytes already received waited for the rest of the body")
	}
	if a.err != nil || a.status != http.StatusPartialContent || a.contentRange != "bytes 10-19/10000" || a.body != half[10:20] {
		t.Fatalf("leader: %d %q %q %v, want 206 bytes 10-19/10000", a.status, a.contentRange, a.body, a.err)
	}
	// Collapsed onto the same fill: one range in the part still to come.
	waiter := ask("bytes=-3")
	deadline := time.Now().Add(5 * time.Second)
	for metricValue(t, r.server.metrics.collapsed) < 1 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	close(release)
	a = <-waiter
	if a.err != nil || a.status != http.StatusPartialContent || a.contentRange != "bytes 9997-9999/10000" || a.body != "bbb" {
		t.Fatalf("waiter: %d %q %q %v, want 206 bytes 9997-9999/10000", a.status, a.contentRange, a.body, a.err)
	}
	r.waitIdle()
	if n := r.hits(); n != 1 {
		t.Fatalf("origin saw %d requests, want 1", n)
	}
	resp, body := r.sget("/video")
	if !isHit(resp.Header.Get("Cache-Status")) || body != half+rest {
		t.Fatalf("after the fill: Cache-Status %q, %d bytes; want a hit of the whole object", resp.Header.Get("Cache-Status"), len(body))
	}
}

// TestRangeOnAMissThatCannotBeAnsweredAsARange covers the other answers of
// a streaming fill to Range: an unsatisfiable range gets 416 with the
// current length (§15.5.17) and the fill is still stored; several ranges
// and a non-matching If-Range get the whole 200 (§14.2, §13.1.5).
func TestRangeOnAMissThatCannotBeAnsweredAsARange(t *testing.T) {
	tests := []struct {
		name, rng, ifRange string
		status             int
		contentRange, body string
	}{
		{"unsatisfiable", "bytes=100-", "", http.StatusRequestedRangeNotSatisfiable, "bytes */10", ""},
		{"several ranges", "bytes=0-1,3-4", "", http.StatusOK, "", "0123456789"},
		{"if-range mismatch", "bytes=0-1", `"old"`, http.StatusOK, "", "0123456789"},
		{"if-range match", "bytes=2-4", `"e1"`, http.StatusPartialContent, "bytes 2-4/10", "234"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRig(t, reply(200, "0123456789", "Cache-Control: max-age=60", `ETag: "e1"`, "Content-Type: application/octet-stream"))
			hdr := []string{"Range: " + tt.rng}
			if tt.ifRange != "" {
				hdr = append(hdr, "If-Range: "+tt.ifRange)
			}
			resp, body := r.sget("/r", hdr...)
			if resp.StatusCode != tt.status || resp.Header.Get("Content-Range") != tt.contentRange || body != tt.body {
				t.Errorf("%d %q %q, want %d %q %q", resp.StatusCode, resp.Header.Get("Content-Range"), body, tt.status, tt.contentRange, tt.body)
			}
			if resp, body := r.sget("/r"); !isHit(resp.Header.Get("Cache-Status")) || body != "0123456789" {
				t.Errorf("then: Cache-Status %q %q, want a hit of the whole object", resp.Header.Get("Cache-Status"), body)
			}
		})
	}
}

// TestRangeOnAMissWhoseFillFailsBeforeTheRange checks that an origin that
// fails before delivering the requested range gets a 502, not a 206 with
// a truncated body, and that nothing is stored.
func TestRangeOnAMissWhoseFillFailsBeforeTheRange(t *testing.T) {
	r := newRig(t, func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		w.Header().Set("Content-Length", "100")
		w.Header().Set("Etag", `"e1"`)
		fmt.Fprint(w, "0123456789")
		w.(http.Flusher).Flush()
		panic(http.ErrAbortHandler)
	})
	resp, body := r.sget("/broken", "Range: bytes=50-59")
	if resp.StatusCode != http.StatusBadGateway || resp.Header.Get("Content-Range") != "" || resp.Header.Get("Etag") != "" {
		t.Fatalf("%d %q (Content-Range %q, ETag %q), want a plain 502", resp.StatusCode, body, resp.Header.Get("Content-Range"), resp.Header.Get("Etag"))
	}
	if cs := resp.Header.Get("Cache-Status"); !hasParam(cs, "detail=origin-closed") || hasParam(cs, "stored") {
		t.Errorf("Cache-Status %q, want detail=origin-closed and not stored", cs)
	}
	if _, err := r.store.Get(t.Context(), "http://"+testHost+"/broken"); err == nil {
		t.Error("the failed fill was stored")
	}
}
