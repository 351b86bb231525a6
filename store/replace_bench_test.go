package store

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
)

// reportDrops reports the share of hits that the replacement policy never
// saw (dropped from its hit ring), of the hits s served since hits0.
func reportDrops(b *testing.B, s *Store, hits0 int64) {
	d := s.cur()
	if d == nil {
		return
	}
	if n := s.Stats().Hits - hits0; n > 0 {
		b.ReportMetric(float64(d.repl.dropped.Load())/float64(n), "dropped/hit")
	}
}

// BenchmarkGetMemoryKeys is parallel memory hits on 1000 keys of 1 KiB:
// the hit path's cost with the policy's hit ring under load, and the share
// of hits the ring drops (dropped/hit) before the policy sees them.
func BenchmarkGetMemoryKeys(b *testing.B) {
	s := openTest(b, benchOptions(b, true))
	const n = 1000
	keys := make([]string, n)
	for i := range keys {
		keys[i] = fmt.Sprintf("http://h/k/%d", i)
		put(b, s, keys[i], body(1<<10, 1), CreateOptions{SizeHint: 1 << 10})
	}
	s.mem.c.Wait()
	ctx := context.Background()
	for _, k := range keys {
		if _, err := s.Get(ctx, k); err != nil {
			b.Fatal(err)
		}
	}
	s.mem.c.Wait()
	hits0 := s.Stats().Hits
	var next atomic.Uint64
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := next.Add(7919)
		for pb.Next() {
			i += 7919
			if _, err := s.Get(ctx, keys[i%n]); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.StopTimer()
	reportDrops(b, s, hits0)
}
