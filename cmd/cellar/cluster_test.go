package main

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// freePorts returns n distinct loopback ports that were free for both TCP
// and UDP a moment ago (gossip binds both). Another process may take one
// before cellar binds it: startGossipNodes retries then.
func freePorts(t *testing.T, n int) []int {
	t.Helper()
	var ports []int
	var held []io.Closer
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	for tries := 0; len(ports) < n; tries++ {
		if tries > 100*n {
			t.Fatal("no free loopback ports")
		}
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := ln.Addr().(*net.TCPAddr).Port
		pc, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			ln.Close()
			continue
		}
		held = append(held, ln, pc)
		ports = append(ports, port)
	}
	return ports
}

// gossipNode is one cellar process of a gossip cluster.
type gossipNode struct {
	*cellarProc
	self string // cluster.self
}

// gossipConfig is a node's config file: its proxy address and its gossip,
// joining every other node's gossip address.
func gossipConfig(self string, bind string, join []string) string {
	return fmt.Sprintf("cluster:\n  self: %s\n  gossip: {bind: %s, join: [%s]}\n", self, bind, strings.Join(join, ", "))
}

// startGossipNodes starts n cellar processes in front of origin, each on
// concrete loopback ports (proxy, admin, gossip) picked free, each joining
// the others by gossip, and waits until every one sees n live members. A
// start that loses a port to another process is retried on new ports.
func startGossipNodes(t *testing.T, bin, origin string, n int) []*gossipNode {
	t.Helper()
	for attempt := 1; ; attempt++ {
		ports := freePorts(t, 3*n)
		var nodes []*gossipNode
		var err error
		for i := range n {
			self := fmt.Sprintf("http://127.0.0.1:%d", ports[3*i])
			var join []string
			for j := range n {
				if j != i {
					join = append(join, fmt.Sprintf("127.0.0.1:%d", ports[3*j+2]))
				}
			}
			cfg := writeConfig(t, gossipConfig(self, fmt.Sprintf("127.0.0.1:%d", ports[3*i+2]), join))
			var p *cellarProc
			p, err = tryStartCellar(t, bin, t.TempDir(), "-config", cfg, "-origin", origin,
				"-listen", fmt.Sprintf("127.0.0.1:%d", ports[3*i]), "-admin", fmt.Sprintf("127.0.0.1:%d", ports[3*i+1]))
			if err != nil {
				break
			}
			nodes = append(nodes, &gossipNode{cellarProc: p, self: self})
		}
		if err == nil {
			for _, nd := range nodes {
				nd.waitHealth(t, fmt.Sprintf("cluster: %d live, 0 down", n))
			}
			return nodes
		}
		for _, nd := range nodes {
			nd.kill9(t)
		}
		if attempt == 3 || !strings.Contains(err.Error(), "address already in use") {
			t.Fatal(err)
		}
		t.Logf("a picked port was taken meanwhile; again on new ports: %v", err)
	}
}

// waitHealth waits (bounded, generously) until the node's /healthz
// contains want.
func (n *gossipNode) waitHealth(t *testing.T, want string) {
	t.Helper()
	var last string
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if last = n.healthz(t); strings.Contains(last, want) {
			return
		}
	}
	t.Fatalf("%s: /healthz has no %q after a minute:\n%s\nlog:\n%s", n.self, want, last, n.logText())
}

// TestClusterKill9DuringLoad runs three cellar processes that find each
// other by gossip and SIGKILLs one while a bounded load runs through the
// other two. Their clients see no error beyond the requests that were in
// flight when the node died (one a worker at most, each a response the
// dead owner was sending); once the survivors no longer count the dead
// node live, they answer every one of its keys.
func TestClusterKill9DuringLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the cellar binary")
	}
	bin := buildCellar(t)
	var originHits atomic.Int64
	origin := newBodyOrigin(t)
	origin.Config.Handler = countingHandler(origin.Config.Handler, &originHits)
	nodes := startGossipNodes(t, bin, origin.URL, 3)
	a, b, victim := nodes[0], nodes[1], nodes[2]

	const (
		workers  = 4
		requests = 800 // in all, over a and b
		killAt   = 200 // completed requests before the kill
		keys     = 40
	)
	var (
		done     atomic.Int64
		killed   atomic.Bool // set once the victim has exited
		mu       sync.Mutex
		failures []string // requests that started before the kill and failed
		late     []string // requests that started after it and failed: none allowed
	)
	client := &http.Client{Timeout: 2 * time.Minute}
	get := func(n *gossipNode, path string) error {
		resp, err := client.Get("http://" + n.proxy + path)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		switch {
		case err != nil:
			return fmt.Errorf("%s: body: %w", resp.Header.Values("Cache-Status"), err)
		case resp.StatusCode != http.StatusOK || !bytes.Equal(body, objBody(path)):
			return fmt.Errorf("%d, %d bytes, Cache-Status %q", resp.StatusCode, len(body), resp.Header.Values("Cache-Status"))
		}
		return nil
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for {
				i := next.Add(1) - 1
				if i >= requests {
					return
				}
				n := []*gossipNode{a, b}[i%2]
				path := fmt.Sprintf("/obj/%d", i%keys)
				after := killed.Load()
				if err := get(n, path); err != nil {
					mu.Lock()
					msg := fmt.Sprintf("GET %s on %s: %v", path, n.self, err)
					if after {
						late = append(late, msg)
					} else {
						failures = append(failures, msg)
					}
					mu.Unlock()
				}
				done.Add(1)
			}
		})
	}
	for done.Load() < killAt {
		time.Sleep(time.Millisecond) // the workers make progress or fail the test by its timeout
	}
	victim.kill9(t)
	killed.Store(true)
	diedAt := time.Now()
	wg.Wait()
	for _, n := range []*gossipNode{a, b} {
		n.waitHealth(t, "cluster: 2 live, 0 down")
	}
	t.Logf("the survivors dropped the killed member %v after it died (the load ended meanwhile)", time.Since(diedAt).Round(time.Millisecond))

	for _, msg := range late {
		t.Errorf("a request that started after the kill failed: %s", msg)
	}
	if len(failures) > workers {
		t.Errorf("%d requests failed around the kill, want at most the %d in flight:\n%s", len(failures), workers, strings.Join(failures, "\n"))
	}
	for _, msg := range failures {
		t.Logf("in flight at the kill: %s", msg)
	}
	// Every key, its owner dead or alive, is answered by both survivors.
	for i := range keys {
		path := fmt.Sprintf("/obj/%d", i)
		for _, n := range []*gossipNode{a, b} {
			if err := get(n, path); err != nil {
				t.Errorf("after the kill, GET %s on %s: %v", path, n.self, err)
			}
		}
	}
	a.alive(t)
	b.alive(t)
	t.Logf("%d requests over two nodes, %d origin fetches for %d keys; %d failed in flight at the kill", requests+2*keys, originHits.Load(), keys, len(failures))
}

// countingHandler counts the requests h serves.
func countingHandler(h http.Handler, n *atomic.Int64) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		h.ServeHTTP(w, r)
	})
}
