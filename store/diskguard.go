package store

import (
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// How pebble's fatal paths are kept from ending the process.
//
// Pebble reports what it cannot survive in three ways: Logger.Fatalf (a
// failed WAL or MANIFEST write, some invariant checks), the DataCorruption
// event (whose default calls Fatalf) and the BackgroundError event (a flush
// or compaction failed, and pebble will retry it, forever). The default
// Fatalf exits the process; a Fatalf that panics kills it too when it runs
// on one of pebble's own goroutines (compactions, flushes), and its
// unwinding trips pebble's deferred assertions ("Release called on a
// BufferPool with in-use buffers").
//
// So each of them becomes a fault of the one pebble instance (diskTier.fault):
// the instance stops taking work and the Store's supervisor closes it and
// opens the tier again (diskslot.go). Fatalf itself panics only on a
// goroutine that entered pebble through guard, which recovers the panic into
// an error; on pebble's goroutines it returns, and pebble goes on along the
// error path that follows each Fatalf call (the instance is retired anyway).

// errPebbleFatal marks an error made from a pebble Fatalf or panic.
var errPebbleFatal = errors.New("store: pebble failed")

// fatalPanic is the panic value of a Fatalf on a guarded goroutine.
type fatalPanic struct{ msg string }

// guardFunc is the name of guard in stack traces.
var guardFunc = funcName(guard)

func funcName(f any) string {
	return runtime.FuncForPC(reflect.ValueOf(f).Pointer()).Name()
}

// guard runs fn, a call into pebble on a goroutine of ours, and turns a
// panic inside it (a Fatalf, or pebble's own) into an error wrapping
// errPebbleFatal. The caller reports it as a fault of the instance.
func guard(fn func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			if f, ok := r.(fatalPanic); ok {
				err = fmt.Errorf("%w: %s", errPebbleFatal, f.msg)
				return
			}
			if e, ok := r.(error); ok {
				err = fmt.Errorf("%w: pebble panicked: %w", errPebbleFatal, e)
				return
			}
			err = fmt.Errorf("%w: pebble panicked: %v", errPebbleFatal, r)
		}
	}()
	return fn()
}

// guarded reports whether the calling goroutine runs inside guard.
func guarded() bool {
	var pcs [128]uintptr
	n := runtime.Callers(3, pcs[:])
	frames := runtime.CallersFrames(pcs[:n])
	for {
		f, more := frames.Next()
		if f.Function == guardFunc {
			return true
		}
		if !more {
			return false
		}
	}
}

// faultKind says how the supervisor brings the tier back after a fault.
type faultKind int

const (
	// faultIO: a write or sync failed (EIO, a pebble Fatalf): reopen the
	// same directory.
	faultIO faultKind = iota
	// faultFull: the disk is full: reopen, read-only while it stays full.
	faultFull
	// faultCorrupt: pebble's own background work met a corrupt file:
	// quarantine the directory and start empty.
	faultCorrupt
)

func (k faultKind) String() string {
	switch k {
	case faultFull:
		return "disk full"
	case faultCorrupt:
		return "corruption"
	}
	return "I/O error"
}

// classify maps a pebble error to the fault it causes.
func classify(err error) faultKind {
	switch {
	case pebble.IsCorruptionError(err):
		return faultCorrupt
	case errors.Is(err, syscall.ENOSPC), errors.Is(err, syscall.EDQUOT):
		return faultFull
	}
	return faultIO
}

// pebbleLogger sends pebble's logs to slog. Fatalf faults the instance and
// panics only where guard recovers it (see above).
type pebbleLogger struct {
	l     *slog.Logger
	fault func(faultKind, error)
}

func (p pebbleLogger) Infof(format string, args ...any) {
	p.l.Debug(fmt.Sprintf(format, args...), "source", "pebble")
}

func (p pebbleLogger) Errorf(format string, args ...any) {
	p.l.Warn(fmt.Sprintf(format, args...), "source", "pebble")
}

func (p pebbleLogger) Fatalf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	kind := faultIO
	if strings.Contains(msg, "no space left") {
		kind = faultFull
	}
	p.fault(kind, fmt.Errorf("%w: %s", errPebbleFatal, msg))
	if guarded() {
		panic(fatalPanic{msg})
	}
}

// logLimiter lets through one log line per key per interval and counts
// what it held back.
type logLimiter struct {
	mu    sync.Mutex
	every time.Duration
	last  map[string]time.Time
	held  map[string]int
}

// allow reports whether a line for key may be logged now, and how many
// were held back since the last one.
func (l *logLimiter) allow(key string) (ok bool, held int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.last == nil {
		l.last, l.held = make(map[string]time.Time), make(map[string]int)
	}
	now := time.Now()
	if t, seen := l.last[key]; seen && now.Sub(t) < l.every {
		l.held[key]++
		return false, 0
	}
	l.last[key] = now
	held = l.held[key]
	delete(l.held, key)
	return true, held
}
