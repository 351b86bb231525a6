package store

import (
	"context"
	"flag"
	"fmt"
	"testing"
)

var purgeBenchObjects = flag.Int("store-purge-objects", 20_000, "objects in BenchmarkPurge")

// BenchmarkPurge stores N small objects and purges them: by one tag that
// they all carry, by URL one at a time (2,000 of them), and 2,000 URLs in
// one PurgeMany. It reports the
// objects purged per second (objects/s), so that large purges can be
// compared across changes. Run it with -benchtime=1x.
func BenchmarkPurge(b *testing.B) {
	n := *purgeBenchObjects
	for _, kind := range []string{"tag", "url", "urls-in-one-purge"} {
		b.Run(kind, func(b *testing.B) {
			for b.Loop() {
				b.StopTimer()
				opts := testOptions(b)
				opts.DiskBytes = 4 << 30
				opts.MemoryBytes = 64 << 20
				opts.NoSync = true
				s := openTest(b, opts)
				ctx := context.Background()
				payload := body(500, 1)
				for i := range n {
					put(b, s, fmt.Sprintf("http://h.example/obj/%d", i), payload, CreateOptions{Tags: []string{"all", fmt.Sprintf("t%d", i)}, SizeHint: int64(len(payload))})
				}
				b.StartTimer()
				purged := 0
				if kind == "tag" {
					k, err := s.Purge(ctx, Selector{Tag: "all"}, false)
					if err != nil {
						b.Fatal(err)
					}
					purged = k
				} else if kind == "urls-in-one-purge" {
					sels := make([]Selector, min(n, 2000))
					for i := range sels {
						sels[i] = Selector{URL: fmt.Sprintf("http://h.example/obj/%d", i)}
					}
					k, err := s.PurgeMany(ctx, sels, false)
					if err != nil {
						b.Fatal(err)
					}
					purged = k
				} else {
					for i := range min(n, 2000) {
						k, err := s.Purge(ctx, Selector{URL: fmt.Sprintf("http://h.example/obj/%d", i)}, false)
						if err != nil {
							b.Fatal(err)
						}
						purged += k
					}
				}
				b.StopTimer()
				if purged == 0 {
					b.Fatal("nothing purged")
				}
				b.ReportMetric(float64(purged)/b.Elapsed().Seconds(), "objects/s")
				s.Close()
				b.StartTimer()
			}
		})
	}
}
