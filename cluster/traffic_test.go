package cluster

import (
	"fmt"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	metrics "github.com/hashicorp/go-metrics"
)

// sentSink counts the bytes memberlist reports sending (its
// memberlist.udp.sent and memberlist.tcp.sent counters).
type sentSink struct {
	metrics.BlackholeSink
	udp, tcp atomic.Int64
}

func (s *sentSink) IncrCounterWithLabels(key []string, val float32, _ []metrics.Label) {
	switch k := strings.Join(key, "."); {
	case strings.HasSuffix(k, "memberlist.udp.sent"):
		s.udp.Add(int64(val))
	case strings.HasSuffix(k, "memberlist.tcp.sent"):
		s.tcp.Add(int64(val))
	}
}

// TestGossipTrafficPerNode measures what the gossip costs each node in a
// steady cluster of 3 and of 9 members (bytes sent per second, over a
// window of a few seconds once every node sees every other): the figures
// DESIGN.md's scale section quotes. memberlist probes one member a second
// whatever the size, so the steady cost per node stays about flat; its
// push-pull state exchange (every 30 s, spaced out beyond 32 members)
// carries every member and is not in this window.
func TestGossipTrafficPerNode(t *testing.T) {
	if testing.Short() {
		t.Skip("measures over a window of seconds")
	}
	sink := &sentSink{}
	conf := metrics.DefaultConfig("cellar")
	conf.EnableHostname, conf.EnableRuntimeMetrics = false, false
	if _, err := metrics.NewGlobal(conf, sink); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { metrics.NewGlobal(conf, &metrics.BlackholeSink{}) })
	const window = 3 * time.Second
	for _, n := range []int{3, 9} {
		var nodes []*Cluster
		var urls []string
		before := runtime.NumGoroutine()
		for i := range n {
			u := fmt.Sprintf("http://127.0.0.1:%d", 48000+i)
			urls = append(urls, u)
			var join []string
			if i > 0 {
				join = []string{nodes[0].GossipAddr()}
			}
			nodes = append(nodes, startNode(t, u, nil, join...))
		}
		converge(t, nodes, urls)
		goroutines := float64(runtime.NumGoroutine()-before) / float64(n)
		udp0, tcp0 := sink.udp.Load(), sink.tcp.Load()
		time.Sleep(window) // a measurement window, not a wait for an event
		udp, tcp := sink.udp.Load()-udp0, sink.tcp.Load()-tcp0
		if udp == 0 {
			t.Errorf("%d members: no gossip traffic counted", n)
		}
		perNode := float64(udp+tcp) / float64(n) / window.Seconds()
		t.Logf("%d members: %.0f bytes/s sent per node (UDP %d, TCP %d bytes in %v over all); %.1f goroutines per node", n, perNode, udp, tcp, window, goroutines)
		for _, c := range nodes {
			c.Close()
		}
	}
}
