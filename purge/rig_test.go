package purge_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cellar-cache/cellar/cache"
	"github.com/cellar-cache/cellar/internal/leaktest"
	"github.com/cellar-cache/cellar/internal/proxytest"
	"github.com/cellar-cache/cellar/proxy"
	"github.com/cellar-cache/cellar/purge"
	"github.com/cellar-cache/cellar/store"
)

// TestMain fails the run if goroutines outlive the tests.
func TestMain(m *testing.M) { os.Exit(leaktest.Main(m)) }

const (
	testHost  = "cellar.test"
	testToken = "test-token-0123456789abcdef"
)

// origin is a counting test origin; counts are per request path and query.
type origin struct {
	*httptest.Server
	mu      sync.Mutex // protects handler and hits
	handler http.HandlerFunc
	hits    map[string]int
}

func (o *origin) count(pathQuery string) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.hits[pathQuery]
}

// rig is the whole purge path: a counting origin, a real store in a
// temporary directory, the proxy on loopback with the PURGE method routed
// to the API, and the admin handler on its own loopback server.
type rig struct {
	t      testing.TB
	origin *origin
	dir    string
	popts  proxy.Options
	aopts  purge.Options
	copts  cache.Options
	sopts  store.Options // Dir is set by start
	// noPurgeMethod leaves proxy.Options.Purge nil.
	noPurgeMethod bool
	// adminListener, when set, is where the next start serves the admin
	// API, so that nodes can list each other's admin URLs as peers before
	// they start (withAdminListener). start uses it once; a restart
	// listens on a new port.
	adminListener net.Listener
	audit         *proxytest.SyncBuffer
	store         *store.Store
	api           *purge.API
	proxy         *proxy.Server
	front         *httptest.Server
	admin         *httptest.Server
	reg           *prometheus.Registry // the proxy's and the API's metrics
}

func newRig(t testing.TB, h http.HandlerFunc, opts ...func(*rig)) *rig {
	o := &origin{handler: h, hits: map[string]int{}}
	o.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		o.mu.Lock()
		o.hits[r.URL.RequestURI()]++
		h := o.handler
		o.mu.Unlock()
		h(w, r)
	}))
	t.Cleanup(o.Close)
	f := false
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	r := &rig{t: t, origin: o, dir: t.TempDir(), audit: &proxytest.SyncBuffer{}}
	r.popts = proxy.Options{AccessLog: &f, Logger: quiet}
	r.sopts = store.Options{MemoryBytes: 8 << 20, DiskBytes: 64 << 20, Logger: quiet}
	r.aopts = purge.Options{Tokens: []string{testToken}, Logger: slog.New(slog.NewTextHandler(r.audit, nil))}
	for _, opt := range opts {
		opt(r)
	}
	r.start()
	return r
}

func (r *rig) start() {
	t := r.t
	sopts := r.sopts
	sopts.Dir = r.dir
	st, err := store.Open(sopts)
	if err != nil {
		t.Fatalf("store.Open: %v", err)
	}
	p, err := cache.New(r.copts)
	if err != nil {
		t.Fatalf("cache.New: %v", err)
	}
	aopts := r.aopts
	aopts.Key = p.KeyFromURL // as cellar serve wires it
	api, err := purge.New(st, aopts)
	if err != nil {
		t.Fatalf("purge.New: %v", err)
	}
	popts := r.popts
	popts.Origins = []string{r.origin.URL}
	if !r.noPurgeMethod {
		popts.Purge = api.MethodHandler()
	}
	srv, err := proxy.New(popts, p, st)
	if err != nil {
		t.Fatalf("proxy.New: %v", err)
	}
	r.store, r.api, r.proxy = st, api, srv
	r.reg = prometheus.NewRegistry()
	if err := srv.Metrics().Register(r.reg); err != nil {
		t.Fatal(err)
	}
	if err := api.Metrics().Register(r.reg); err != nil {
		t.Fatal(err)
	}
	r.front = httptest.NewServer(srv)
	if ln := r.adminListener; ln != nil {
		r.adminListener = nil
		r.admin = &httptest.Server{Listener: ln, Config: &http.Server{Handler: api.Handler()}}
		r.admin.Start()
	} else {
		r.admin = httptest.NewServer(api.Handler())
	}
	t.Cleanup(r.stop)
}

// stop closes everything (idempotent).
func (r *rig) stop() {
	if r.front == nil {
		return
	}
	r.front.Close()
	r.admin.Close()
	r.proxy.Close()
	if err := r.store.Close(); err != nil {
		r.t.Errorf("store.Close: %v", err)
	}
	r.front = nil
}

func (r *rig) restart() {
	r.stop()
	r.start()
}

// do sends a request through the proxy on testHost and reads the whole body.
func (r *rig) do(method, path string, h http.Header) (*http.Response, string) {
	r.t.Helper()
	return proxytest.Do(r.t, r.front.Client(), r.front.URL, testHost, method, path, h)
}

func (r *rig) get(path string) (*http.Response, string) { return r.do(http.MethodGet, path, nil) }

// purgeReq posts body to the admin endpoint /purge/kind with token ("" for
// none) and returns the status and decoded answer.
func (r *rig) purgeReq(kind, body, token string) (int, answer) {
	r.t.Helper()
	return r.purgeReqCtx(r.t.Context(), kind, body, token)
}

// purgeReqCtx is purgeReq under ctx.
func (r *rig) purgeReqCtx(ctx context.Context, kind, body, token string) (int, answer) {
	r.t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.admin.URL+"/purge/"+kind, strings.NewReader(body))
	if err != nil {
		r.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := r.admin.Client().Do(req)
	if err != nil {
		r.t.Fatalf("purge %s: %v", kind, err)
	}
	defer resp.Body.Close()
	var a answer
	if err := json.NewDecoder(resp.Body).Decode(&a); err != nil {
		r.t.Fatalf("purge %s: decoding the answer: %v", kind, err)
	}
	return resp.StatusCode, a
}

type answer struct {
	Purged int          `json:"purged"`
	Error  string       `json:"error"`
	Peers  []peerAnswer `json:"peers"`
}

// peerAnswer is one peer's result in an answer: Purged (nil when absent)
// or Error.
type peerAnswer struct {
	Peer   string `json:"peer"`
	Purged *int   `json:"purged"`
	Error  string `json:"error"`
}

// withPurge is a rig option that edits the purge.Options of the API.
func withPurge(edit func(*purge.Options)) func(*rig) {
	return func(r *rig) { edit(&r.aopts) }
}

// withAdminListener is a rig option that serves the admin API on ln (see
// listenAdmin).
func withAdminListener(ln net.Listener) func(*rig) {
	return func(r *rig) { r.adminListener = ln }
}

// listenAdmin reserves a loopback listener for a rig's admin API and
// returns it with its base URL, so that rigs can name each other as peers
// before any of them starts.
func listenAdmin(t testing.TB) (net.Listener, string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() }) // in case no rig takes it
	return ln, "http://" + ln.Addr().String()
}

// waitStored polls the store until key holds a committed object for which
// ok is true; fills commit in the background after the response is sent.
func (r *rig) waitStored(key string, ok func(*store.Object) bool) *store.Object {
	r.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if o, err := r.store.Get(r.t.Context(), key); err == nil && ok(o) {
			return o
		}
		time.Sleep(time.Millisecond)
	}
	r.t.Fatalf("%s: not stored as expected after 5s", key)
	return nil
}

func isHit(resp *http.Response) bool {
	for _, p := range strings.Split(resp.Header.Get("Cache-Status"), ";") {
		if strings.TrimSpace(p) == "hit" {
			return true
		}
	}
	return false
}

// metric returns the sum of the values of the named metric's series.
func (r *rig) metric(name string) float64 {
	r.t.Helper()
	mfs, err := r.reg.Gather()
	if err != nil {
		r.t.Fatal(err)
	}
	sum := 0.0
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			sum += m.GetGauge().GetValue() + m.GetCounter().GetValue()
		}
	}
	return sum
}

// waitIdle waits until no fill or revalidation is in progress, so that the
// store holds what every fill committed.
func (r *rig) waitIdle() {
	r.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for r.metric("cellar_fills_in_progress") != 0 {
		if time.Now().After(deadline) {
			r.t.Fatal("fills still in progress after 5s")
		}
		time.Sleep(time.Millisecond)
	}
}
