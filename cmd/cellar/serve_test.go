package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"io"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cellar-cache/cellar/cache"
	"github.com/cellar-cache/cellar/internal/proxytest"
	"github.com/cellar-cache/cellar/internal/testcert"
	"github.com/cellar-cache/cellar/purge"
)

// running is a `cellar serve` started in the test.
type running struct {
	addrs
	cancel context.CancelFunc
	done   chan error
	log    *proxytest.SyncBuffer
}

// startServe runs serve with args plus loopback listeners on free ports,
// and waits until it is ready or has failed.
func startServe(t *testing.T, args ...string) (*running, error) {
	t.Helper()
	return startServeNoListen(t, append([]string{"-listen", "127.0.0.1:0", "-admin", "127.0.0.1:0"}, args...)...)
}

// startServeNoListen is startServe without the listen flags.
func startServeNoListen(t *testing.T, args ...string) (*running, error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{cancel: cancel, done: make(chan error, 1), log: &proxytest.SyncBuffer{}}
	ready := make(chan addrs, 1)
	go func() { r.done <- serve(ctx, args, io.Discard, r.log, func(a addrs) { ready <- a }) }()
	select {
	case r.addrs = <-ready:
	case err := <-r.done:
		cancel()
		return nil, err
	case <-time.After(20 * time.Second):
		cancel()
		t.Fatal("serve did not become ready in 20s")
	}
	t.Cleanup(func() { r.stop(t) })
	return r, nil
}

// stop shuts serve down and checks it exits cleanly.
func (r *running) stop(t *testing.T) {
	r.cancel()
	select {
	case err, ok := <-r.done:
		if ok && err != nil {
			t.Errorf("serve returned %v", err)
		}
		if ok {
			close(r.done)
		}
	case <-time.After(20 * time.Second):
		t.Error("serve did not stop in 20s")
	}
}

func get(t *testing.T, url string) (*http.Response, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}

func TestServeCachesInFrontOfAnOrigin(t *testing.T) {
	var hits atomic.Int64
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.Header().Set("Cache-Control", "max-age=60")
		io.WriteString(w, "from the origin")
	}))
	defer origin.Close()
	dir := t.TempDir()
	r, err := startServe(t, "-origin", origin.URL, "-data-dir", dir, "-memory", "8MiB", "-disk", "64MiB")
	if err != nil {
		t.Fatal(err)
	}
	resp, _ := get(t, "http://"+r.admin+"/healthz")
	if resp.StatusCode != 200 {
		t.Errorf("healthz = %d", resp.StatusCode)
	}
	for i := 0; i < 3; i++ {
		_, body := get(t, "http://"+r.proxy+"/x")
		if body != "from the origin" {
			t.Fatalf("body %q", body)
		}
	}
	if hits.Load() != 1 {
		t.Errorf("origin hits = %d, want 1", hits.Load())
	}
	resp, body := get(t, "http://"+r.admin+"/metrics")
	if resp.StatusCode != 200 || !strings.Contains(body, "cellar_requests_total") {
		t.Errorf("metrics: %d, missing cellar_requests_total", resp.StatusCode)
	}
	if !strings.Contains(r.log.String(), "cellar started") {
		t.Errorf("no start line in the log:\n%s", r.log)
	}
}

func TestServeUsesTheDemoOriginWhenNoneIsGiven(t *testing.T) {
	r, err := startServe(t, "-data-dir", t.TempDir(), "-access-log=false")
	if err != nil {
		t.Fatal(err)
	}
	if r.origin == "" {
		t.Fatal("no demo origin started")
	}
	resp, body := get(t, "http://"+r.proxy+"/hello")
	if resp.StatusCode != 200 || !strings.Contains(body, "demo origin") {
		t.Errorf("demo: %d %q", resp.StatusCode, body)
	}
}

func TestServeShutdownLetsInFlightRequestsFinish(t *testing.T) {
	started := make(chan struct{})
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(started)
		time.Sleep(300 * time.Millisecond)
		io.WriteString(w, "finished")
	}))
	defer origin.Close()
	r, err := startServe(t, "-origin", origin.URL, "-data-dir", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	type result struct {
		body string
		err  error
	}
	got := make(chan result, 1)
	go func() {
		resp, err := http.Get("http://" + r.proxy + "/slow")
		if err != nil {
			got <- result{err: err}
			return
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		got <- result{string(b), err}
	}()
	<-started
	r.cancel() // SIGINT / SIGTERM
	res := <-got
	if res.err != nil || res.body != "finished" {
		t.Errorf("in-flight request: %q, %v", res.body, res.err)
	}
}

func TestServeRefusesALockedDataDir(t *testing.T) {
	dir := t.TempDir()
	if _, err := startServe(t, "-origin", "http://127.0.0.1:1", "-data-dir", dir); err != nil {
		t.Fatal(err)
	}
	_, err := startServe(t, "-origin", "http://127.0.0.1:1", "-data-dir", dir)
	if err == nil || !strings.Contains(err.Error(), dir) || !strings.Contains(err.Error(), "in use") {
		t.Errorf("second serve on %s: %v, want an error naming the dir and saying it is in use", dir, err)
	}
}

func TestServeRefusesADataDirThatCannotBeCreated(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := startServe(t, "-origin", "http://127.0.0.1:1", "-data-dir", filepath.Join(file, "sub"))
	if err == nil || !strings.Contains(err.Error(), "data directory") {
		t.Errorf("serve with an impossible data dir: %v", err)
	}
}

// TestServeWithTheDemoOriginExitsOnStartUpErrors checks that serve without
// -origin (what make run does) returns start-up errors instead of waiting
// forever on the demo origin it started.
func TestServeWithTheDemoOriginExitsOnStartUpErrors(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	locked := t.TempDir()
	if _, err := startServe(t, "-origin", "http://127.0.0.1:1", "-data-dir", locked); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"port in use", []string{"-listen", busy.Addr().String()}, "address already in use"},
		{"admin port in use", []string{"-admin", busy.Addr().String()}, "address already in use"},
		{"bad port", []string{"-listen", "127.0.0.1:99999"}, "invalid port"},
		{"locked data dir", []string{"-data-dir", locked}, "in use"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "data")
			args := append([]string{"-data-dir", dir}, tc.args...)
			_, err := startServe(t, args...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("serve %v: %v, want an error containing %q", tc.args, err, tc.want)
			}
			if tc.name == "locked data dir" {
				return
			}
			// A start that fails on its addresses writes nothing (no
			// store files, ballast or purge token).
			if _, err := os.Stat(dir); !os.IsNotExist(err) {
				entries, _ := os.ReadDir(dir)
				t.Errorf("failed start left %s behind (%v): %d entries", dir, err, len(entries))
			}
		})
	}
}

func TestServeWarnsAboutAnUnreachableOriginAndKeepsServing(t *testing.T) {
	origin := httptest.NewServer(http.NotFoundHandler())
	addr := origin.URL
	origin.Close()
	r, err := startServe(t, "-origin", addr, "-data-dir", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(r.log.String(), "origin unreachable at start") {
		t.Errorf("no warning in the log:\n%s", r.log)
	}
	resp, _ := get(t, "http://"+r.admin+"/healthz")
	if resp.StatusCode != 200 {
		t.Errorf("healthz = %d", resp.StatusCode)
	}
	resp, _ = get(t, "http://"+r.proxy+"/x")
	if resp.StatusCode != http.StatusBadGateway {
		t.Errorf("request to a down origin = %d, want 502", resp.StatusCode)
	}
}

func TestServeRejectsBadSizes(t *testing.T) {
	_, err := startServe(t, "-origin", "http://127.0.0.1:1", "-data-dir", t.TempDir(), "-memory", "lots")
	if err == nil || !strings.Contains(err.Error(), "-memory") {
		t.Errorf("bad -memory: %v", err)
	}
}

func writeConfig(t *testing.T, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "cellar.yaml")
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestConfigErrorsNameKeyAndLine(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "missing.pem")
	for _, tc := range []struct {
		name, text string
		want       []string
	}{
		{"unknown key", "listen: 127.0.0.1:0\nmemroy: 1GiB\n", []string{"line 2: memroy: unknown key; did you mean memory?"}},
		{"unknown nested key", "cache:\n  heuristic_fraction: 0.1\n  default_tll: 1h\n", []string{"line 3: cache.default_tll: unknown key; did you mean default_ttl?"}},
		{"unknown key in a list", "cache:\n  rules:\n    - prefix: /a\n      tll: 1m\n", []string{"line 4: cache.rules[0].tll: unknown key; did you mean ttl?"}},
		{"unknown key far from any", "zzzzzzzz: 1\n", []string{"line 1: zzzzzzzz: unknown key"}},
		{"bad size", "disk: 2XB\n", []string{"line 1", "disk", `"2XB"`, "K, M, G or T"}},
		{"bad log level", "log_level: loud\n", []string{"line 1", "log_level", `"loud"`, "debug, info, warn or error"}},
		{"bad server engine", "server:\n  engine: fasthttp\n", []string{"line 2", "server.engine", `"fasthttp"`, "cellar or net/http"}},
		{"unknown coding", "compression:\n  order: [br, lz4]\n", []string{"line 2", "compression.order[1]", `"lz4"`, "br, zstd, gzip"}},
		{"bad origin", "origin: ftp://x\n", []string{"line 1", "origin", "host:port"}},
		{"bad listen", "listen: 8080\n", []string{"line 1", "listen", "host:port"}},
		{"yaml syntax", "cache:\n  rules: [\n", []string{"line"}},
		{"bad duration", "timeouts:\n  connect: soon\n", []string{"line 2", "timeouts.connect", `"soon"`, "duration"}},
		{"bad rule", "cache:\n  rules:\n    - prefix: static\n      ttl: 1x\n", []string{"line 3", "cache.rules[0].prefix", "line 4", "cache.rules[0].ttl"}},
		{"bad fraction", "cache:\n  heuristic_fraction: 2\n", []string{"line 2", "heuristic_fraction"}},
		{"wrong type", "access_log: maybe\n", []string{`line 1: access_log: "maybe": want true or false`}},
		{"wrong type nested", "coalescing:\n  max_waiters: many\n", []string{`line 2: coalescing.max_waiters: "many": want a whole number`}},
		{"bad cookie policy", "cache:\n  share_cookies: sometimes\n", []string{"line 2", "cache.share_cookies", `"sometimes"`, "explicit, never or always"}},
		{"bad peers", "purge:\n  peers:\n    - http://10.0.0.2:8081\n    - 10.0.0.3\n    - http://10.0.0.4:8081/?x=1\n    - ftp://10.0.0.5\n  peer_timeout: soon\n",
			[]string{"line 4", `purge.peers[1]: "10.0.0.3"`, "line 5", `purge.peers[2]: "http://10.0.0.4:8081/?x=1": has a query`, "line 6", "purge.peers[3]", "not http or https", "e.g. http://10.0.0.2:8081", "line 7", "purge.peer_timeout"}},
		{"peers not a list", "purge:\n  peers: http://10.0.0.2:8081\n", []string{"line 2", "purge.peers", "want a list"}},
		{"bad limits", "limits:\n  max_target: big\n  max_conns: -1\n  rate: {per_second: -2}\n", []string{"line 2", "limits.max_target", "line 3", "limits.max_conns", "limits.rate"}},
		{"bad response header name", "headers:\n  response:\n    set: {\"Bad Name\": x}\n", []string{"Bad Name", "not a valid field name"}},
		{"bad write timeout", "timeouts:\n  write: forever\n", []string{"line 2", "timeouts.write"}},
		{"unknown admin key", "admin:\n  listen: 127.0.0.1:0\n  pprf: true\n", []string{"line 3", "pprf"}},
		// Pools and listeners (issue 16).
		{"bad weight", "origins:\n  - http://10.0.0.1\n  - {url: http://10.0.0.2, weight: 0}\n", []string{"line 3", "origins[1].weight", `"0"`, "1 to 1000"}},
		{"unknown policy", "origins: [http://10.0.0.1]\nbalance: fastest\n", []string{"line 2", "balance", `"fastest"`, "least_conn"}},
		{"unknown site policy", "sites:\n  - origins: [http://10.0.0.1]\n    balance: sticky\n", []string{"line 3", "sites[0].balance"}},
		{"unloadable CA", "origins:\n  - url: https://10.0.0.1\n    ca_file: " + missing + "\n", []string{"line 3", "origins[0].ca_file", "no such file"}},
		{"unknown origin key", "origins:\n  - url: http://10.0.0.1\n    wieght: 2\n", []string{"line 3", "wieght"}},
		{"bad retries", "retries:\n  tries: 0\n  statuses: [503, 1000]\n  budget: forever\n", []string{"line 2", "retries.tries", "line 3", "retries.statuses[1]", "line 4", "retries.budget"}},
		{"unloadable certificate", "listeners:\n  - address: 127.0.0.1:0\n    tls: {cert: " + missing + ", key: " + missing + "}\n", []string{"line 3", "listeners[0].tls.cert", "do not load"}},
		{"http3 without tls", "listeners:\n  - address: 127.0.0.1:0\n    http3: true\n", []string{"line 3", "listeners[0].http3", "needs tls"}},
		{"proxy protocol without trusted proxies", "listeners:\n  - address: 127.0.0.1:0\n    proxy_protocol: true\n", []string{"line 3", "trusted_proxies"}},
		{"redirect without tls listener", "listeners:\n  - address: 127.0.0.1:0\n    redirect_https: true\n", []string{"line 3", "listeners[0].redirect_https"}},
		{"bad address", "listeners:\n  - address: localhost\n", []string{"line 2", "listeners[0].address", "host:port"}},
		{"both forms", "listen: 127.0.0.1:0\nlisteners:\n  - address: 127.0.0.1:0\n", []string{"line 2", "either listen"}},
		{"bad operator knobs", "cache:\n  key:\n    query: shuffle\n  client_no_cache: sometimes\n  status_ttl: {404: soon, 4x: 1m}\n  rules:\n    - prefix: /a/\n      grace: x\n",
			[]string{"line 3", "cache.key.query", `"shuffle"`, "keep, sort or drop", "line 4", "cache.client_no_cache", "honor, ignore or revalidate",
				"cache.status_ttl.404", `"soon"`, "cache.status_ttl.4x", "5xx", "line 8", "cache.rules[0].grace"}},
		// The cluster (issue 19).
		{"bad cluster", "cluster:\n  self: 127.0.0.1:8080\n  peers: [http://127.0.0.1:8090, ftp://x]\n  down_for: soon\n",
			[]string{"cluster.self", `"127.0.0.1:8080"`, "cluster.peers[1]", `"ftp://x"`, "line 4", "cluster.down_for"}},
		{"cluster peers without self", "cluster:\n  peers: [http://127.0.0.1:8090]\n", []string{"cluster.self", "empty"}},
		{"local_hot without a cluster", "cluster:\n  local_hot: true\n", []string{"line 2", "cluster.local_hot", "needs a cluster"}},
		{"bad cluster gossip", "cluster:\n  self: http://127.0.0.1:8080\n  peers: [http://127.0.0.1:8090]\n  gossip: {bind: nowhere, join: [x]}\n",
			[]string{"cluster.peers and cluster.gossip", "cluster.gossip.bind", `"nowhere"`, "cluster.gossip.join[0]", `"x"`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := startServe(t, "-config", writeConfig(t, tc.text), "-origin", "http://127.0.0.1:1", "-data-dir", t.TempDir())
			if err == nil {
				t.Fatal("serve started with a bad config")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
			for _, goName := range []string{"main.", "fileConfig", "[]string", "!!", "unmarshal", "yaml: "} {
				if strings.Contains(err.Error(), goName) {
					t.Errorf("error %q shows Go or YAML internals (%q)", err, goName)
				}
			}
		})
	}
}

func TestExampleConfigIsValid(t *testing.T) {
	fc, lines, err := loadConfig("../../testdata/cellar.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var s settings
	if err := fc.apply(&s, lines); err != nil {
		t.Fatal(err)
	}
	if s.store.MemoryBytes != 256<<20 || s.store.DiskBytes != 2<<30 || len(s.cache.Rules) != 2 || s.proxy.FillTimeout != 0 || s.proxy.BetweenBytes != time.Minute ||
		s.proxy.Compress.Levels["br"] != 5 || s.proxy.MaxWaiters != 10000 || len(s.proxy.Sites) != 1 ||
		len(s.purgePeers) != 0 || s.purgePeerToken != "" || s.purgePeerTimeout != 5*time.Second ||
		s.cache.Cookies != cache.CookiesNever || s.cache.StripCDNCacheControl {
		t.Errorf("example config decoded to %+v", s)
	}
	// Pools (issue 16).
	if p := s.proxy; p.Balance != "round_robin" || p.Retries.Tries != 2 || len(p.Retries.Statuses) != 3 || p.Retries.Budget != 2*time.Second || p.MaxFails != 2 {
		t.Errorf("pool settings %+v", p)
	}
	if site := s.proxy.Sites[0]; len(site.Pool) != 3 || site.Pool[0].Weight != 3 || !site.Pool[2].Backup || site.Balance != "least_conn" || site.Headers.Host != "api.internal" {
		t.Errorf("site %+v", site)
	}
	s.proxy.EnsureDefaults()
	if err := s.proxy.Validate(); err != nil {
		t.Errorf("the example's proxy settings are invalid: %v", err)
	}
	s.cache.EnsureDefaults()
	if err := s.cache.Validate(); err != nil {
		t.Errorf("the example's cache settings are invalid: %v", err)
	}
}

func TestOperatorKnobsDecode(t *testing.T) {
	fc, lines, err := loadConfig(writeConfig(t, `
cache:
  key:
    query: sort
    ignore_params: [utm_*, fbclid]
  status_ttl: {404: 1m, 410: 1h, 5xx: 0s}
  client_no_cache: revalidate
  slice: {min: 16MiB, size: 1MiB}
  vary: {accept_language: [en, fr], accept: [image/webp, image/jpeg]}
  rules:
    - prefix: /api/
      hosts: [api.example.com]
      key: {query: drop, headers: [X-Device], cookies: [ab], fold_case: true}
      client_no_cache: honor
      status_ttl: {404: 5s}
      grace: 30s
      keep: 1h
      ignore_origin_no_cache: true
      ignore_private: true
      strip_set_cookie: true
`))
	if err != nil {
		t.Fatal(err)
	}
	var s settings
	if err := fc.apply(&s, lines); err != nil {
		t.Fatal(err)
	}
	c := s.cache
	want := cache.Rule{Prefix: "/api/", Hosts: []string{"api.example.com"},
		Key:           &cache.KeyOptions{Query: cache.QueryDrop, Headers: []string{"X-Device"}, Cookies: []string{"ab"}, FoldCase: true},
		ClientNoCache: cache.NoCacheHonor, StatusTTL: map[string]time.Duration{"404": 5 * time.Second},
		Grace: 30 * time.Second, Keep: time.Hour, IgnoreOriginNoCache: true, IgnorePrivate: true, StripSetCookie: true}
	if c.Key.Query != cache.QuerySort || !slices.Equal(c.Key.IgnoreParams, []string{"utm_*", "fbclid"}) ||
		!maps.Equal(c.StatusTTL, map[string]time.Duration{"404": time.Minute, "410": time.Hour, "5xx": 0}) ||
		c.ClientNoCache != cache.NoCacheRevalidate || len(c.Rules) != 1 || !reflect.DeepEqual(c.Rules[0], want) ||
		s.proxy.SliceMin != 16<<20 || s.proxy.SliceSize != 1<<20 ||
		!slices.Equal(c.VaryNormalize.AcceptLanguage, []string{"en", "fr"}) || !slices.Equal(c.VaryNormalize.Accept, []string{"image/webp", "image/jpeg"}) {
		t.Errorf("decoded %+v\nrule %+v\nwant %+v", c, c.Rules, want)
	}
	if _, err := cache.New(c); err != nil {
		t.Errorf("cache.New: %v", err)
	}
}

func TestFlagsOverrideTheConfigFile(t *testing.T) {
	var hits atomic.Int64
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		io.WriteString(w, "flag origin")
	}))
	defer origin.Close()
	cfg := writeConfig(t, "origin: http://127.0.0.1:1\nmemory: 1MiB\n")
	r, err := startServe(t, "-config", cfg, "-origin", origin.URL, "-data-dir", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if _, body := get(t, "http://"+r.proxy+"/"); body != "flag origin" || hits.Load() != 1 {
		t.Errorf("body %q, origin hits %d: the -origin flag did not win", body, hits.Load())
	}
}

func TestRunDispatchesSubcommands(t *testing.T) {
	var out, errb bytes.Buffer
	if err := run(context.Background(), []string{"version"}, &out, &errb); err != nil || !strings.HasPrefix(out.String(), "cellar ") {
		t.Errorf("version: %q, %v", out.String(), err)
	}
	if err := run(context.Background(), []string{"nonsense"}, &out, &errb); err == nil {
		t.Error("unknown subcommand accepted")
	}
	if err := run(context.Background(), nil, &out, &errb); err == nil {
		t.Error("no subcommand accepted")
	}
}

// selfSigned writes a certificate and key for 127.0.0.1 into dir.
func selfSigned(t *testing.T, dir string) (certFile, keyFile string) {
	t.Helper()
	certFile, keyFile, _ = testcert.Write(t, dir, "cert")
	return certFile, keyFile
}

func TestServeTerminatesTLSWithHTTP2(t *testing.T) {
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		io.WriteString(w, "over tls "+r.Header.Get("X-Forwarded-Proto"))
	}))
	defer origin.Close()
	dir := t.TempDir()
	cert, key := selfSigned(t, dir)
	r, err := startServe(t, "-origin", origin.URL, "-data-dir", filepath.Join(dir, "data"), "-tls-cert", cert, "-tls-key", key)
	if err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Transport: &http.Transport{
		TLSClientConfig:   &tls.Config{InsecureSkipVerify: true},
		ForceAttemptHTTP2: true,
	}}
	resp, err := client.Get("https://" + r.proxy + "/t")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.ProtoMajor != 2 || string(b) != "over tls https" {
		t.Errorf("proto %s, body %q; want HTTP/2 and X-Forwarded-Proto https", resp.Proto, b)
	}
	if _, err := startServe(t, "-origin", origin.URL, "-data-dir", t.TempDir(), "-tls-cert", cert); err == nil {
		t.Error("a certificate without a key was accepted")
	}
}

// TestServeFansPurgesOutToConfiguredPeers runs two cellars: A lists B in
// purge.peers and takes its peer token from CELLAR_PURGE_PEER_TOKEN (B's
// token, not A's); a purge posted to A reaches B.
func TestServeFansPurgesOutToConfiguredPeers(t *testing.T) {
	const tokA, tokB = "token-of-node-a-0123456789", "token-of-node-b-0123456789"
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=3600")
		io.WriteString(w, "cached")
	}))
	defer origin.Close()
	t.Setenv(purge.EnvPeerToken, tokB)
	b, err := startServe(t, "-config", writeConfig(t, "purge:\n  tokens: ["+tokB+"]\n"), "-origin", origin.URL, "-data-dir", t.TempDir(), "-access-log=false")
	if err != nil {
		t.Fatal(err)
	}
	cfg := "purge:\n  tokens: [" + tokA + "]\n  peers: [http://" + b.admin + "]\n  peer_timeout: 2s\n"
	a, err := startServe(t, "-config", writeConfig(t, cfg), "-origin", origin.URL, "-data-dir", t.TempDir(), "-access-log=false")
	if err != nil {
		t.Fatal(err)
	}
	// Store /x on both; fills commit after the response, so ask until it
	// is a hit (bounded).
	hit := func(n *running) bool {
		req, _ := http.NewRequest(http.MethodGet, "http://"+n.proxy+"/x", nil)
		req.Host = "cellar.test"
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return strings.Contains(resp.Header.Get("Cache-Status"), "; hit")
	}
	for _, n := range []*running{a, b} {
		for deadline := time.Now().Add(10 * time.Second); !hit(n); time.Sleep(5 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("GET /x on %s: no hit after 10s", n.proxy)
			}
		}
	}
	req, _ := http.NewRequest(http.MethodPost, "http://"+a.admin+"/purge/url", strings.NewReader(`{"urls":["http://cellar.test/x"]}`))
	req.Header.Set("Authorization", "Bearer "+tokA)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	body := string(raw)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("purge on A = %d %s", resp.StatusCode, body)
	}
	if want := `{"purged":1,"peers":[{"peer":"http://` + b.admin + `","purged":1}]}`; strings.TrimSpace(body) != want {
		t.Errorf("purge on A answered %s, want %s", body, want)
	}
	if hit(b) {
		t.Errorf("GET /x on B after the purge on A: hit")
	}
	if log := a.log.String(); !strings.Contains(log, "peer_token="+purge.Fingerprint(tokB)) || !strings.Contains(log, "peer_timeout=2s") {
		t.Errorf("A's log does not show the peer token from %s and the configured timeout:\n%s", purge.EnvPeerToken, log)
	}
}

// TestClusterConfig: the cluster section gives the proxy its members.
func TestClusterConfig(t *testing.T) {
	fc, lines, err := loadConfigText(t, "cluster:\n  self: http://127.0.0.1:8080\n  peers: [http://127.0.0.1:8090, http://127.0.0.1:8100/]\n  down_for: 3s\n  local_hot: true\n")
	if err != nil {
		t.Fatal(err)
	}
	var s settings
	if err := fc.apply(&s, lines); err != nil {
		t.Fatal(err)
	}
	if !s.proxy.LocalHot {
		t.Error("cluster.local_hot: true did not reach the proxy")
	}
	cl := s.proxy.Cluster
	if cl == nil || cl.Self() != "http://127.0.0.1:8080" || len(cl.Members(time.Now())) != 3 {
		t.Fatalf("cluster section decoded to %+v", cl)
	}
	cl.MarkDown("http://127.0.0.1:8090", time.Now())
	if !cl.Down("http://127.0.0.1:8090", time.Now().Add(2*time.Second)) || cl.Down("http://127.0.0.1:8090", time.Now().Add(4*time.Second)) {
		t.Error("cluster.down_for 3s is not the time a member stays down")
	}
}

// loadConfigText decodes text as a config file.
func loadConfigText(t *testing.T, text string) (*fileConfig, map[string]int, error) {
	return loadConfig(writeConfig(t, text))
}

// TestLogLevel: log_level (and -log-level) set the least level of the
// process log: at error, the start-up info lines are not written; at
// debug, they are.
func TestLogLevel(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want bool // the "cellar started" info line
	}{
		{"default", nil, true},
		{"config error", []string{"-config", writeConfig(t, "log_level: error\n")}, false},
		{"flag over config", []string{"-config", writeConfig(t, "log_level: error\n"), "-log-level", "DEBUG"}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := startServe(t, append([]string{"-origin", "http://127.0.0.1:1", "-data-dir", t.TempDir()}, tc.args...)...)
			if err != nil {
				t.Fatal(err)
			}
			if got := strings.Contains(r.log.String(), "cellar started"); got != tc.want {
				t.Errorf("start-up line logged %v, want %v:\n%s", got, tc.want, r.log)
			}
		})
	}
}
