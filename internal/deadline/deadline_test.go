package deadline

import (
	"testing"
	"time"
)

func TestLazyMovesOncePerQuarterOfTheTimeoutOrAfterAReset(t *testing.T) {
	var l Lazy
	before := time.Now()
	at, ok := l.Due(time.Hour)
	if !ok || at.Before(before.Add(time.Hour)) || at.After(time.Now().Add(time.Hour)) {
		t.Fatalf("first Due = %v, %v; want an hour from now, true", at, ok)
	}
	if _, ok := l.Due(time.Hour); ok {
		t.Error("a second Due within a quarter of the timeout moved the deadline")
	}
	if got := l.At(); !got.Equal(at) {
		t.Errorf("At = %v, want the deadline the first Due set, %v", got, at)
	}
	at, ok = l.Due(time.Minute)
	if !ok {
		t.Error("a Due for another timeout did not move the deadline")
	}
	if got := l.At(); !got.Equal(at) {
		t.Errorf("At = %v, want the deadline the last Due set, %v", got, at)
	}
	l.Reset()
	if !l.At().IsZero() {
		t.Error("At after Reset is not zero")
	}
	if _, ok := l.Due(time.Minute); !ok {
		t.Error("a Due after Reset did not move the deadline")
	}
	if _, ok := l.Due(time.Nanosecond); !ok {
		t.Error("a Due for another timeout did not move the deadline")
	}
	// A quarter of a nanosecond is 0: the next Due is already a quarter
	// of the timeout later.
	if _, ok := l.Due(time.Nanosecond); !ok {
		t.Error("a Due a quarter of the timeout later did not move the deadline")
	}
}
