package leaktest

import (
	"testing"
	"time"
)

func TestPollSeesAGoroutineStartedAfterwards(t *testing.T) {
	before := stacks()
	stop := make(chan struct{})
	started := make(chan struct{})
	go func() { close(started); <-stop }()
	<-started
	deadline := time.Now().Add(wait)
	var left []string
	for time.Now().Before(deadline) {
		left = left[:0]
		for id, s := range stacks() {
			if _, ok := before[id]; !ok && !benign(s) {
				left = append(left, s)
			}
		}
		if len(left) > 0 {
			break
		}
	}
	close(stop)
	if len(left) != 1 {
		t.Fatalf("found %d new goroutines, want the 1 parked one", len(left))
	}
	if left := poll(before); len(left) != 0 {
		t.Errorf("after it exited, poll still reports %d", len(left))
	}
}

func TestCheckPassesACleanTest(t *testing.T) {
	Check(t)
	done := make(chan struct{})
	go func() { close(done) }()
	<-done
}
