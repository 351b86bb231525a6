package proxy

import (
	"testing"

	"github.com/cellar-cache/cellar/internal/leaktest"
)

// checkNoLeakedGoroutines fails t if goroutines that started during the
// test are still alive once its cleanups have run (the rig's stop among
// them: front server, Server.Close, store). Call it before newRig, so that
// its cleanup runs last.
func checkNoLeakedGoroutines(t testing.TB) { leaktest.Check(t) }
