package purgestream

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"
)

// BenchmarkCatchUp measures a restarted node's catch-up on 500 events
// published while it was down: the stream's own cost (fetch, saving the
// applied sequence, acknowledgement), with an Apply that does nothing (a
// real one adds a store purge per event).
func BenchmarkCatchUp(b *testing.B) {
	const events = 500
	dir := b.TempDir()
	srv, err := StartServer(ServerOptions{Listen: "127.0.0.1:0", StoreDir: filepath.Join(dir, "nats")})
	if err != nil {
		b.Fatal(err)
	}
	defer srv.Close()
	noop := func(context.Context, []Event) (int, error) { return 0, nil }
	open := func(name string) *Stream {
		s, err := New(Options{URL: srv.URL(), Node: name, StateFile: filepath.Join(dir, name+".json"), Apply: noop, ApplyWait: 10 * time.Second})
		if err != nil {
			b.Fatal(err)
		}
		select {
		case <-s.CaughtUp():
		case <-time.After(bound):
			b.Fatal("no catch-up")
		}
		return s
	}
	a := open("a")
	defer a.Close()
	open("c").Close()
	var total time.Duration
	for i := 0; b.Loop(); i++ {
		b.StopTimer()
		for j := range events {
			if _, err := a.Publish(context.Background(), "url", fmt.Appendf(nil, `{"urls":["http://x/%d/%d"]}`, i, j)); err != nil {
				b.Fatal(err)
			}
		}
		b.StartTimer()
		start := time.Now()
		c := open("c")
		total += time.Since(start)
		b.StopTimer()
		c.Close()
		b.StartTimer()
	}
	b.ReportMetric(float64(total.Milliseconds())/float64(b.N), "ms/catch-up")
	b.ReportMetric(float64(events)*float64(b.N)/total.Seconds(), "events/s")
}
