package accesslog

import (
	"io"
	"net/netip"
	"runtime"
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

// BenchmarkWriteEntryHit is a memory hit's line through a Writer: formatted
// in place, and written by the background writer to io.Discard or to a
// file (as cellar serve logs; its system calls are in the process's CPU
// time). The loop yields every 16 lines, as a server's goroutines park
// between requests: on one P a loop that never yields starves the writer,
// and nearly every line is dropped (dropped/op says).
func BenchmarkWriteEntryHit(b *testing.B) {
	for _, out := range []string{"discard", "file"} {
		b.Run(out, func(b *testing.B) {
			var w *Writer
			if out == "file" {
				var err error
				if w, err = Open(b.TempDir()+"/access.log", Options{}); err != nil {
					b.Fatal(err)
				}
			} else {
				w = New(io.Discard, Options{})
			}
			e := hitEntry()
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				e.Seq++
				w.WriteEntry(Text, e)
				if i%16 == 0 {
					runtime.Gosched()
				}
			}
			w.Close()
			b.ReportMetric(float64(w.Dropped())/float64(b.N), "dropped/op")
		})
	}
}
