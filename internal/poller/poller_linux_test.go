package poller

import (
	"math"
	"net"
	"os"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/cellar-cache/cellar/internal/leaktest"
)

func TestMain(m *testing.M) { os.Exit(leaktest.Main(m)) }

// pair is a loopback TCP connection: the server's side and the client's.
func pair(t *testing.T) (*net.TCPConn, net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	cc, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	sc, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sc.Close(); cc.Close() })
	return sc.(*net.TCPConn), cc
}

func newPoller(t *testing.T) *Poller {
	t.Helper()
	p, err := New()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// waitAsync runs w.Wait(deadline) and returns a channel closed when it
// returns.
func waitAsync(w *Waiter, deadline time.Time) chan struct{} {
	done := make(chan struct{})
	go func() {
		w.Wait(deadline)
		close(done)
	}()
	return done
}

func returns(t *testing.T, done chan struct{}, what string) {
	t.Helper()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatalf("Wait did not return on %s", what)
	}
}

// parked waits (20 s at most) until a Wait is parked on w.
func parked(t *testing.T, w *Waiter) {
	t.Helper()
	for end := time.Now().Add(20 * time.Second); w.state.Load() != stateWaiting; runtime.Gosched() {
		if time.Now().After(end) {
			t.Fatal("Wait did not park in 20s")
		}
	}
}

// registered is a poller with one loopback connection registered: the
// waiter, the server's side and the client's.
func registered(t *testing.T) (*Waiter, *net.TCPConn, net.Conn) {
	t.Helper()
	p := newPoller(t)
	sc, cc := pair(t)
	w, err := p.Register(sc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Unregister)
	return w, sc, cc
}

func TestWaitEndsOnInputHangUpDeadlineWakeAndClose(t *testing.T) {
	w, sc, cc := registered(t)

	// Input.
	done := waitAsync(w, time.Time{})
	parked(t, w)
	select {
	case <-done:
		t.Fatal("Wait returned with nothing to read")
	case <-time.After(50 * time.Millisecond):
	}
	cc.Write([]byte("x"))
	returns(t, done, "input")
	var b [8]byte
	if n, err := sc.Read(b[:]); n != 1 || err != nil {
		t.Fatalf("read %d %v", n, err)
	}

	// An event for bytes already read does not end the next Wait: the
	// bytes arrive (event) while nobody waits, and a read takes them.
	cc.Write([]byte("y"))
	for w.state.Load() != stateReady {
		runtime.Gosched()
	}
	sc.Read(b[:])
	start := time.Now()
	done = waitAsync(w, start.Add(200*time.Millisecond))
	parked(t, w)
	// The deadline ends it, not the stale event.
	returns(t, done, "deadline")
	if waited := time.Since(start); waited < 200*time.Millisecond {
		t.Errorf("Wait returned after %v, before its deadline: the stale event ended it", waited)
	}

	// Wake ends it, and every later Wait.
	done = waitAsync(w, time.Time{})
	parked(t, w)
	w.Wake()
	returns(t, done, "Wake")
	returns(t, waitAsync(w, time.Time{}), "a Wait after Wake")
}

func TestWaitEndsWhenTheClientCloses(t *testing.T) {
	w, _, cc := registered(t)
	done := waitAsync(w, time.Time{})
	parked(t, w)
	cc.Close()
	returns(t, done, "the client's close")
}

func TestCloseEndsWaitsAndUnregisterForgets(t *testing.T) {
	p, err := New()
	if err != nil {
		t.Fatal(err)
	}
	sc, _ := pair(t)
	w, err := p.Register(sc)
	if err != nil {
		t.Fatal(err)
	}
	if p.Len() != 1 {
		t.Errorf("Len %d after Register, want 1", p.Len())
	}
	done := waitAsync(w, time.Time{})
	parked(t, w)
	p.Close()
	returns(t, done, "Close")
	w.Unregister()
	if p.Len() != 0 {
		t.Errorf("Len %d after Unregister, want 0", p.Len())
	}
	if _, err := p.Register(sc); err == nil {
		t.Error("Register after Close succeeded")
	}
}

// TestWakeInOrder: a batch of waiters runs in the batch's order (Go's
// own poller runs a batch in reverse, and waking each in turn would run
// the last first: a woken goroutine takes the front of the run queue).
func TestWakeInOrder(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector's scheduler runs woken goroutines in a random order")
	}
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	const n = 16
	ws := make([]*Waiter, n)
	var mu sync.Mutex
	var order []int
	var wg sync.WaitGroup
	for i := range ws {
		ws[i] = &Waiter{ch: make(chan struct{}, 1)}
		ws[i].state.Store(stateWaiting)
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-ws[i].ch
			mu.Lock()
			order = append(order, i)
			mu.Unlock()
		}()
	}
	// Each goroutine blocks in its receive once it has run.
	for range 10 * n {
		runtime.Gosched()
	}
	for _, w := range ws {
		w.ready(stateReady)
	}
	wakeInOrder(ws)
	wg.Wait()
	for i, got := range order {
		if got != i {
			t.Fatalf("woken in order %v, want 0 to %d", order, n-1)
		}
	}
}

// TestSweepRunsAtTheEarliestDeadline: the sweep that ends Waits past their
// deadline is planned for the earliest one (so that a short idle timeout
// is kept, and nothing runs while no deadline is near), and a Wait with a
// deadline before the planned sweep brings it forward.
func TestSweepRunsAtTheEarliestDeadline(t *testing.T) {
	p := newPoller(t)
	var ws []*Waiter
	for range 2 {
		sc, _ := pair(t)
		w, err := p.Register(sc)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(w.Unregister)
		ws = append(ws, w)
	}
	// Nothing waits: no sweep is planned.
	if at := p.sweepAt.Load(); at != math.MaxInt64 {
		t.Errorf("sweep planned at %d with nothing waiting", at)
	}
	late := time.Now().Add(time.Hour)
	lateDone := waitAsync(ws[0], late)
	parked(t, ws[0])
	want := int64(late.Sub(epoch))
	waitFor(t, "the sweep to be planned for the deadline", func() bool { return p.sweepAt.Load() == want })

	// A Wait with an earlier deadline ends at it, not an hour later.
	start := time.Now()
	returns(t, waitAsync(ws[1], start.Add(20*time.Millisecond)), "a deadline before the planned sweep")
	if waited := time.Since(start); waited < 20*time.Millisecond {
		t.Errorf("Wait returned after %v, before its deadline", waited)
	}
	waitFor(t, "the sweep to be planned for the remaining deadline", func() bool { return p.sweepAt.Load() == want })
	ws[0].Wake()
	returns(t, lateDone, "Wake")
}

// waitFor polls cond until it holds, for up to 20 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for end := time.Now().Add(20 * time.Second); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(end) {
			t.Fatalf("waited 20 s for %s", what)
		}
	}
}
