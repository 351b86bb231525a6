package proxy

import (
	"context"
	"errors"
	"io"
	"net/http"
	"testing"
	"time"
)

// TestDrainWaitsForFillsInProgress starts a fill whose origin holds the
// body back: Drain does not return while it runs (its context ends
// first), and returns once the body is complete and stored.
func TestDrainWaitsForFillsInProgress(t *testing.T) {
	release := make(chan struct{})
	r := newRig(t, func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		w.Header().Set("Content-Length", "4")
		io.WriteString(w, "ab")
		w.(http.Flusher).Flush()
		<-release
		io.WriteString(w, "cd")
	})
	done := make(chan string, 1)
	go func() { _, body := r.get("/slow"); done <- body }()
	deadline := time.Now().Add(10 * time.Second)
	for r.server.flights.active() == 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := r.server.Drain(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Drain during a fill: %v, want the context's deadline", err)
	}
	close(release)
	if err := r.server.Drain(context.Background()); err != nil {
		t.Errorf("Drain after the fill: %v", err)
	}
	if body := <-done; body != "abcd" {
		t.Errorf("body %q", body)
	}
	if resp, _ := r.get("/slow"); !isHit(resp.Header.Get("Cache-Status")) {
		t.Errorf("after Drain the fill is not stored: %q", resp.Header.Get("Cache-Status"))
	}
}
