package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/cellar-cache/cellar/cluster/purgestream"
	"github.com/cellar-cache/cellar/purge"
)

const streamToken = "token-of-the-cluster-0123456789"

// versionedOrigin answers every path with "<path> v<version>", cacheable
// for an hour, and counts the requests per path.
type versionedOrigin struct {
	*httptest.Server
	version atomic.Int64
	mu      sync.Mutex
	fetches map[string]int
}

func newVersionedOrigin(t *testing.T) *versionedOrigin {
	o := &versionedOrigin{fetches: map[string]int{}}
	o.version.Store(1)
	o.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		o.mu.Lock()
		o.fetches[r.URL.Path]++
		o.mu.Unlock()
		w.Header().Set("Cache-Control", "max-age=3600")
		fmt.Fprintf(w, "%s v%d", r.URL.Path, o.version.Load())
	}))
	t.Cleanup(o.Close)
	return o
}

func (o *versionedOrigin) count(path string) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.fetches[path]
}

// streamNode is one cellar of the test's cluster: its name and data
// directory survive its restarts.
type streamNode struct {
	name, dir string
	*running
}

func (n *streamNode) start(t *testing.T, origin, natsURL, catchUpWait string) {
	t.Helper()
	cfg := fmt.Sprintf("purge:\n  tokens: [%s]\ncluster:\n  nats: {url: %q, name: %s, catch_up_wait: %s}\n", streamToken, natsURL, n.name, catchUpWait)
	r, err := startServe(t, "-config", writeConfig(t, cfg), "-origin", origin, "-data-dir", n.dir, "-access-log=false")
	if err != nil {
		t.Fatalf("starting %s: %v", n.name, err)
	}
	n.running = r
}

// get asks the node for path (Host cellar.test) and returns the body and
// Cache-Status.
func (n *streamNode) get(t *testing.T, path string) (string, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, "http://"+n.proxy+path, nil)
	req.Host = "cellar.test"
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b), resp.Header.Get("Cache-Status")
}

// stored asks for path until the node answers it from its store.
func (n *streamNode) stored(t *testing.T, path string) string {
	t.Helper()
	var body string
	waitFor(t, n.name+" stores "+path, func() bool {
		b, cs := n.get(t, path)
		body = b
		return strings.Contains(cs, "; hit")
	})
	return body
}

// purgeAnswer is the purge API's answer with a stream.
type purgeAnswer struct {
	Purged int `json:"purged"`
	Stream struct {
		Seq     uint64 `json:"seq"`
		Applied int    `json:"applied"`
		Nodes   int    `json:"nodes"`
		Pending bool   `json:"pending"`
	} `json:"stream"`
	Error string `json:"error"`
}

func (n *streamNode) purge(t *testing.T, body string) (int, purgeAnswer) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, "http://"+n.admin+"/purge/url", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+streamToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var ans purgeAnswer
	if err := json.NewDecoder(resp.Body).Decode(&ans); err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, ans
}

// metrics checks the node's purge stream gauges.
func (n *streamNode) metrics(t *testing.T, want map[string]float64) {
	t.Helper()
	_, body := get(t, "http://"+n.admin+"/metrics")
	for series, v := range want {
		if got := metricValue(body, series); got != v {
			t.Errorf("%s: %s = %v, want %v", n.name, series, got, v)
		}
	}
}

func (n *streamNode) healthz(t *testing.T) string {
	t.Helper()
	_, body := get(t, "http://"+n.admin+"/healthz")
	return body
}

func (n *streamNode) streamStatus(t *testing.T) purgestream.Status {
	t.Helper()
	_, rd := readyz(t, n.admin)
	if rd.PurgeStream == nil {
		t.Fatalf("%s: /readyz has no purge_stream", n.name)
	}
	return *rd.PurgeStream
}

// TestPurgeStreamReachesANodeThatWasDown: three cellars share a purge
// stream on a NATS server (embedded in the test). A purge made on A while
// C is stopped reaches C when it starts again on the same data directory:
// C never serves the purged body. Started while NATS is down, C serves
// none of what it stored before until it has caught up (misses go to the
// origin); once NATS is back it catches up by itself. A purge is not
// applied again after a restart, so an object stored after it stays. A
// soft purge reaches every node.
func TestPurgeStreamReachesANodeThatWasDown(t *testing.T) {
	origin := newVersionedOrigin(t)
	natsDir := filepath.Join(t.TempDir(), "nats")
	srv, err := purgestream.StartServer(purgestream.ServerOptions{Listen: "127.0.0.1:0", StoreDir: natsDir})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { srv.Close() }()
	natsURL := srv.URL()
	a, b, c := &streamNode{name: "a", dir: t.TempDir()}, &streamNode{name: "b", dir: t.TempDir()}, &streamNode{name: "c", dir: t.TempDir()}
	nodes := []*streamNode{a, b, c}
	for _, n := range nodes {
		n.start(t, origin.URL, natsURL, "10s")
	}
	paths := []string{"/x", "/y", "/z", "/w"}
	for _, n := range nodes {
		for _, p := range paths {
			if body := n.stored(t, p); body != p+" v1" {
				t.Fatalf("%s stored %q for %s", n.name, body, p)
			}
		}
	}

	// C stops; A purges /x (hard) and /y (soft); the origin has v2.
	c.stop(t)
	origin.version.Store(2)
	code, ans := a.purge(t, `{"urls":["http://cellar.test/x"]}`)
	if code != http.StatusOK || ans.Stream.Seq != 1 || ans.Purged != 1 || ans.Stream.Nodes != 3 || ans.Stream.Applied < 1 || ans.Stream.Applied > 2 {
		t.Fatalf("purge on A = %d %+v, want 200, seq 1, purged 1 here, applied by 1 or 2 of 3 nodes (C is down)", code, ans)
	}
	if code, ans := a.purge(t, `{"urls":["http://cellar.test/y"],"soft":true}`); code != http.StatusOK || ans.Stream.Seq != 2 || ans.Purged != 1 {
		t.Fatalf("soft purge on A = %d %+v, want 200, seq 2, purged 1 here", code, ans)
	}
	if body, cs := a.get(t, "/x"); body != "/x v2" || strings.Contains(cs, "; hit") {
		t.Errorf("A after its purge: %q (%s), want a miss with v2", body, cs)
	}
	waitFor(t, "B applies both purges", func() bool { return b.streamStatus(t).Applied == 2 })
	for _, p := range []string{"/x", "/y"} {
		if body, _ := b.get(t, p); body != p+" v2" {
			t.Errorf("B after the purge of %s: %q, want v2", p, body)
		}
	}

	// B restarts: the purge of /x, applied before /x was stored again,
	// is not applied again (the applied sequence is kept), so /x stays.
	b.stored(t, "/x")
	fetches := origin.count("/x")
	b.stop(t)
	b.start(t, origin.URL, natsURL, "10s")
	if body, cs := b.get(t, "/x"); body != "/x v2" || !strings.Contains(cs, "; hit") || origin.count("/x") != fetches {
		t.Errorf("B after a restart: /x %q (%s), %d origin fetches (was %d): want the object stored after the purge, a hit", body, cs, origin.count("/x"), fetches)
	}

	// C starts again on its data directory: it catches up before it
	// serves, and never serves the purged bodies.
	start := time.Now()
	c.start(t, origin.URL, natsURL, "10s")
	ready := time.Since(start)
	st := c.streamStatus(t)
	if !st.CaughtUp || st.Applied != 2 || st.Lag != 0 {
		t.Fatalf("C ready but its stream status is %+v, want caught up at 2, lag 0", st)
	}
	t.Logf("C: ready %v after its start, purge catch-up %s (2 events)", ready.Round(time.Millisecond), st.CatchUp)
	yFetches := origin.count("/y")
	for _, p := range []string{"/x", "/y"} {
		if body, _ := c.get(t, p); body != p+" v2" {
			t.Errorf("C after its restart: %s = %q, want v2 (purged while C was down)", p, body)
		}
	}
	if origin.count("/y") != yFetches+1 {
		t.Errorf("C's soft-purged /y: %d origin fetches, want 1 (revalidated)", origin.count("/y")-yFetches)
	}
	if h := c.healthz(t); !strings.Contains(h, "purge stream: caught up, connected, applied 2 of 2, lag 0") {
		t.Errorf("C's /healthz:\n%s", h)
	}

	// C stops again; A purges /z; then NATS goes down, and C starts
	// without it: nothing it stored before is served (misses), and
	// what it stores now is.
	c.stop(t)
	if code, ans := a.purge(t, `{"urls":["http://cellar.test/z"]}`); code != http.StatusOK || ans.Stream.Seq != 3 {
		t.Fatalf("purge of /z on A = %d %+v", code, ans)
	}
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(natsURL, "nats://"))
	srv.Close()
	c.start(t, origin.URL, natsURL, "100ms")
	if h := c.healthz(t); !strings.Contains(h, "purge stream: catching up") || !strings.Contains(h, "NATS unreachable") {
		t.Errorf("C's /healthz without NATS:\n%s", h)
	}
	c.metrics(t, map[string]float64{"cellar_purge_stream_caught_up": 0, "cellar_purge_stream_connected": 0, "cellar_purge_stream_applied_sequence": 2})
	for _, p := range []string{"/z", "/w"} {
		before := origin.count(p)
		if body, cs := c.get(t, p); body != p+" v2" || strings.Contains(cs, "; hit") || origin.count(p) != before+1 {
			t.Errorf("C before its catch-up: %s = %q (%s), want a miss fetched from the origin (v2), never the stored v1", p, body, cs)
		}
	}
	if body := c.stored(t, "/w"); body != "/w v2" {
		t.Errorf("C before its catch-up: /w stored meanwhile is %q, want v2", body)
	}
	if srv, err = purgestream.StartServer(purgestream.ServerOptions{Listen: "127.0.0.1:" + port, StoreDir: natsDir}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "C catches up once NATS is back", func() bool { st := c.streamStatus(t); return st.CaughtUp && st.Applied == 3 })
	c.metrics(t, map[string]float64{"cellar_purge_stream_caught_up": 1, "cellar_purge_stream_connected": 1, "cellar_purge_stream_applied_sequence": 3, "cellar_purge_stream_lag": 0})
	if body, _ := c.get(t, "/z"); body != "/z v2" {
		t.Errorf("C after its catch-up: /z = %q", body)
	}
	if body, cs := c.get(t, "/x"); body != "/x v2" || !strings.Contains(cs, "; hit") {
		t.Errorf("C after its catch-up: /x = %q (%s), want its stored v2", body, cs)
	}

	// The PURGE method goes through the stream too.
	a.stored(t, "/x")
	req, _ := http.NewRequest("PURGE", "http://"+c.proxy+"/x", nil)
	req.Host = "cellar.test"
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var pa purgeAnswer
	json.NewDecoder(resp.Body).Decode(&pa)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || pa.Stream.Seq != 4 || pa.Purged != 1 {
		t.Errorf("PURGE on C = %d %+v, want 200, seq 4, purged 1 here", resp.StatusCode, pa)
	}
	// B too: its consumer may still be waiting out its back-off (up to
	// 5 s) since NATS went away, and cellar purge on B below waits only
	// the stream's ApplyWait (5 s) for B to apply its purge.
	waitFor(t, "A and B apply the PURGE", func() bool { return a.streamStatus(t).Applied == 4 && b.streamStatus(t).Applied == 4 })
	if _, cs := a.get(t, "/x"); strings.Contains(cs, "; hit") {
		t.Errorf("A after the PURGE on C: /x is a hit (%s)", cs)
	}

	// cellar purge says where the purge stands in the stream.
	var out strings.Builder
	if err := purge.RunCLI(context.Background(), []string{"url", "-admin", b.admin, "-token", streamToken, "http://cellar.test/y"}, &out, io.Discard, t.TempDir()); err != nil {
		t.Fatal(err)
	}
	if got := out.String(); !strings.HasPrefix(got, "purged 1\npurge stream: event 5, applied by ") || !strings.Contains(got, " of 3 nodes so far\n") {
		t.Errorf("cellar purge printed %q", got)
	}
}

// TestNATSConfig: cluster.nats decodes into the stream's settings, and
// every bad value is named with its line.
func TestNATSConfig(t *testing.T) {
	fc, lines, err := loadConfigText(t, "cluster:\n  self: http://127.0.0.1:8080\n  nats: {embedded: true, store_dir: /var/lib/cellar-nats, catch_up_wait: 2s}\n")
	if err != nil {
		t.Fatal(err)
	}
	var s settings
	if err := fc.apply(&s, lines); err != nil {
		t.Fatal(err)
	}
	want := natsSettings{embedded: true, listen: "127.0.0.1:4222", storeDir: "/var/lib/cellar-nats", node: "127_0_0_1_8080", catchUpWait: 2 * time.Second}
	if s.nats != want {
		t.Errorf("settings %+v, want %+v", s.nats, want)
	}
	for _, tc := range []struct{ text, want string }{
		{"cluster:\n  nats: {embedded: true, url: nats://127.0.0.1:4222, name: a}\n", "line 2: cluster.nats.url"},
		{"cluster:\n  nats: {url: nats://127.0.0.1:4222}\n", "cluster.nats.name"},
		{"cluster:\n  nats: {url: http://127.0.0.1:4222, name: a}\n", "want nats://host:port"},
		{"cluster:\n  nats: {name: a}\n", "give url (an external NATS server) or embedded: true"},
		{"cluster:\n  nats: {url: nats://127.0.0.1:4222, name: a.b}\n", "letters, digits"},
		{"cluster:\n  nats: {url: nats://127.0.0.1:4222, name: a, store_dir: /x}\n", "set embedded: true"},
		{"cluster:\n  nats: {url: nats://127.0.0.1:4222, name: a, catch_up_wait: soon}\n", "cluster.nats.catch_up_wait"},
		{"purge:\n  peers: [http://127.0.0.1:9]\ncluster:\n  nats: {url: nats://127.0.0.1:4222, name: a}\n", "remove purge.peers"},
	} {
		fc, lines, err := loadConfigText(t, tc.text)
		if err == nil {
			err = fc.apply(&settings{}, lines)
		}
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("config %q: error %v, want one that says %q", tc.text, err, tc.want)
		}
	}
}

// TestEmbeddedNATSAddressInUseFailsTheStart: a busy listen address of the
// embedded NATS server stops the start before the data directory is
// written, with an error that names it.
func TestEmbeddedNATSAddressInUseFailsTheStart(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	dir := filepath.Join(t.TempDir(), "data")
	cfg := fmt.Sprintf("purge:\n  tokens: [%s]\ncluster:\n  nats: {embedded: true, listen: %q, name: a}\n", streamToken, ln.Addr().String())
	_, err = startServe(t, "-config", writeConfig(t, cfg), "-origin", "http://127.0.0.1:1", "-data-dir", dir)
	if err == nil || !strings.Contains(err.Error(), ln.Addr().String()) {
		t.Fatalf("serve with the NATS address in use: %v, want an error naming %s", err, ln.Addr())
	}
	if _, err := os.Stat(dir); err == nil {
		t.Errorf("the data directory %s was created", dir)
	}
}

// TestEmbeddedNATSKeepsTheStreamAcrossRestarts: one cellar running its
// own NATS server (files in DATA_DIR/nats by default) takes purges
// through it, and after a restart on the same data directory the stream
// goes on where it was.
func TestEmbeddedNATSKeepsTheStreamAcrossRestarts(t *testing.T) {
	origin := newVersionedOrigin(t)
	n := &streamNode{name: "solo", dir: t.TempDir()}
	cfg := writeConfig(t, fmt.Sprintf("purge:\n  tokens: [%s]\ncluster:\n  nats: {embedded: true, listen: 127.0.0.1:0, name: solo}\n", streamToken))
	for i := range 2 {
		r, err := startServe(t, "-config", cfg, "-origin", origin.URL, "-data-dir", n.dir, "-access-log=false")
		if err != nil {
			t.Fatal(err)
		}
		n.running = r
		n.stored(t, "/x")
		code, ans := n.purge(t, `{"urls":["http://cellar.test/x"]}`)
		if want := uint64(i + 1); code != http.StatusOK || ans.Stream.Seq != want || ans.Purged != 1 || ans.Stream.Nodes != 1 || ans.Stream.Applied != 1 {
			t.Errorf("start %d: purge = %d %+v, want 200, seq %d, purged 1, applied by 1 of 1", i+1, code, ans, want)
		}
		n.stop(t)
	}
	if _, err := os.Stat(filepath.Join(n.dir, "nats")); err != nil {
		t.Errorf("the embedded server's files: %v", err)
	}
}

// TestDashboardShowsThePurgeStream: the dashboard's purge stream section
// shows a node's catch-up, connection and lag, in headless Chromium.
func TestDashboardShowsThePurgeStream(t *testing.T) {
	ctx := browser(t)
	origin := newVersionedOrigin(t)
	n := &streamNode{name: "solo", dir: t.TempDir()}
	cfg := writeConfig(t, fmt.Sprintf("purge:\n  tokens: [%s]\ncluster:\n  nats: {embedded: true, listen: 127.0.0.1:0, name: solo}\n", streamToken))
	r, err := startServe(t, "-config", cfg, "-origin", origin.URL, "-data-dir", n.dir, "-access-log=false")
	if err != nil {
		t.Fatal(err)
	}
	n.running = r
	n.stored(t, "/x")
	if code, _ := n.purge(t, `{"urls":["http://cellar.test/x"]}`); code != http.StatusOK {
		t.Fatalf("purge = %d", code)
	}
	if err := chromedp.Do(ctx, chromedp.Navigate("http://"+n.admin+"/")); err != nil {
		t.Fatalf("opening the dashboard: %v", err)
	}
	waitText(t, ctx, "#purge-stream", "the purge stream", func(s string) bool {
		return s == "caught up · connected · applied 1 of 1 · lag 0"
	})
}
