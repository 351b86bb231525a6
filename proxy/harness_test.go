package proxy

import (
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cellar-cache/cellar/cache"
	"github.com/cellar-cache/cellar/internal/h1/h1test"
	"github.com/cellar-cache/cellar/internal/proxytest"
	"github.com/cellar-cache/cellar/store"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// testHost is the Host of every request the rig sends.
const testHost = "cellar.test"

// isHit reports whether a Cache-Status value has the hit parameter.
func isHit(cs string) bool {
	for _, p := range strings.Split(cs, ";") {
		if strings.TrimSpace(p) == "hit" {
			return true
		}
	}
	return false
}

// origin is a counting test origin.
type origin struct {
	*httptest.Server
	hits    atomic.Int64
	mu      sync.Mutex // protects handler and last
	handler http.HandlerFunc
	last    *http.Request // the last request received, header cloned
}

func newOrigin(t testing.TB, h http.HandlerFunc) *origin {
	o := &origin{handler: h}
	o.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		o.hits.Add(1)
		o.mu.Lock()
		o.last = r.Clone(r.Context())
		h := o.handler
		o.mu.Unlock()
		h(w, r)
	}))
	t.Cleanup(o.Close)
	return o
}

func (o *origin) setHandler(h http.HandlerFunc) {
	o.mu.Lock()
	o.handler = h
	o.mu.Unlock()
}

func (o *origin) lastRequest() *http.Request {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.last
}

// rig is a proxy in front of an origin, on loopback, with a real store in
// a temporary directory.
type rig struct {
	t      testing.TB
	origin *origin
	dir    string
	store  *store.Store
	server *Server
	front  *httptest.Server
	clock  *clock
	popts  Options
	sopts  store.Options
	copts  cache.Options
	// extraOrigins follow the counting origin in the proxy's round robin.
	extraOrigins []string
	// front wraps the proxy's handler in the front server, when set.
	wrapFront func(http.Handler) http.Handler
	wrapLn    func(net.Listener) net.Listener // beneath Server.Listener, when set
}

// clock is an adjustable time source for the proxy.
type clock struct {
	mu sync.Mutex // protects t
	t  time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

type rigOption func(*rig)

func withProxyOptions(f func(*Options)) rigOption { return func(r *rig) { f(&r.popts) } }

// withFront wraps the proxy's handler in the front server (to observe
// requests as the proxy sees them).
func withFront(wrap func(http.Handler) http.Handler) rigOption {
	return func(r *rig) { r.wrapFront = wrap }
}

// withRawListener wraps the front's TCP listener beneath the proxy's
// Listener (to observe the connections as the proxy writes to them).
func withRawListener(wrap func(net.Listener) net.Listener) rigOption {
	return func(r *rig) { r.wrapLn = wrap }
}

func withStoreOptions(f func(*store.Options)) rigOption {
	return func(r *rig) { f(&r.sopts) }
}
func withCacheOptions(f func(*cache.Options)) rigOption { return func(r *rig) { f(&r.copts) } }

// newRig starts origin handler h and a proxy in front of it. Times come
// from the real clock unless the test advances r.clock (it starts at the
// real time).
func newRig(t testing.TB, h http.HandlerFunc, opts ...rigOption) *rig {
	r := &rig{t: t, origin: newOrigin(t, h), dir: t.TempDir(), clock: &clock{t: time.Now()}}
	f := false
	r.popts = Options{AccessLog: &f, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	r.sopts = store.Options{MemoryBytes: 8 << 20, DiskBytes: 64 << 20}
	// The rig checks RFC 9111, whose §5.2.1 has a request's no-cache and
	// max-age revalidate; cellar's default ignores them (tests of the
	// default set it back with withCacheOptions).
	r.copts.ClientNoCache = cache.NoCacheRevalidate
	for _, o := range opts {
		o(r)
	}
	r.start()
	return r
}

// start opens the store and the proxy on r.dir.
func (r *rig) start() {
	t := r.t
	sopts := r.sopts
	sopts.Dir = r.dir
	sopts.Logger = r.popts.Logger
	st, err := store.Open(sopts)
	if err != nil {
		t.Fatalf("store.Open: %v", err)
	}
	p, err := cache.New(r.copts)
	if err != nil {
		t.Fatalf("cache.New: %v", err)
	}
	popts := r.popts
	popts.Origins = append([]string{r.origin.URL}, r.extraOrigins...)
	srv, err := New(popts, p, st)
	if err != nil {
		t.Fatalf("proxy.New: %v", err)
	}
	srv.clock = r.clock.now
	r.store, r.server = st, srv
	// The front is configured as cellar serve configures it: the edge's
	// limits on the http.Server and the listener.
	var h http.Handler = srv
	if r.wrapFront != nil {
		h = r.wrapFront(h)
	}
	r.front = httptest.NewUnstartedServer(h)
	srv.ConfigureHTTPServer(r.front.Config)
	if r.wrapLn != nil {
		r.front.Listener = r.wrapLn(r.front.Listener)
	}
	r.front.Listener = srv.Listener(r.front.Listener)
	// Served by cellar's HTTP/1.x engine, the default of cellar serve.
	h1test.Start(r.front)
	t.Cleanup(r.stop)
}

// stop closes the front server, the proxy and the store (idempotent).
func (r *rig) stop() {
	if r.front == nil {
		return
	}
	r.front.Close()
	r.server.Close()
	if err := r.store.Close(); err != nil {
		r.t.Errorf("store.Close: %v", err)
	}
	r.front = nil
}

// restart stops the proxy and store and starts them again on the same
// data directory.
func (r *rig) restart() {
	r.stop()
	r.start()
}

// do sends a request through the proxy on testHost (fixed, so that cache
// keys survive restarts) and reads the whole body.
func (r *rig) do(method, path string, header http.Header) (*http.Response, string) {
	r.t.Helper()
	return proxytest.Do(r.t, r.front.Client(), r.front.URL, testHost, method, path, header)
}

func (r *rig) get(path string) (*http.Response, string) { return r.do(http.MethodGet, path, nil) }

// waitIdle waits until no fill is in progress, so that what a response
// streamed is committed before the test looks in the store.
func (r *rig) waitIdle() {
	r.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if testutil.ToFloat64(r.server.metrics.fillsInProgress) == 0 {
			return
		}
		time.Sleep(time.Millisecond)
	}
	r.t.Fatal("fills still in progress after 5s")
}
