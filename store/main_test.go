package store

import (
	"os"
	"testing"

	"github.com/cellar-cache/cellar/internal/leaktest"
)

// TestMain fails the run if goroutines outlive the tests: every Store,
// writer reader and tier must clean up after itself.
func TestMain(m *testing.M) { os.Exit(leaktest.Main(m)) }
