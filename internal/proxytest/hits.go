package proxytest

import (
	"bytes"
	"fmt"
	"net"
	"runtime"
	"testing"
	"time"
)

// HitClient sends keep-alive GETs of a set of paths in turn on one
// connection and reads their answers, all without allocating: a test can
// count what the server allocates per request (AllocsPerHit).
type HitClient struct {
	conn     net.Conn
	reqs     [][]byte
	buf      []byte
	bodySize int
	next     int
}

// DialHits connects to addr for GETs of paths with Host host and the
// header lines fields (each ending in CRLF; "" for none, as wrk sends),
// each answered with a body of bodySize bytes.
func DialHits(t testing.TB, addr, host string, paths []string, fields string, bodySize int) *HitClient {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	conn.SetDeadline(time.Now().Add(2 * time.Minute))
	c := &HitClient{conn: conn, buf: make([]byte, bodySize+64<<10), bodySize: bodySize}
	for _, p := range paths {
		c.reqs = append(c.reqs, fmt.Appendf(nil, "GET %s HTTP/1.1\r\nHost: %s\r\n%s\r\n", p, host, fields))
	}
	return c
}

var (
	status200   = []byte("HTTP/1.1 200 ")
	headerEnd   = []byte("\r\n\r\n")
	hitParam    = []byte("hit;")
	lengthField = []byte("\r\nContent-Length: ")
)

// Hits sends n requests one after the other and checks that each is
// answered 200 from the cache (Cache-Status has hit) with a body of the
// size given to DialHits.
func (c *HitClient) Hits(t testing.TB, n int) {
	t.Helper()
	for range n {
		if _, err := c.conn.Write(c.reqs[c.next%len(c.reqs)]); err != nil {
			t.Fatal(err)
		}
		c.next++
		have, end := 0, -1
		for end < 0 || have < end+c.bodySize {
			m, err := c.conn.Read(c.buf[have:])
			if err != nil {
				t.Fatalf("reading the answer after %d bytes: %v", have, err)
			}
			have += m
			if end < 0 {
				if i := bytes.Index(c.buf[:have], headerEnd); i >= 0 {
					end = i + len(headerEnd)
				}
			}
		}
		head := c.buf[:end]
		if !bytes.HasPrefix(head, status200) || !bytes.Contains(head, hitParam) || have != end+c.bodySize ||
			contentLength(head) != c.bodySize {
			t.Fatalf("not a hit of %d bytes (%d bytes read):\n%s", c.bodySize, have, head)
		}
	}
}

// contentLength is the Content-Length of a response header block (-1:
// none).
func contentLength(head []byte) int {
	i := bytes.Index(head, lengthField)
	if i < 0 {
		return -1
	}
	n := 0
	for _, b := range head[i+len(lengthField):] {
		if b < '0' || b > '9' {
			break
		}
		n = n*10 + int(b-'0')
	}
	return n
}

// AllocsPerHit sends rounds rounds of n hits and returns the allocations
// and bytes the whole process made per hit in the round that made the
// fewest bytes, whichever goroutine made them: a buffer that grows to its
// bound (the access log's chunks, made as the flusher falls behind) shows
// in one round at most, a cost of every hit in all.
func (c *HitClient) AllocsPerHit(t testing.TB, rounds, n int) (allocs, bytes float64) {
	t.Helper()
	for i := range rounds {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		c.Hits(t, n)
		runtime.ReadMemStats(&after)
		a, b := float64(after.Mallocs-before.Mallocs)/float64(n), float64(after.TotalAlloc-before.TotalAlloc)/float64(n)
		if i == 0 || b < bytes {
			allocs, bytes = a, b
		}
	}
	return allocs, bytes
}
