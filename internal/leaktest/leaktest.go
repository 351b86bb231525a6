// Package leaktest fails tests that leave goroutines behind: one test at a
// time (Check, against the goroutines alive when the test started) or a
// whole test binary (Main, from TestMain). Goroutines take a moment to
// finish exiting, so both poll for up to five seconds instead of assuming
// a duration, as net/http's main_test.go does.
package leaktest

import (
	"fmt"
	"os"
	"runtime"
	"sort"
	"strings"
	"testing"
	"time"
)

// wait bounds how long a check polls for goroutines to exit.
const wait = 5 * time.Second

// Check fails t if goroutines that started during the test are still
// alive once its cleanups have run. Call it first in the test, so that its
// cleanup runs after every other.
func Check(t testing.TB) {
	t.Helper()
	before := stacks()
	t.Cleanup(func() {
		if left := poll(before); len(left) > 0 {
			t.Errorf("%d goroutines outlived the test:\n\n%s", len(left), strings.Join(left, "\n\n"))
		}
	})
}

// Main runs the tests of m and, when they passed, fails the run if any
// goroutine other than the test harness's and the runtime's is left.
// Use it as `func TestMain(m *testing.M) { os.Exit(leaktest.Main(m)) }`.
func Main(m *testing.M) int {
	code := m.Run()
	if code != 0 {
		return code
	}
	if left := poll(nil); len(left) > 0 {
		fmt.Fprintf(os.Stderr, "%d goroutines leaked:\n\n%s\n", len(left), strings.Join(left, "\n\n"))
		return 1
	}
	return 0
}

// poll returns the stacks of goroutines not in before and not benign,
// waiting up to wait for them to go.
func poll(before map[string]string) []string {
	var left []string
	for deadline := time.Now().Add(wait); ; time.Sleep(10 * time.Millisecond) {
		left = left[:0]
		for id, stack := range stacks() {
			if _, ok := before[id]; !ok && !benign(stack) {
				left = append(left, stack)
			}
		}
		if len(left) == 0 || time.Now().After(deadline) {
			sort.Strings(left)
			return left
		}
	}
}

// stacks returns the stack of every goroutine by its header ("goroutine 42").
func stacks() map[string]string {
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

// benign reports goroutines that the runtime or the testing package own,
// which no test starts or must stop.
func benign(stack string) bool {
	if strings.Contains(stack, "cellar-cache/cellar/internal/leaktest.stacks(") {
		return true // the goroutine doing the check
	}
	for _, s := range []string{
		"testing.(*T).Run(",
		"testing.tRunner(",
		"testing.(*M).",
		"testing.runFuzzing",
		"internal/fuzz.",
		"os/signal.signal_recv",
		"runtime.ensureSigM",
		"runtime.goexit0",
	} {
		if strings.Contains(stack, s) && !strings.Contains(stack, "cellar-cache/cellar/") {
			return true
		}
	}
	return false
}
