package proxy

import (
	"runtime"
	"sort"
	"strings"
	"testing"
	"time"
)

// checkNoLeakedGoroutines fails t if goroutines that started during the
// test are still alive once its cleanups have run (the rig's stop among
// them: front server, Server.Close, store). Call it before newRig, so that
// its cleanup runs last. Goroutines take a moment to finish exiting, so it
// polls, for at most 5 s, instead of assuming a duration.
func checkNoLeakedGoroutines(t testing.TB) {
	t.Helper()
	before := goroutineStacks()
	t.Cleanup(func() {
		var left []string
		for deadline := time.Now().Add(5 * time.Second); ; {
			left = left[:0]
			for id, stack := range goroutineStacks() {
				if _, ok := before[id]; !ok && !benignGoroutine(stack) {
					left = append(left, stack)
				}
			}
			if len(left) == 0 || time.Now().After(deadline) {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		if len(left) > 0 {
			sort.Strings(left)
			t.Errorf("%d goroutines outlived the test:\n\n%s", len(left), strings.Join(left, "\n\n"))
		}
	})
}

// goroutineStacks returns the stack of every goroutine by its header line's
// id ("goroutine 42").
func goroutineStacks() map[string]string {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	m := make(map[string]string)
	for _, g := range strings.Split(string(buf), "\n\n") {
		head, _, _ := strings.Cut(g, " [")
		m[head] = g
	}
	return m
}

// benignGoroutine reports goroutines that the runtime or the testing
// package own, which no test of ours starts or must stop.
func benignGoroutine(stack string) bool {
	for _, s := range []string{
		"testing.(*T).Run(",
		"testing.tRunner(",
		"testing.(*M).",
		"os/signal.signal_recv",
		"runtime.ensureSigM",
		"runtime.goexit0",
	} {
		if strings.Contains(stack, s) && !strings.Contains(stack, "cellar-cache/cellar") {
			return true
		}
	}
	return false
}

// TestLeakCheckSeesALeftoverGoroutine makes sure the check can fail: a
// goroutine parked past the test's end is reported.
func TestLeakCheckSeesALeftoverGoroutine(t *testing.T) {
	before := goroutineStacks()
	stop := make(chan struct{})
	go func() { <-stop }()
	var found bool
	for id, stack := range goroutineStacks() {
		if _, ok := before[id]; !ok && !benignGoroutine(stack) {
			found = true
		}
	}
	close(stop)
	if !found {
		t.Fatal("a parked goroutine started by the test was not seen as left over")
	}
}
