package compress

import (
	"bytes"
	"runtime"
	"sync/atomic"
	"testing"
	"time"
)

// TestSmallBodiesGetSmallWindows checks that a body of known small size is
// encoded with a small window: it decodes to itself, is as small as with
// the default window, and the encoder allocates a fraction of the default
// one's memory (brotli at level 11 3%, zstd at level 3 half).
func TestSmallBodiesGetSmallWindows(t *testing.T) {
	var fresh Options // no pools: every writer is made anew
	fresh.Levels = map[string]int{Brotli: 11, Zstd: 3}
	body := bytes.Repeat([]byte("<p class=note>small body, small window</p>\n"), 30)
	for _, coding := range []string{Brotli, Zstd} {
		alloc := func(size int64) (int64, []byte) {
			var out bytes.Buffer
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			w, err := fresh.NewWriterSize(&out, coding, size)
			if err != nil {
				t.Fatal(err)
			}
			w.Write(body)
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			runtime.ReadMemStats(&after)
			return int64(after.TotalAlloc - before.TotalAlloc), out.Bytes()
		}
		small, enc := alloc(int64(len(body)))
		dflt, encDefault := alloc(-1)
		if got := decode(t, coding, enc); !bytes.Equal(got, body) {
			t.Fatalf("%s: small window output decodes to %d bytes, want the %d of the body", coding, len(got), len(body))
		}
		if len(enc) > len(encDefault)+8 {
			t.Errorf("%s: %d bytes with a small window, %d with the default", coding, len(enc), len(encDefault))
		}
		t.Logf("%s: encoder allocated %d bytes for a %d-byte body, %d with the default window", coding, small, len(body), dflt)
		if small*5 > dflt*3 {
			t.Errorf("%s: %d bytes allocated with a small window, want under 60%% of the default's %d", coding, small, dflt)
		}
	}
}

// TestEncoderPoolsStayWithinBoundsAndReleaseIdleEncoders checks the pools:
// an encoder survives garbage collections and is reused, at most maxIdle
// are kept per coding, level and window, their estimated memory stays
// within the budget (the oldest go first), and every one is released once
// idle.
func TestEncoderPoolsStayWithinBoundsAndReleaseIdleEncoders(t *testing.T) {
	p := newEncoderPools()
	p.idleFor = time.Hour // nothing is released before the release phase below
	k := poolKey{Zstd, 3, 0}
	w, err := p.get(&bytes.Buffer{}, k)
	if err != nil {
		t.Fatal(err)
	}
	st := w.(*pooledWriter).st
	w.Close()
	runtime.GC()
	runtime.GC()
	w, _ = p.get(&bytes.Buffer{}, k)
	if w.(*pooledWriter).st != st {
		t.Error("the idle encoder was not reused after two collections")
	}
	w.Close()

	// Four at once of one key: two are kept.
	var ws []*pooledWriter
	for range 4 {
		w, _ := p.get(&bytes.Buffer{}, k)
		ws = append(ws, w.(*pooledWriter))
	}
	for _, w := range ws {
		w.Close()
	}
	if n, _ := p.kept(); n != p.maxIdle {
		t.Errorf("%d encoders kept of one key, want %d", n, p.maxIdle)
	}
	// Large ones: the budget holds, the newest stays, one over the whole
	// budget is never kept.
	for window := range windows {
		w, _ := p.get(&bytes.Buffer{}, poolKey{Brotli, 11, window})
		w.Close()
	}
	last := poolKey{Zstd, 3, 1}
	w, _ = p.get(&bytes.Buffer{}, last)
	w.Close()
	huge := poolKey{Zstd, 4, len(windows) - 1}
	w, _ = p.get(&bytes.Buffer{}, huge)
	w.Close()
	n, held := p.kept()
	if held > p.budget {
		t.Errorf("%d encoders kept, %d bytes estimated, over the budget of %d", n, held, p.budget)
	}
	if len(p.idle[last]) != 1 || len(p.idle[huge]) != 0 {
		t.Errorf("kept %d of the newest encoder (want 1), %d of the one over the budget (want 0)", len(p.idle[last]), len(p.idle[huge]))
	}
	// Release: from now on an encoder is idle for long after 10 ms, and the
	// pending sweep comes back that soon.
	p.mu.Lock()
	p.idleFor = 10 * time.Millisecond
	p.sweep.Stop()
	p.sweep = time.AfterFunc(p.idleFor, p.release)
	p.mu.Unlock()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		n, held := p.kept()
		if n == 0 && held == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d idle encoders (%d bytes) still kept 10 s after their last use", n, held)
		}
	}
}

// TestEncoderBytesCountsWhatIsKept: EncoderBytes (here, the count of one
// pool's encoders) rises by an encoder's
// estimate when one is made (telling NotifyEncoderBytes's function first),
// stays while the encoder is in use or kept idle, and falls when the pool
// lets it go or a writer fails.
func TestEncoderBytesCountsWhatIsKept(t *testing.T) {
	var told atomic.Int64
	NotifyEncoderBytes(func() { told.Add(1) })
	defer NotifyEncoderBytes(func() {})
	p := newEncoderPools()
	p.idleFor = time.Hour
	p.live = new(atomic.Int64) // other tests' pools count in EncoderBytes
	base := p.live.Load()
	k, huge := poolKey{Brotli, 5, 1}, poolKey{Zstd, 4, 0}
	w, _ := p.get(&bytes.Buffer{}, k)
	if got := p.live.Load() - base; got != stateBytes(k) || told.Load() != 1 {
		t.Fatalf("one encoder in use: %d bytes (told %d times), want %d once", got, told.Load(), stateBytes(k))
	}
	hw, _ := p.get(&bytes.Buffer{}, huge)
	if got := p.live.Load() - base; got != stateBytes(k)+stateBytes(huge) {
		t.Errorf("two encoders in use: %d bytes, want %d", got, stateBytes(k)+stateBytes(huge))
	}
	hw.Close() // over the pool's budget: let go
	w.Close()  // kept idle
	if got := p.live.Load() - base; got != stateBytes(k) {
		t.Errorf("one encoder kept: %d bytes, want %d", got, stateBytes(k))
	}
	w, _ = p.get(&bytes.Buffer{}, k) // reused: no new bytes
	if got := p.live.Load() - base; got != stateBytes(k) || told.Load() != 2 {
		t.Errorf("the kept encoder reused: %d bytes (told %d times), want %d, told twice", got, told.Load(), stateBytes(k))
	}
	w.Close()
	p.mu.Lock()
	p.idleFor = 0
	p.mu.Unlock()
	p.release()
	if got := p.live.Load() - base; got != 0 {
		t.Errorf("after the release: %d bytes, want 0", got)
	}
}
