package store

import (
	"fmt"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"
)

// TestMain fails the run if goroutines outlive the tests: every Store,
// writer reader and tier must clean up after itself.
func TestMain(m *testing.M) {
	code := m.Run()
	if code == 0 {
		// Goroutines finishing their exit need a moment; poll, don't
		// assume a duration.
		deadline := time.Now().Add(5 * time.Second)
		for leaked() != "" && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		if l := leaked(); l != "" {
			fmt.Fprintf(os.Stderr, "leaked goroutines:\n%s\n", l)
			code = 1
		}
	}
	os.Exit(code)
}

// leaked returns the stacks of goroutines that are neither the test
// harness's nor the runtime's.
func leaked() string {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	var out []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "TestMain") || strings.Contains(g, "testing.(*M)") ||
			strings.Contains(g, "os/signal.") || strings.Contains(g, "testing.runFuzzing") ||
			strings.Contains(g, "internal/fuzz.") {
			continue
		}
		out = append(out, g)
	}
	return strings.Join(out, "\n\n")
}
