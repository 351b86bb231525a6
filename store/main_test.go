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
	base := runtime.NumGoroutine()
	code := m.Run()
	if code == 0 {
		// Goroutines finishing their exit need a moment; poll, don't
		// assume a duration.
		deadline := time.Now().Add(5 * time.Second)
		for runtime.NumGoroutine() > base && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		if n := runtime.NumGoroutine(); n > base {
			buf := make([]byte, 1<<20)
			buf = buf[:runtime.Stack(buf, true)]
			fmt.Fprintf(os.Stderr, "%d goroutines leaked (base %d):\n%s\n", n-base, base, leaked(string(buf)))
			code = 1
		}
	}
	os.Exit(code)
}

func leaked(stacks string) string {
	var out []string
	for _, g := range strings.Split(stacks, "\n\n") {
		if !strings.Contains(g, "TestMain") && !strings.Contains(g, "testing.(*M)") {
			out = append(out, g)
		}
	}
	return strings.Join(out, "\n\n")
}
