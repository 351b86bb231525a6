package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/cellar-cache/cellar/cluster"
	"github.com/cellar-cache/cellar/cluster/purgestream"
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
	resp, err := http.Get("http://" + a.admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`cellar_cluster_members{state="self"} 1`, `cellar_cluster_members{state="alive"} 1`, `cellar_peer_fetches_total{peer="` + b.self + `",result="ok"}`} {
		if !strings.Contains(string(metrics), want) {
			t.Errorf("a's /metrics lacks %s", want)
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

// readmeBlock returns the shell block that follows marker in README.md.
func readmeBlock(t *testing.T, marker string) string {
	t.Helper()
	raw, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	s := string(raw)
	i := strings.Index(s, marker)
	if i < 0 {
		t.Fatalf("README.md has no %q", marker)
	}
	s = s[i:]
	start := strings.Index(s, "```sh\n")
	end := strings.Index(s[start+6:], "\n```")
	if start < 0 || end < 0 {
		t.Fatalf("no sh block after %q in README.md", marker)
	}
	return s[start+6 : start+6+end+1]
}

// readmePorts picks the example's ports anew: proxies b, b+10, b+20 and
// their admin ports one above, gossip g..g+2 (TCP and UDP), the origin o,
// all free a moment ago.
func readmePorts(t *testing.T) (b, g, o int) {
	t.Helper()
	free := func(port int, udp bool) bool {
		ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			return false
		}
		defer ln.Close()
		if udp {
			pc, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", port))
			if err != nil {
				return false
			}
			pc.Close()
		}
		return true
	}
	for range 200 {
		b, g = 20000+rand.IntN(20000), 40000+rand.IntN(10000)
		o = freePorts(t, 1)[0]
		ok := free(g, true) && free(g+1, true) && free(g+2, true)
		for _, p := range []int{b, b + 1, b + 10, b + 11, b + 20, b + 21} {
			ok = ok && free(p, false) && p != o && (p < g || p > g+2)
		}
		if ok && (o < g || o > g+2) {
			return b, g, o
		}
	}
	t.Fatal("no free ports for the README's example")
	return
}

// TestReadmeClusterExample runs the README's three-node example as a new
// user would (bash and curl, the built binary), on ports picked free
// instead of the README's: the three nodes see each other, one request per
// node for one URL makes one origin fetch (the owner's "stored"), the two
// other nodes answering through the owner (fwd=peer), and a second round
// is answered by the owner's hit and the others' hot copies.
func TestReadmeClusterExample(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the cellar binary")
	}
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("bash is not installed")
	}
	if _, err := exec.LookPath("curl"); err != nil {
		t.Skip("curl is not installed")
	}
	bin := buildCellar(t)
	block := readmeBlock(t, "<!-- cluster-example")
	for attempt := 1; ; attempt++ {
		b, g, o := readmePorts(t)
		dir := t.TempDir()
		script := strings.NewReplacer(
			"./bin/cellar", bin, "/tmp/cellar-cluster", dir,
			"8080", strconv.Itoa(b), "8081", strconv.Itoa(b+1), "8090", strconv.Itoa(b+10), "8091", strconv.Itoa(b+11),
			"8100", strconv.Itoa(b+20), "8101", strconv.Itoa(b+21),
			"7946", strconv.Itoa(g), "7947", strconv.Itoa(g+1), "7948", strconv.Itoa(g+2), "9000", strconv.Itoa(o),
		).Replace(block)
		cmd := exec.Command(bash, "-c", script)
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		pgid := cmd.Process.Pid
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err = <-done:
		case <-time.After(3 * time.Minute):
			err = errors.New("the example ran for 3 minutes")
		}
		// The script stops what it started; this ends whatever it left.
		syscall.Kill(-pgid, syscall.SIGKILL)
		logs := func() string {
			var all []string
			for _, f := range []string{"origin.log", strconv.Itoa(b) + ".log", strconv.Itoa(b+10) + ".log", strconv.Itoa(b+20) + ".log"} {
				l, _ := os.ReadFile(filepath.Join(dir, f))
				all = append(all, f+":\n"+string(l))
			}
			return strings.Join(all, "\n")
		}
		text := out.String()
		if err != nil || !strings.Contains(text, "cluster: 3 live, 0 down") {
			if attempt < 3 && strings.Contains(logs(), "address already in use") {
				t.Logf("a picked port was taken meanwhile; again on new ports")
				continue
			}
			t.Fatalf("the example: %v\noutput:\n%s\nlogs:\n%s", err, text, logs())
		}
		count := func(s string) int { return strings.Count(text, s) }
		// Round 1: the owner's miss (the one origin fetch), two peer
		// fetches answered by its hit; round 2: its hit and the two
		// others' hot copies (cluster.local_hot).
		if count("Cache-Status:") != 8 || count("fwd=uri-miss") != 1 || count("; stored") != 1 || count("fwd=peer") != 2 ||
			count("cellar; hit") != 5 || count("detail=hot") != 2 {
			t.Errorf("want one origin fetch (stored by the owner), two peer fetches, then the owner's hit and two hot copies; the example printed:\n%s", text)
		}
		for _, want := range []string{"self\n", "alive\n"} {
			if !strings.Contains(text, want) {
				t.Errorf("the members lack %q:\n%s", want, text)
			}
		}
		t.Logf("the README's example printed:\n%s", text)
		return
	}
}

// TestHealthzShowsAMemberMarkedDown: a static member that refuses
// connections is marked down by the first peer fetch that fails (the
// request is answered from the origin), and /healthz and the metrics say
// so until cluster.down_for has passed.
func TestHealthzShowsAMemberMarkedDown(t *testing.T) {
	origin := newBodyOrigin(t)
	dead := "http://127.0.0.1:" + strconv.Itoa(freePorts(t, 1)[0]) // nobody listens there
	cfg := writeConfig(t, "cluster:\n  self: http://127.0.0.1:1\n  peers: ["+dead+"]\n  down_for: 10m\n")
	r, err := startServe(t, "-config", cfg, "-origin", origin.URL, "-data-dir", t.TempDir(), "-access-log=false")
	if err != nil {
		t.Fatal(err)
	}
	for i := range 20 { // about half are the dead member's
		path := fmt.Sprintf("/obj/%d", i)
		resp, err := http.Get("http://" + r.proxy + path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !bytes.Equal(b, objBody(path)) {
			t.Fatalf("GET %s with a dead member: %d, %d bytes", path, resp.StatusCode, len(b))
		}
	}
	get := func(path string) string {
		resp, err := http.Get("http://" + r.admin + path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return string(b)
	}
	h := get("/healthz")
	for _, want := range []string{"cluster: 1 live, 1 down\n", "member http://127.0.0.1:1 self\n", "member " + dead + " down\n"} {
		if !strings.Contains(h, want) {
			t.Errorf("/healthz lacks %q:\n%s", want, h)
		}
	}
	if m := get("/metrics"); !strings.Contains(m, `cellar_cluster_members{state="down"} 1`) {
		t.Error(`/metrics lacks cellar_cluster_members{state="down"} 1`)
	}
	var rd struct{ Cluster []cluster.Member }
	if err := json.Unmarshal([]byte(get("/readyz")), &rd); err != nil {
		t.Fatal(err)
	}
	states := map[string]string{}
	for _, m := range rd.Cluster {
		states[m.URL] = m.State
	}
	if len(rd.Cluster) != 2 || states["http://127.0.0.1:1"] != cluster.StateSelf || states[dead] != cluster.StateDown {
		t.Errorf("/readyz cluster = %+v, want self and %s down", rd.Cluster, dead)
	}
	// The dashboard shows them too, in headless Chromium.
	ctx := browser(t)
	if err := chromedp.Do(ctx, chromedp.Navigate("http://"+r.admin+"/")); err != nil {
		t.Fatalf("opening the dashboard: %v", err)
	}
	waitText(t, ctx, "#cluster", "the cluster's members", func(s string) bool {
		return strings.HasPrefix(s, "1 live, 1 down · ") && strings.Contains(s, "http://127.0.0.1:1 self") && strings.Contains(s, dead+" down")
	})
}

// TestPurgeStreamReachesHotCopies: two cellars share key ownership
// (static peers), local_hot and a purge stream (NATS embedded in the
// test). A's hot copy of an object B owns is removed by a purge made on B:
// the stream applies it on A too, whose next request asks B again and gets
// the origin's new version.
func TestPurgeStreamReachesHotCopies(t *testing.T) {
	origin := newVersionedOrigin(t)
	srv, err := purgestream.StartServer(purgestream.ServerOptions{Listen: "127.0.0.1:0", StoreDir: filepath.Join(t.TempDir(), "nats")})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	var a, b *running
	for attempt := 1; ; attempt++ {
		ports := freePorts(t, 2)
		self := func(i int) string { return fmt.Sprintf("http://127.0.0.1:%d", ports[i]) }
		start := func(i int, name string) (*running, error) {
			cfg := fmt.Sprintf("purge:\n  tokens: [%s]\ncluster:\n  self: %s\n  peers: [%s]\n  local_hot: true\n  nats: {url: %q, name: %s}\n",
				streamToken, self(i), self(1-i), srv.URL(), name)
			return startServe(t, "-config", writeConfig(t, cfg), "-origin", origin.URL, "-data-dir", t.TempDir(), "-access-log=false",
				"-listen", fmt.Sprintf("127.0.0.1:%d", ports[i]))
		}
		if a, err = start(0, "a"); err == nil {
			b, err = start(1, "b")
		}
		if err == nil {
			break
		}
		if attempt == 3 || !strings.Contains(err.Error(), "address already in use") {
			t.Fatal(err)
		}
	}
	get := func(n *running, path string) (string, string) {
		req, _ := http.NewRequest(http.MethodGet, "http://"+n.proxy+path, nil)
		req.Host = "cellar.test"
		req.Header.Set("Accept-Encoding", "identity") // an owner's gzip answer is never kept
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return string(body), strings.Join(resp.Header.Values("Cache-Status"), ", ")
	}
	// A path that B owns: A asks B for it.
	path := ""
	for i := 0; path == ""; i++ {
		p := fmt.Sprintf("/h%d", i)
		if _, cs := get(a, p); strings.Contains(cs, "fwd=peer") {
			path = p
		}
	}
	if body, cs := get(a, path); body != path+" v1" || !strings.Contains(cs, "detail=hot") {
		t.Fatalf("A's second request for %s: %q, Cache-Status %q; want its hot copy", path, body, cs)
	}
	origin.version.Store(2)
	bn := &streamNode{name: "b", running: b}
	if code, ans := bn.purge(t, `{"urls":["http://cellar.test`+path+`"]}`); code != http.StatusOK || ans.Stream.Seq != 1 {
		t.Fatalf("purge on B = %d %+v", code, ans)
	}
	an := &streamNode{name: "a", running: a}
	waitFor(t, "A applies the purge", func() bool { return an.streamStatus(t).Applied == 1 })
	if body, cs := get(a, path); body != path+" v2" || !strings.Contains(cs, "fwd=peer") {
		t.Errorf("A after the purge made on B: %q, Cache-Status %q; want the new version through B", body, cs)
	}
}
