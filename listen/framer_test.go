package listen

import (
	"net"
	"net/http"
	"sync/atomic"
	"testing"

	"github.com/cellar-cache/cellar/internal/leaktest"
)

// framer is a Wrap listener that records EngineFramesRequests.
type framer struct {
	net.Listener
	told *atomic.Bool
}

func (f framer) EngineFramesRequests() { f.told.Store(true) }

// TestOpenTellsTheWrapWhenCellarsEngineServesEveryConnection: a plain
// listener served by cellar's engine (which refuses ambiguous framing
// itself) tells its Wrap listener so; one served by net/http, wholly or
// in part (the net/http engine, h2c), does not.
func TestOpenTellsTheWrapWhenCellarsEngineServesEveryConnection(t *testing.T) {
	leaktest.Check(t)
	for _, tc := range []struct {
		name   string
		engine string
		h2c    bool
		want   bool
	}{
		{"default engine", "", false, true},
		{"cellar engine", EngineCellar, false, true},
		{"net/http engine", EngineNetHTTP, false, false},
		{"h2c", EngineCellar, true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var told atomic.Bool
			g := startGroup(t, Options{
				Listeners: []Listener{{Address: "127.0.0.1:0", H2C: tc.h2c}},
				Engine:    tc.engine,
				Wrap:      func(ln net.Listener) net.Listener { return framer{ln, &told} },
			})
			resp, err := http.Get(g.Addrs()[0] + "/")
			readAll(t, resp, err)
			if told.Load() != tc.want {
				t.Errorf("EngineFramesRequests called: %v, want %v", told.Load(), tc.want)
			}
		})
	}
}
