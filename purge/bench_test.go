package purge_test

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cellar-cache/cellar/cache"
	"github.com/cellar-cache/cellar/store"
)

// BenchmarkPurgeTagWhileServingHits purges a tag carried by 100,000 stored
// objects through the admin API while clients keep hitting other objects
// through the proxy, and reports the purge's duration and the p99 hit
// latency during the purge (and, for comparison, before it). Setup stores
// the objects directly in the store; it takes a while, so the benchmark is
// skipped with -short. Run it with -benchtime=1x.
func BenchmarkPurgeTagWhileServingHits(b *testing.B) {
	if testing.Short() {
		b.Skip("stores 100,000 objects")
	}
	objects := *benchObjects
	const (
		hot     = 64
		clients = 4
	)
	for b.Loop() {
		b.StopTimer()
		r := newRig(b, catalog, func(r *rig) {
			r.sopts.MemoryBytes, r.sopts.DiskBytes = 64<<20, 2<<30 // no eviction
		})
		ctx := context.Background()
		setup := time.Now()
		fillTagged(b, r.store, objects, "bulk")
		b.Logf("stored %d tagged objects in %v", objects, time.Since(setup))
		for i := range hot {
			r.get(fmt.Sprintf("/hot/%d", i))
		}
		r.waitIdle()

		var during atomic.Bool
		var mu sync.Mutex // protects idle, busy
		var idle, busy []time.Duration
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for c := range clients {
			wg.Add(1)
			go func() {
				defer wg.Done()
				client := r.front.Client()
				var myIdle, myBusy []time.Duration
				for i := c; ; i++ {
					select {
					case <-stop:
						mu.Lock()
						idle, busy = append(idle, myIdle...), append(busy, myBusy...)
						mu.Unlock()
						return
					default:
					}
					req, _ := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("%s/hot/%d", r.front.URL, i%hot), nil)
					req.Host = testHost
					in := during.Load()
					start := time.Now()
					resp, err := client.Do(req)
					if err != nil {
						b.Error(err)
						return
					}
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					d := time.Since(start)
					if !isHit(resp) {
						b.Errorf("GET /hot/%d: not a hit", i%hot)
					}
					if in && during.Load() {
						myBusy = append(myBusy, d)
					} else if !in {
						myIdle = append(myIdle, d)
					}
				}
			}()
		}
		time.Sleep(500 * time.Millisecond) // idle baseline
		during.Store(true)
		b.StartTimer()
		start := time.Now()
		code, a := r.purgeReq("tag", `{"tags":["bulk"]}`, testToken)
		elapsed := time.Since(start)
		b.StopTimer()
		during.Store(false)
		close(stop)
		wg.Wait()
		if code != 200 || a.Purged != objects {
			b.Fatalf("purge = %d %+v, want %d objects", code, a, objects)
		}
		b.ReportMetric(elapsed.Seconds(), "purge-s")
		b.ReportMetric(float64(objects)/elapsed.Seconds(), "objects/s")
		b.ReportMetric(p99(busy).Seconds()*1000, "p99-hit-ms-during")
		b.ReportMetric(p99(idle).Seconds()*1000, "p99-hit-ms-idle")
		b.ReportMetric(float64(len(busy)), "hits-during")
		r.stop()
		b.StartTimer()
	}
}

var benchObjects = flag.Int("purge-objects", 100_000, "objects carrying the purged tag in BenchmarkPurgeTagWhileServingHits")

func p99(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	slices.Sort(ds)
	return ds[len(ds)*99/100]
}

// fillTagged stores n small objects with tag, from 32 goroutines (so that
// pebble groups their synced commits).
func fillTagged(b *testing.B, st *store.Store, n int, tag string) {
	meta := cache.Meta{Status: 200, Header: http.Header{"Cache-Control": {"max-age=3600"}}, RequestTime: time.Now(), ResponseTime: time.Now()}
	body := make([]byte, 512)
	var wg sync.WaitGroup
	for g := range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx := context.Background()
			for i := g; i < n; i += 32 {
				w, err := st.Create(ctx, fmt.Sprintf("http://%s/bulk/%d", testHost, i), meta, store.CreateOptions{Tags: []string{tag, fmt.Sprintf("item-%d", i)}, SizeHint: int64(len(body))})
				if err == nil {
					_, err = w.Write(body)
				}
				if err == nil {
					_, err = w.Commit(ctx)
				}
				if err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
}
