package accesslog

import (
	"io"
	"net/netip"
	"testing"
	"time"
)

// hitEntry is the line of a 1 KiB memory hit as cellar serve logs it under
// wrk: no origin, no client request id.
func hitEntry() *Entry {
	return &Entry{
		Time:     time.Date(2026, 12, 2, 6, 1, 2, 345e6, time.UTC),
		Duration: 12 * time.Microsecond,
		Remote:   netip.MustParseAddr("127.0.0.1"),
		Method:   "GET",
		Host:     "127.0.0.1:37080",
		URI:      "/1k/123",
		Proto:    "HTTP/1.1",
		Status:   200,
		Bytes:    1024,
		Cache:    "cellar; hit; ttl=3599",
		Seq:      123456,
	}
}

// BenchmarkAppendHit formats a memory hit's line in each format.
func BenchmarkAppendHit(b *testing.B) {
	for _, f := range []Format{Text, JSON, Combined} {
		b.Run(f.String(), func(b *testing.B) {
			e := hitEntry()
			buf := make([]byte, 0, 1024)
			b.ReportAllocs()
			for b.Loop() {
				e.Seq++
				buf = f.Append(buf[:0], e)
			}
		})
	}
}

// BenchmarkWriteEntryHit is a memory hit's line through a Writer that
// discards: formatting in place and the background writer's share.
func BenchmarkWriteEntryHit(b *testing.B) {
	w := New(io.Discard, Options{})
	defer w.Close()
	e := hitEntry()
	b.ReportAllocs()
	for b.Loop() {
		e.Seq++
		w.WriteEntry(Text, e)
	}
}
