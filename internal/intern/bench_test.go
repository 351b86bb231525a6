package intern

import (
	"fmt"
	"testing"
)

// BenchmarkBytesHit looks up kept strings of the length of a cache key. In
// "cold" the table holds 64 Ki of them, more than the CPU's caches hold,
// as a server's table is cold between two requests for one URL: a lookup
// then pays for the memory it reads.
func BenchmarkBytesHit(b *testing.B) {
	for _, tc := range []struct {
		name string
		n    int
	}{{"warm", 256}, {"cold", 64 << 10}} {
		b.Run(tc.name, func(b *testing.B) {
			tb := New(2*tc.n, 256)
			keys := make([][]byte, tc.n)
			for i := range keys {
				keys[i] = fmt.Appendf(nil, "http://127.0.0.1:27480/1k/%d", i)
				tb.Bytes(keys[i])
			}
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				// A stride through the keys defeats the prefetcher.
				tb.Bytes(keys[(i*7919)%len(keys)])
			}
		})
	}
}
