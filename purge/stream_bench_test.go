package purge_test

import (
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/cellar-cache/cellar/cache"
	"github.com/cellar-cache/cellar/cluster/purgestream"
	"github.com/cellar-cache/cellar/purge"
	"github.com/cellar-cache/cellar/store"
)

// BenchmarkStreamCatchUpOnAStore measures a restarted node's catch-up on
// 200 URL purges published while it was down, applied to a real store
// that holds each purged object (one durable store purge per batch).
func BenchmarkStreamCatchUpOnAStore(b *testing.B) {
	const events = 200
	dir := b.TempDir()
	srv, err := purgestream.StartServer(purgestream.ServerOptions{Listen: "127.0.0.1:0", StoreDir: filepath.Join(dir, "nats")})
	if err != nil {
		b.Fatal(err)
	}
	defer srv.Close()
	st, err := store.Open(store.Options{Dir: filepath.Join(dir, "store"), MemoryBytes: 8 << 20, DiskBytes: 256 << 20})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	api, err := purge.New(st, purge.Options{Tokens: []string{"bench-token-0123456789"}})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	open := func(name string, apply func(context.Context, []purgestream.Event) (int, error)) *purgestream.Stream {
		s, err := purgestream.New(purgestream.Options{URL: srv.URL(), Node: name, StateFile: filepath.Join(dir, name+".json"), Apply: apply, ApplyWait: 10 * time.Second})
		if err != nil {
			b.Fatal(err)
		}
		select {
		case <-s.CaughtUp():
		case <-time.After(30 * time.Second):
			b.Fatal("no catch-up")
		}
		return s
	}
	a := open("a", func(context.Context, []purgestream.Event) (int, error) { return 0, nil })
	defer a.Close()
	open("c", api.Apply).Close()
	var total time.Duration
	purged := 0
	for i := 0; b.Loop(); i++ {
		b.StopTimer()
		for j := range events {
			u := fmt.Sprintf("http://x.test/%d/%d", i, j)
			key, _ := cache.KeyFromURL(u)
			w, err := st.Create(ctx, key, cache.Meta{Status: 200, Header: http.Header{}, RequestTime: time.Now(), ResponseTime: time.Now()}, store.CreateOptions{})
			if err != nil {
				b.Fatal(err)
			}
			w.Write([]byte("body"))
			if _, err := w.Commit(ctx); err != nil {
				b.Fatal(err)
			}
			if _, err := a.Publish(ctx, "url", fmt.Appendf(nil, `{"urls":[%q]}`, u)); err != nil {
				b.Fatal(err)
			}
		}
		b.StartTimer()
		start := time.Now()
		c := open("c", func(ctx context.Context, evs []purgestream.Event) (int, error) {
			n, err := api.Apply(ctx, evs)
			purged += n
			return n, err
		})
		total += time.Since(start)
		b.StopTimer()
		c.Close()
		b.StartTimer()
	}
	if purged != events*b.N {
		b.Errorf("purged %d objects, want %d", purged, events*b.N)
	}
	b.ReportMetric(float64(total.Milliseconds())/float64(b.N), "ms/catch-up")
	b.ReportMetric(float64(events)*float64(b.N)/total.Seconds(), "events/s")
}
