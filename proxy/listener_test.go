package proxy

import (
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cellar-cache/cellar/internal/h1/h1test"
)

// TestLargeHitLeavesInOneWritev: a 100 KiB memory hit reaches the socket
// in one writev(2) of its header and body, through the connection the
// proxy's Listener wraps (which net.Buffers alone cannot see through).
func TestLargeHitLeavesInOneWritev(t *testing.T) {
	body := strings.Repeat("0123456789", 10<<10)
	wc := &h1test.WriteCounter{Vectored: true}
	r := newRig(t, func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Cache-Control", "max-age=600")
		w.Header().Set("Content-Type", "application/octet-stream") // no coded variants
		io.WriteString(w, body)
	}, withRawListener(func(ln net.Listener) net.Listener { wc.Listener = ln; return wc }))
	r.get("/big")
	r.waitIdle()
	for i := range 3 {
		w0, v0 := wc.Counts()
		resp, got := r.do("GET", "/big", http.Header{"Accept-Encoding": {"identity"}})
		if !strings.Contains(resp.Header.Get("Cache-Status"), "hit") || got != body {
			t.Fatalf("hit %d: Cache-Status %q, %d bytes; want a hit and the %d-byte body",
				i, resp.Header.Get("Cache-Status"), len(got), len(body))
		}
		w1, v1 := wc.Counts()
		if w, v := w1-w0, v1-v0; w != 0 || v != 1 {
			t.Errorf("hit %d took %d writes and %d writev calls; want 0 and 1", i, w, v)
		}
	}
}

// deadlineConn records the write deadlines set on it.
type deadlineConn struct {
	net.Conn // nil: only the methods below are called
	mu       sync.Mutex
	set      []time.Time
}

func (c *deadlineConn) Write(p []byte) (int, error) { return len(p), nil }

func (c *deadlineConn) SetWriteDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.set = append(c.set, t)
	return nil
}

func (c *deadlineConn) deadlines() []time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]time.Time(nil), c.set...)
}

// TestWriteDeadlineMovesAtMostEveryQuarterOfTheTimeout: writes within a
// quarter of the write timeout keep the deadline the first set; a
// deadline set in between (by a handler) lasts only until the next write,
// which sets the timeout again.
func TestWriteDeadlineMovesAtMostEveryQuarterOfTheTimeout(t *testing.T) {
	const idle = 40 * time.Millisecond
	dc := &deadlineConn{}
	c := &limitConn{Conn: dc, l: &limitListener{writeIdle: idle}}
	start := time.Now()
	for range 10 {
		c.Write([]byte("x"))
	}
	set := dc.deadlines()
	if len(set) == 0 || set[0].Before(start.Add(idle)) {
		t.Fatalf("deadlines after the first writes: %v; want one, %v after the start", set, idle)
	}
	// Ten writes within a quarter of the timeout set it once; on a slow
	// machine more may pass between them, never more than a quarter each.
	if max := int(time.Since(start)/(idle/4)) + 1; len(set) > max {
		t.Errorf("%d deadlines in %v of writes; want at most %d", len(set), time.Since(start), max)
	}
	last := set[len(set)-1].Add(-idle) // when the last deadline was set
	for time.Since(last) < idle/4 {
		runtime.Gosched()
	}
	n := len(dc.deadlines())
	c.Write([]byte("x"))
	if set = dc.deadlines(); len(set) != n+1 {
		t.Fatalf("a write a quarter of the timeout later set %d deadlines; want 1", len(set)-n)
	}
	c.SetWriteDeadline(time.Time{})
	c.Write([]byte("x"))
	set = dc.deadlines()
	if len(set) != n+3 || !set[n+1].IsZero() || set[n+2].IsZero() {
		t.Errorf("deadlines set around a handler's: %v; want its zero, then the timeout again", set[n:])
	}
}
