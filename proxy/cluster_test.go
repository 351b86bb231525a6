package proxy

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cellar-cache/cellar/cache"
	"github.com/cellar-cache/cellar/cluster"
	"github.com/cellar-cache/cellar/store"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// node is one cellar of a test cluster, on loopback with its own store.
type node struct {
	front  *httptest.Server
	server *Server
	store  *store.Store
	cl     *cluster.Cluster
}

// stop closes the node's front, proxy and store (idempotent).
func (n *node) stop(t testing.TB) {
	if n.front == nil {
		return
	}
	n.front.Close()
	n.server.Close()
	if err := n.store.Close(); err != nil {
		t.Errorf("store.Close: %v", err)
	}
	n.front = nil
}

// newNodes starts count cellar nodes in front of origin, each with its own
// store. With clustered, each knows the others as cluster peers: the
// listeners exist before the proxies are made, so each node's
// configuration names the others' real addresses.
func newNodes(t *testing.T, origin string, count int, clustered bool) []*node {
	return newNodesWith(t, origin, count, nodeOptions{clustered: clustered})
}

// nodeOptions shape the nodes of newNodesWith.
type nodeOptions struct {
	clustered bool
	// gossip: the members find each other by gossip (real memberlist on
	// loopback ports) instead of a static list; newNodesWith returns once
	// every node sees every other.
	gossip bool
	// tune, when set, adjusts node i's options.
	tune func(i int, o *Options)
}

func newNodesWith(t *testing.T, origin string, count int, no nodeOptions) []*node {
	nodes := make([]*node, count)
	var addrs []string
	for i := range nodes {
		nodes[i] = &node{front: httptest.NewUnstartedServer(nil)}
		addrs = append(addrs, "http://"+nodes[i].front.Listener.Addr().String())
	}
	for i, n := range nodes {
		st, err := store.Open(store.Options{Dir: t.TempDir(), MemoryBytes: 8 << 20, DiskBytes: 64 << 20})
		if err != nil {
			t.Fatalf("store.Open: %v", err)
		}
		p, err := cache.New(cache.Options{})
		if err != nil {
			t.Fatalf("cache.New: %v", err)
		}
		off := false
		opts := Options{
			Origins:   []string{origin},
			AccessLog: &off,
			Logger:    slog.New(slog.NewTextHandler(io.Discard, nil)),
			// Generous bounds: a loaded machine may take seconds to
			// gather a herd, and a request released from a wait would
			// go to the origin itself.
			WaitTimeout:     2 * time.Minute,
			ResponseTimeout: 2 * time.Minute,
		}
		switch {
		case no.gossip:
			cc := cluster.Config{Self: addrs[i], Gossip: &cluster.GossipConfig{Bind: "127.0.0.1:0"}, Logger: opts.Logger}
			if i > 0 {
				cc.Gossip.Join = []string{nodes[0].cl.GossipAddr()}
			}
			if n.cl, err = cluster.New(cc); err != nil {
				t.Fatal(err)
			}
			if err := n.cl.Start(); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { n.cl.Close() })
			opts.Cluster = n.cl
		case no.clustered:
			n.cl, err = cluster.New(cluster.Config{Self: addrs[i], Peers: append(append([]string(nil), addrs[:i]...), addrs[i+1:]...)})
			if err != nil {
				t.Fatal(err)
			}
			opts.Cluster = n.cl
		}
		if no.tune != nil {
			no.tune(i, &opts)
		}
		srv, err := New(opts, p, st)
		if err != nil {
			t.Fatalf("proxy.New: %v", err)
		}
		n.server, n.store = srv, st
		n.front.Config.Handler = srv
		n.front.Start()
		t.Cleanup(func() { n.stop(t) })
	}
	if no.gossip {
		for _, n := range nodes {
			waitMembers(t, n, count)
		}
	}
	return nodes
}

// waitMembers waits (bounded) until n's cluster has count live members.
func waitMembers(t *testing.T, n *node, count int) {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); len(n.cl.Members(time.Now())) != count; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s sees %d members after a minute, want %d", n.cl.Self(), len(n.cl.Members(time.Now())), count)
		}
	}
}

// keyOf is the cache key of a GET of path on testHost.
func (n *node) keyOf(path string) string {
	r := httptest.NewRequest(http.MethodGet, "http://"+testHost+path, nil)
	return n.server.policy.Key(r)
}

// get sends GET path with Host testHost to base and returns the status,
// Cache-Status and body, or an error (safe in any goroutine).
func clusterGet(client *http.Client, base, path string) (int, string, string, error) {
	req, err := http.NewRequest(http.MethodGet, base+path, nil)
	if err != nil {
		return 0, "", "", err
	}
	req.Host = testHost
	resp, err := client.Do(req)
	if err != nil {
		return 0, "", "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, strings.Join(resp.Header.Values("Cache-Status"), ", "), string(body), err
}

// herd sends 300 concurrent GETs of one URL spread evenly over nodes,
// while the origin holds its answer until every request beyond the
// expected origin fetches waits on a fill (bounded), and returns the
// origin's request count.
func herd(t *testing.T, clustered bool) int64 {
	release := make(chan struct{})
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		<-release
		w.Header().Set("Cache-Control", "max-age=600")
		io.WriteString(w, "the herd's object")
	})
	nodes := newNodes(t, o.URL, 3, clustered)
	want := 3
	if clustered {
		want = 1
	}
	tr := &http.Transport{MaxIdleConnsPerHost: 300}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 5 * time.Minute}
	const n = 300
	errs := make(chan error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			base := nodes[i%len(nodes)].front.URL
			code, cs, body, err := clusterGet(client, base, "/herd")
			switch {
			case err != nil:
				errs <- err
			case code != http.StatusOK || body != "the herd's object":
				errs <- fmt.Errorf("%s: %d %q (Cache-Status %q)", base, code, body, cs)
			case clustered && i%len(nodes) != ownerIndex(nodes, "/herd") && !strings.Contains(cs, "fwd=peer"):
				errs <- fmt.Errorf("%s does not own the key but answered with Cache-Status %q", base, cs)
			}
		})
	}
	// Every request but the fills' leaders joins a flight; the bound
	// only keeps a broken build from hanging (the count is asserted on
	// the origin either way).
	collapsed := func() (sum float64) {
		for _, nd := range nodes {
			sum += testutil.ToFloat64(nd.server.metrics.collapsed)
		}
		return sum
	}
	for deadline := time.Now().Add(time.Minute); collapsed() < float64(n-want) && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
	}
	close(release)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	return o.hits.Load()
}

// ownerIndex is the index of the node owning path's key.
func ownerIndex(nodes []*node, path string) int {
	owner := nodes[0].cl.Owner(nodes[0].keyOf(path), time.Now())
	for i, n := range nodes {
		if n.cl.Self() == owner.URL {
			return i
		}
	}
	return -1
}

// TestClusterHerdMakesOneOriginFetch: 300 requests for one object spread
// over three nodes make one origin fetch with clustering (the owner
// coalesces the other nodes' misses) and three without.
func TestClusterHerdMakesOneOriginFetch(t *testing.T) {
	if got := herd(t, true); got != 1 {
		t.Errorf("clustered: the origin got %d requests for a herd of 300 over 3 nodes, want 1", got)
	}
	if got := herd(t, false); got != 3 {
		t.Errorf("unclustered: the origin got %d requests for a herd of 300 over 3 nodes, want 3 (one per node)", got)
	}
}

// TestClusterOwnerStoresNonOwnersDoNot: a miss on a non-owner is stored
// by the owner only, and the next request on any node makes no origin
// fetch.
func TestClusterOwnerStoresNonOwnersDoNot(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get(PeerHeader) != "" {
			t.Errorf("the origin received %s: %q", PeerHeader, r.Header.Get(PeerHeader))
		}
		w.Header().Set("Cache-Control", "max-age=600")
		io.WriteString(w, "object "+r.URL.Path)
	})
	nodes := newNodes(t, o.URL, 3, true)
	client := &http.Client{Timeout: time.Minute}
	const path = "/stored"
	own := ownerIndex(nodes, path)
	asker := (own + 1) % 3
	code, cs, body, err := clusterGet(client, nodes[asker].front.URL, path)
	if err != nil || code != 200 || body != "object "+path {
		t.Fatalf("GET on a non-owner: %d %q %v", code, body, err)
	}
	if !strings.Contains(cs, "fwd=peer") || !strings.Contains(cs, "fwd=uri-miss") {
		t.Errorf("Cache-Status %q: want the owner's miss and this node's fwd=peer", cs)
	}
	waitFills(t, nodes)
	key := nodes[own].keyOf(path)
	for i, n := range nodes {
		_, err := n.store.Get(t.Context(), key)
		if stored := err == nil; stored != (i == own) {
			t.Errorf("node %d (owner %v) stored the object: %v", i, i == own, stored)
		}
	}
	for i, n := range nodes {
		code, cs, _, err := clusterGet(client, n.front.URL, path)
		if err != nil || code != 200 || !isHit(strings.Split(cs, ",")[0]) {
			t.Errorf("node %d: %d, Cache-Status %q, %v: want the owner's hit", i, code, cs, err)
		}
	}
	if got := o.hits.Load(); got != 1 {
		t.Errorf("the origin got %d requests, want 1", got)
	}
	var peerOK float64
	for _, n := range nodes {
		peerOK += testutil.ToFloat64(n.server.peers.fetches.WithLabelValues(nodes[own].cl.Self(), "ok"))
	}
	if peerOK != 3 {
		t.Errorf("cellar_peer_fetches_total{peer=owner,result=ok} sums to %v over the nodes, want 3", peerOK)
	}
}

// waitFills waits (bounded) until no node has a fill in progress.
func waitFills(t *testing.T, nodes []*node) {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		busy := false
		for _, n := range nodes {
			if n.front != nil && testutil.ToFloat64(n.server.metrics.fillsInProgress) != 0 {
				busy = true
			}
		}
		if !busy {
			return
		}
	}
	t.Fatal("fills still in progress after a minute")
}

// TestClusterStoppedNodeOthersAnswer: with one node stopped, the other two
// answer every request, from the origin for the stopped node's keys, and
// mark it down.
func TestClusterStoppedNodeOthersAnswer(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=600")
		io.WriteString(w, "object "+r.URL.Path)
	})
	nodes := newNodes(t, o.URL, 3, true)
	stopped := nodes[2]
	stoppedAddr := stopped.cl.Self()
	stopped.stop(t)
	client := &http.Client{Timeout: time.Minute}
	owned := 0
	for i := range 60 { // before any node marks the stopped one down
		if nodes[0].cl.Owner(nodes[0].keyOf(fmt.Sprintf("/k%d", i)), time.Now()).URL == stoppedAddr {
			owned++
		}
	}
	for i := range 60 {
		path := fmt.Sprintf("/k%d", i)
		for _, n := range nodes[:2] {
			code, cs, body, err := clusterGet(client, n.front.URL, path)
			if err != nil || code != 200 || body != "object "+path {
				t.Fatalf("GET %s on %s with a node stopped: %d %q (Cache-Status %q) %v", path, n.cl.Self(), code, body, cs, err)
			}
		}
	}
	if owned == 0 {
		t.Fatal("the stopped node owns none of the 60 keys")
	}
	for _, n := range nodes[:2] {
		if !n.cl.Down(stoppedAddr, n.server.now()) {
			t.Errorf("%s does not mark the stopped node down", n.cl.Self())
		}
		if e := testutil.ToFloat64(n.server.peers.fetches.WithLabelValues(stoppedAddr, "error")); e < 1 {
			t.Errorf("%s: cellar_peer_fetches_total{result=error} for the stopped node is %v, want at least 1", n.cl.Self(), e)
		}
	}
	t.Logf("the stopped node owned %d of 60 keys", owned)
}

// TestClusterPeerRequestIsNeverForwarded: a request marked as a peer fetch
// is answered by the node that receives it, even for a key it does not
// own, and the mark does not reach the origin.
func TestClusterPeerRequestIsNeverForwarded(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get(PeerHeader) != "" {
			t.Errorf("the origin received %s", PeerHeader)
		}
		w.Header().Set("Cache-Control", "max-age=600")
		io.WriteString(w, "x")
	})
	nodes := newNodes(t, o.URL, 3, true)
	const path = "/peer-marked"
	other := (ownerIndex(nodes, path) + 1) % 3
	req, _ := http.NewRequest(http.MethodGet, nodes[other].front.URL+path, nil)
	req.Host = testHost
	req.Header.Set(PeerHeader, "http://127.0.0.1:1")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if cs := resp.Header.Get("Cache-Status"); strings.Contains(cs, "fwd=peer") || resp.StatusCode != 200 {
		t.Errorf("a peer-marked request was forwarded again: %d, Cache-Status %q", resp.StatusCode, cs)
	}
	for _, n := range nodes {
		if got := testutil.CollectAndCount(n.server.peers.fetches); got != 0 {
			t.Errorf("%s made %d peer fetches, want none", n.cl.Self(), got)
		}
	}
	if o.hits.Load() != 1 {
		t.Errorf("the origin got %d requests, want 1", o.hits.Load())
	}
}

// TestClusterGossipMemberThatLeavesOwnsNothing: three nodes that find each
// other by gossip share the keys; once one leaves the gossip (a clean
// shutdown begins so), the other two send it no more peer fetches: its
// keys are theirs.
func TestClusterGossipMemberThatLeavesOwnsNothing(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=600")
		io.WriteString(w, "object "+r.URL.Path)
	})
	nodes := newNodesWith(t, o.URL, 3, nodeOptions{gossip: true})
	client := &http.Client{Timeout: time.Minute}
	leaving := nodes[2]
	owned := 0
	for i := range 60 {
		if ownerIndex(nodes, fmt.Sprintf("/g%d", i)) == 2 {
			owned++
		}
	}
	if owned == 0 {
		t.Fatal("the third node owns none of 60 keys")
	}
	if err := leaving.cl.Close(); err != nil {
		t.Fatal(err)
	}
	waitMembers(t, nodes[0], 2)
	waitMembers(t, nodes[1], 2)
	for i := range 60 {
		path := fmt.Sprintf("/g%d", i)
		for _, n := range nodes[:2] {
			code, cs, body, err := clusterGet(client, n.front.URL, path)
			if err != nil || code != 200 || body != "object "+path {
				t.Fatalf("GET %s on %s: %d %q (Cache-Status %q) %v", path, n.cl.Self(), code, body, cs, err)
			}
		}
	}
	for _, n := range nodes[:2] {
		if got := testutil.ToFloat64(n.server.peers.fetches.WithLabelValues(leaving.cl.Self(), "ok")) +
			testutil.ToFloat64(n.server.peers.fetches.WithLabelValues(leaving.cl.Self(), "error")); got != 0 {
			t.Errorf("%s made %v peer fetches to the member that left", n.cl.Self(), got)
		}
	}
	if got := o.hits.Load(); got != 60 {
		t.Errorf("the origin got %d requests for 60 keys over two nodes, want 60 (each key once, by its owner)", got)
	}
	t.Logf("the member that left owned %d of 60 keys before it left", owned)
}

// stallFirst is what the stalling origin sends before it stalls.
var stallFirst = bytes.Repeat([]byte("first bytes "), 200<<10/12)

// TestClusterStalledOwnerCutsTheClient: an owner that sends part of a body
// and then nothing (its origin stalls, and its own between-bytes bound is
// long) does not hold the asking node's client forever: every read of a
// peer's body is bounded by timeouts.between_bytes, after which the
// client's response is cut.
func TestClusterStalledOwnerCutsTheClient(t *testing.T) {
	release := make(chan struct{})
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=600")
		w.Header().Set("Content-Length", "1000000")
		w.Write(stallFirst) // more than a store chunk: the owner passes it on
		w.(http.Flusher).Flush()
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	nodes := newNodesWith(t, o.URL, 3, nodeOptions{clustered: true, tune: func(i int, o *Options) {
		o.BetweenBytes = 300 * time.Millisecond
		if i == 0 {
			o.BetweenBytes = 10 * time.Minute // the owner waits on its origin
		}
	}})
	t.Cleanup(func() { close(release) }) // before the nodes stop
	path := ""
	for i := 0; path == ""; i++ {
		if p := fmt.Sprintf("/stall%d", i); ownerIndex(nodes, p) == 0 {
			path = p
		}
	}
	client := &http.Client{Timeout: 2 * time.Minute}
	req, _ := http.NewRequest(http.MethodGet, nodes[1].front.URL+path, nil)
	req.Host = testHost
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !errors.Is(err, io.ErrUnexpectedEOF) || !bytes.HasPrefix(stallFirst, body) {
		t.Fatalf("read %d bytes, %v: want some of the first bytes, then the response cut (unexpected EOF), not the client's timeout", len(body), err)
	}
	if cs := strings.Join(resp.Header.Values("Cache-Status"), ", "); !strings.Contains(cs, "fwd=peer") {
		t.Errorf("Cache-Status %q: not a peer fetch", cs)
	}
	if e := testutil.ToFloat64(nodes[1].server.peers.fetches.WithLabelValues(nodes[0].cl.Self(), "error")); e != 1 {
		t.Errorf("cellar_peer_fetches_total{result=error} is %v, want 1", e)
	}
}

// TestClusterLocalHot: with local_hot, a node that got an object from its
// owner keeps it in its memory tier only (never on its disk) and answers
// the next requests for it itself (hit, detail=hot), with the owner's
// freshness: the Age the origin sent and the owner's time count. A purge
// applied on that node (as purge.peers or the purge stream apply it on
// every node) removes the copy, and the node asks the owner again.
// Answers that differ by client (Vary) are never kept.
func TestClusterLocalHot(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=600")
		w.Header().Set("Age", "100")
		w.Header().Set("Content-Type", "image/png")
		if strings.HasPrefix(r.URL.Path, "/vary") {
			w.Header().Set("Vary", "Accept-Language")
		}
		io.WriteString(w, "hot object "+r.URL.Path)
	})
	nodes := newNodesWith(t, o.URL, 3, nodeOptions{clustered: true, tune: func(i int, o *Options) { o.LocalHot = true }})
	client := &http.Client{Timeout: time.Minute}
	const path = "/hot"
	own := ownerIndex(nodes, path)
	asker := nodes[(own+1)%3]
	key := asker.keyOf(path)
	get := func(want string) *http.Response {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, asker.front.URL+path, nil)
		req.Host = testHost
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if cs := strings.Join(resp.Header.Values("Cache-Status"), ", "); resp.StatusCode != 200 || string(b) != "hot object "+path || !strings.Contains(cs, want) {
			t.Fatalf("GET on the non-owner: %d %q, Cache-Status %q; want %q", resp.StatusCode, b, cs, want)
		}
		return resp
	}
	peerFetches := func() float64 {
		return testutil.ToFloat64(asker.server.peers.fetches.WithLabelValues(nodes[own].cl.Self(), "ok"))
	}

	// The handler keeps the copy once it has written the body, and the
	// memory tier admits it in the background: wait for it.
	waitHot := func() {
		t.Helper()
		waitFor(t, "the non-owner keeps a hot copy", func() bool {
			obj, err := asker.store.Get(t.Context(), key)
			return err == nil && obj.Hot()
		})
	}
	get("fwd=peer")
	waitHot()
	if l, err := asker.store.List(t.Context(), store.Selector{URL: key}, 0); err != nil || len(l) != 0 {
		t.Fatalf("the non-owner's disk lists %d objects (%v), want none", len(l), err)
	}
	resp := get("detail=hot")
	cs := strings.Join(resp.Header.Values("Cache-Status"), ", ")
	if strings.Contains(cs, "fwd=peer") || peerFetches() != 1 {
		t.Errorf("the second request went to the owner (Cache-Status %q, %v peer fetches)", cs, peerFetches())
	}
	// The owner's freshness: 600 s less the origin's Age 100 (and time).
	if age, _ := strconv.Atoi(resp.Header.Get("Age")); age < 100 {
		t.Errorf("Age %q: the owner's age (at least the origin's 100) does not count", resp.Header.Get("Age"))
	}
	if m := regexp.MustCompile(`ttl=(\d+)`).FindStringSubmatch(cs); m == nil || atoi(m[1]) > 500 || atoi(m[1]) < 400 {
		t.Errorf("Cache-Status %q: want the owner's remaining freshness, at most 500 s", cs)
	}
	if got := testutil.ToFloat64(asker.server.peers.hot); got != 1 {
		t.Errorf("cellar_peer_hot_copies_total = %v, want 1", got)
	}

	// A purge reaches the copy: the next request asks the owner again.
	if n, err := asker.store.Purge(t.Context(), store.Selector{URL: key}, false); err != nil || n != 1 {
		t.Fatalf("purge on the non-owner: %d, %v; want its hot copy purged", n, err)
	}
	get("fwd=peer")
	if peerFetches() != 2 {
		t.Errorf("after the purge, %v peer fetches, want 2", peerFetches())
	}
	waitHot()
	get("detail=hot")

	// An answer that varies is streamed through only.
	vary := ""
	for i := 0; vary == ""; i++ {
		if p := fmt.Sprintf("/vary%d", i); ownerIndex(nodes, p) == own {
			vary = p
		}
	}
	for range 2 {
		if code, cs, _, err := clusterGet(client, asker.front.URL, vary); err != nil || code != 200 || !strings.Contains(cs, "fwd=peer") {
			t.Errorf("GET %s on the non-owner: %d, %q, %v; want the owner's answer each time", vary, code, cs, err)
		}
	}
	if got := testutil.ToFloat64(asker.server.peers.hot); got != 2 {
		t.Errorf("cellar_peer_hot_copies_total = %v after a varying answer, want 2 (unchanged)", got)
	}
}

func atoi(s string) int { n, _ := strconv.Atoi(s); return n }
