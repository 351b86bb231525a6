package main

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cellar-cache/cellar/cache"
	"github.com/cellar-cache/cellar/cluster"
	"github.com/cellar-cache/cellar/internal/accesslog"
	"github.com/cellar-cache/cellar/internal/dashboard"
	"github.com/cellar-cache/cellar/listen"
	"github.com/cellar-cache/cellar/proxy"
	"github.com/cellar-cache/cellar/purge"
	"github.com/cellar-cache/cellar/store"
)

// daemon is a running `cellar serve`: what lives as long as the process
// (the store and its contents, the metrics, the listeners that stay
// configured) and the current generation, which a config reload replaces
// as a whole.
//
// A reload re-reads the config file, applies the command-line flags again,
// builds a complete new generation (policy, purge API, proxy with its
// upstream pools, TLS certificate) and binds any new listen address; only
// when all of that succeeded does it swap the generation in with one
// atomic store. Requests that started on the old generation finish on it;
// it is closed once the last of them is done. Connections to a listener
// that stays configured are kept; a listener no longer configured is shut
// down gracefully.
type daemon struct {
	flags         *serveFlags
	log           *slog.Logger
	logLevel      *slog.LevelVar // the process log's level, which a reload sets
	store         *store.Store
	storeOpts     store.Options     // as opened: store settings change only at restart
	demoOrigin    string            // the bundled demo origin's URL, when serve started one
	access        *accesslog.Writer // the access log, shared by every generation; nil when off at start
	accessLogPath string            // as opened: a new path takes effect at restart
	proxyMetrics  *proxy.Metrics
	purgeMetrics  *purge.Metrics
	ops           *opsMetrics
	reg           *prometheus.Registry
	admin         http.Handler       // the admin mux (admin.go)
	cluster       *cluster.Cluster   // the gossip membership (cluster.go); nil without cluster.gossip
	tracker       *dashboard.Tracker // top URLs, recent errors and purges
	purges        *purgeStream       // cluster.nats; nil without

	cur     atomic.Pointer[generation]
	serving atomic.Bool
	failed  chan error // the first listener whose Serve failed; buffered

	mu        sync.Mutex     // serializes reloads; protects the fields below
	front     *front         // the proxy listeners
	adminLn   *listener      // the admin listener
	loadedAt  time.Time      // when the current generation was swapped in
	lastError string         // why the last reload was refused; empty after a success
	retiring  sync.WaitGroup // old generations draining, old listeners shutting down
}

// generation is one validated config snapshot and what was built from it.
type generation struct {
	n       int
	s       settings
	srv     *proxy.Server
	purger  *purge.API
	purgeH  http.Handler // purger.Handler()
	inspect http.Handler // the token-protected inspect handler
	trusted proxy.TrustedProxies

	// mu is held shared by every request that uses the generation, and
	// exclusively by retire once it has been replaced: retire closes it
	// when the last request is done.
	mu sync.RWMutex
}

// current returns the current generation, for reading its settings.
func (d *daemon) current() *generation { return d.cur.Load() }

// acquire returns the current generation, held until release: it is not
// closed while held. A generation that was replaced meanwhile is never
// returned.
func (d *daemon) acquire() *generation {
	for {
		g := d.cur.Load()
		if g.mu.TryRLock() {
			if d.cur.Load() == g {
				return g
			}
			g.mu.RUnlock()
		}
	}
}

func (g *generation) release() { g.mu.RUnlock() }

// origins lists the generation's default origins, for logs.
func (g *generation) origins() []string {
	origins := slices.Clone(g.s.proxy.Origins)
	for _, o := range g.s.proxy.Pool {
		origins = append(origins, o.URL)
	}
	return origins
}

// retire closes g in the background once no request holds it and the
// fills it started are stored (within the shutdown timeout).
func (d *daemon) retire(g *generation) {
	d.retiring.Add(1)
	go func() {
		defer d.retiring.Done()
		g.mu.Lock()
		ctx, cancel := context.WithTimeout(context.Background(), g.s.shutdownTimeout)
		g.srv.Drain(ctx)
		cancel()
		g.srv.Close()
		g.purger.Close()
	}()
}

// wait waits for retired generations and listeners.
func (d *daemon) wait() { d.retiring.Wait() }

// registerMetrics registers the collectors shared by all generations.
func (d *daemon) registerMetrics() error {
	d.failed = make(chan error, 1)
	d.tracker = dashboard.NewTracker(200, 20)
	if err := d.purgeMetrics.Register(d.reg); err != nil {
		return err
	}
	if d.purges != nil {
		for _, c := range d.purges.collectors() {
			if err := d.reg.Register(c); err != nil {
				return err
			}
		}
	}
	d.admin = d.adminMux()
	if err := d.reg.Register(clusterCollector{d}); err != nil {
		return err
	}
	if err := d.reg.Register(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "cellar_poller_connections",
		Help: "Client connections registered with the keep-alive poller (server.poller): the plain HTTP/1.x ones; 0 when it is off.",
	}, func() float64 { _, n := d.poller(); return float64(n) })); err != nil {
		return err
	}
	return d.ops.register(d.reg)
}

// build makes a generation from s, checking everything that can be
// checked before it serves: the policy, the purge tokens and peers, the
// proxy's options and origins, the TLS certificate.
func (d *daemon) build(s settings) (*generation, error) {
	if len(s.proxy.Origins)+len(s.proxy.Pool) == 0 {
		if d.demoOrigin == "" {
			return nil, errors.New("config: no origin (the demo origin is started only when cellar starts without one)")
		}
		s.proxy.Origins = []string{d.demoOrigin}
	}
	policy, err := cache.New(s.cache)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	tokens, err := purge.ResolveTokens(s.purgeTokens, os.Getenv(purge.EnvToken), d.storeOpts.Dir, d.log)
	if err != nil {
		return nil, fmt.Errorf("purge token: %w", err)
	}
	peerToken := s.purgePeerToken
	if peerToken == "" {
		peerToken = strings.TrimSpace(os.Getenv(purge.EnvPeerToken))
	}
	if d.cluster != nil {
		s.proxy.Cluster = d.cluster // cluster.go: a gossip lives as long as the process
	}
	g := &generation{s: s}
	if g.trusted, err = proxy.ParseTrustedProxies(s.proxy.TrustedProxies); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	g.purger, err = purge.New(d.store, purge.Options{
		Tokens: tokens, Networks: s.purgeNetworks, Logger: d.log,
		Peers: s.purgePeers, PeerToken: peerToken, PeerTimeout: s.purgePeerTimeout,
		Key: policy.KeyFromURL, Metrics: d.purgeMetrics, Stream: d.purges.publisher(),
	})
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	s.proxy.Purge = g.purger.MethodHandler()
	s.proxy.Logger = d.log
	s.proxy.Metrics = d.proxyMetrics
	if d.access != nil {
		s.proxy.AccessLogOutput = d.access
	}
	g.srv, err = proxy.New(s.proxy, policy, d.store)
	if err != nil {
		g.purger.Close()
		return nil, fmt.Errorf("config: %w", err)
	}
	g.purgeH = g.purger.Handler()
	g.inspect = g.purger.RequireToken(g.srv.InspectHandler())
	return g, nil
}

// reloadResult is the answer of a successful reload.
type reloadResult struct {
	Generation int `json:"generation"`
	// RestartNeeded names changed settings that take effect only when
	// cellar restarts (the store's directory and budgets); the running
	// values stay.
	RestartNeeded []string `json:"restart_needed,omitempty"`
	// Listeners are the addresses served after the reload.
	Listeners []listenerState `json:"listeners"`
}

// reload re-reads the config and swaps it in, or leaves the running one
// and says why. source names what asked (SIGHUP, POST /reload) in the log.
func (d *daemon) reload(ctx context.Context, source string) (reloadResult, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	res, err := d.reloadLocked()
	if err != nil {
		d.lastError = err.Error()
		d.ops.reloads.WithLabelValues("error").Inc()
		d.log.Error("reload refused; the running config stays", "source", source, "err", err)
		return res, err
	}
	d.lastError = ""
	d.ops.reloads.WithLabelValues("ok").Inc()
	d.log.Info("config reloaded", "source", source, "generation", res.Generation,
		"listen", strings.Join(d.front.group.Addrs(), ","), "admin", d.adminLn.ln.Addr().String(), "origins", strings.Join(d.current().origins(), ","),
		"restart_needed", strings.Join(res.RestartNeeded, ","))
	return res, nil
}

func (d *daemon) reloadLocked() (reloadResult, error) {
	s, err := d.flags.load()
	if err != nil {
		return reloadResult{}, err
	}
	var res reloadResult
	for _, c := range []struct {
		name     string
		now, was any
	}{
		{"data_dir", s.store.Dir, d.storeOpts.Dir},
		{"memory", s.store.MemoryBytes, d.storeOpts.MemoryBytes},
		{"disk", s.store.DiskBytes, d.storeOpts.DiskBytes},
		{"max_object", s.store.MaxObject, d.storeOpts.MaxObject},
		{"max_memory_object", s.store.MaxMemoryObject, d.storeOpts.MaxMemoryObject},
		{"access_log_path", s.accessLogPath, d.accessLogPath},
		{"cluster.nats", s.nats, d.purges.running()},
	} {
		if c.now != c.was {
			res.RestartNeeded = append(res.RestartNeeded, c.name)
		}
	}
	s.store = d.storeOpts
	if c := d.reloadCluster(&s); c != "" {
		res.RestartNeeded = append(res.RestartNeeded, c)
	}
	s.nats = d.purges.running()
	if on := s.proxy.AccessLog == nil || *s.proxy.AccessLog; on && d.access == nil {
		res.RestartNeeded = append(res.RestartNeeded, "access_log")
		off := false
		s.proxy.AccessLog = &off
	}
	g, err := d.build(s)
	if err != nil {
		return res, err
	}
	fr, adminLn, err := d.bindListeners(s, g)
	if err != nil {
		d.retire(g)
		return res, err
	}
	old := d.current()
	g.n = old.n + 1
	d.cur.Store(g)
	d.loadedAt = time.Now()
	d.ops.generation.Set(float64(g.n))
	oldFront, oldAdmin := d.front, d.adminLn
	d.front, d.adminLn = fr, adminLn
	if fr != oldFront {
		d.startFront(fr)
		d.retiring.Add(1)
		go func() {
			defer d.retiring.Done()
			oldFront.stop()
		}()
	}
	if adminLn != oldAdmin {
		d.start(adminLn)
		d.retiring.Add(1)
		go func() {
			defer d.retiring.Done()
			d.stop(oldAdmin, old.s.shutdownTimeout)
		}()
	}
	d.retire(old)
	d.logLevel.Set(s.logLevel)
	d.warnOpenAdmin(s)
	res.Generation = g.n
	res.Listeners = d.listenerStates()
	return res, nil
}

// listener is the admin listener's socket and server.
type listener struct {
	addr string // as configured
	ln   net.Listener
	srv  *http.Server
	done chan struct{} // closed when Serve has returned
}

// front is one open set of proxy listeners (package listen) serving the
// current generation.
type front struct {
	specs   []listen.Listener
	limits  edgeLimits // applied by its listeners: a change opens a new set
	group   *listen.Group
	sockets map[string]*net.TCPListener // by configured address, for the next set
	grace   time.Duration
	cancel  context.CancelFunc
	done    chan struct{} // closed when Serve has returned
}

// stop shuts the set down gracefully (requests in progress finish within
// its grace) and waits for it.
func (f *front) stop() {
	f.cancel()
	<-f.done
}

// openListeners binds the listeners of the first generation.
func (d *daemon) openListeners(s settings) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	fr, adminLn, err := d.bindListeners(s, d.current())
	if err != nil {
		return err
	}
	d.front, d.adminLn = fr, adminLn
	d.loadedAt = time.Now()
	return nil
}

// serveListeners starts serving the bound listeners.
func (d *daemon) serveListeners() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.startFront(d.front)
	d.start(d.adminLn)
}

// bindListeners returns the listeners s asks for: the running proxy set
// when its settings are unchanged (its connections are kept), else a new
// set bound with the sockets of the addresses it shares with the running
// one handed over, so that they never stop accepting; and the running
// admin listener when its address stays, else a new one. Nothing is
// served yet; on error nothing changes.
func (d *daemon) bindListeners(s settings, g *generation) (fr *front, adminLn *listener, err error) {
	specs := s.frontListeners()
	limits := edgeLimits{s.proxy.Limits.MaxConns, s.proxy.Limits.MaxHeaderBytes, s.proxy.WriteTimeout, s.proxy.IdleTimeout, certStamp(specs), s.engine, s.poller}
	if d.front != nil && d.front.limits == limits && slices.EqualFunc(specs, d.front.specs, sameListener) {
		fr = d.front
	} else if fr, err = d.openFront(specs, limits, g, s.shutdownTimeout); err != nil {
		return nil, nil, fmt.Errorf("listen: %w", err)
	}
	if d.adminLn != nil && d.adminLn.addr == s.admin {
		return fr, d.adminLn, nil
	}
	ln, err := net.Listen("tcp", s.admin)
	if err != nil {
		if fr != d.front {
			fr.group.Close()
		}
		return nil, nil, fmt.Errorf("admin listen: %w", err)
	}
	adminLn = &listener{addr: s.admin, ln: ln, srv: &http.Server{Handler: d.admin, ReadHeaderTimeout: 10 * time.Second}, done: make(chan struct{})}
	return fr, adminLn, nil
}

// openFront binds a new set of proxy listeners, with the connection and
// header limits of generation g.
func (d *daemon) openFront(specs []listen.Listener, limits edgeLimits, g *generation, grace time.Duration) (*front, error) {
	fr := &front{specs: specs, limits: limits, sockets: map[string]*net.TCPListener{}, grace: grace, done: make(chan struct{})}
	var old map[string]*net.TCPListener
	if d.front != nil {
		old = d.front.sockets
	}
	bind := func(network, addr string) (net.Listener, error) {
		var ln net.Listener
		var err error
		if sock, ok := old[addr]; ok {
			// The same socket, through a second descriptor: it keeps
			// accepting after the running set closes its own.
			var f *os.File
			if f, err = sock.File(); err == nil {
				ln, err = net.FileListener(f)
				f.Close()
			}
		} else {
			ln, err = net.Listen(network, addr)
		}
		if err != nil {
			return nil, err
		}
		if tcp, ok := ln.(*net.TCPListener); ok {
			fr.sockets[addr] = tcp
		}
		return ln, nil
	}
	group, err := listen.Open(listen.Options{
		Listeners: specs,
		Handler:   d.proxyHandler(),
		Trusted:   func(a netip.Addr) bool { return d.current().trusted.Trusted(a) },
		ErrorLog:  slog.NewLogLogger(d.log.Handler(), slog.LevelWarn),
		Wrap:      g.srv.Listener,            // connection limit, write timeout
		Configure: g.srv.ConfigureHTTPServer, // header size limit
		Engine:    limits.engine,
		Poller:    limits.poller,
		Listen:    bind,
		// timeouts.idle: how long a client's keep-alive connection may
		// wait for its next request (0: listen's default, the proxy's too).
		IdleTimeout: limits.idleTimeout,
	})
	if err != nil {
		return nil, err
	}
	fr.group = group
	return fr, nil
}

// edgeLimits are what a proxy listener set applies to connections beyond
// its listen.Listener settings: the limits (proxy.Server.Listener and
// ConfigureHTTPServer) and the certificates loaded.
type edgeLimits struct {
	maxConns, maxHeaderBytes int
	writeTimeout             time.Duration
	idleTimeout              time.Duration // timeouts.idle for client connections
	certs                    string        // certStamp: a replaced certificate file opens a new set
	engine                   string        // the HTTP/1.x engine: a change opens a new set
	poller                   bool          // server.poller: a change opens a new set
}

// certStamp identifies the contents of the listeners' certificate files
// (a SHA-256 of each; they are small).
func certStamp(specs []listen.Listener) string {
	h := sha256.New()
	for _, l := range specs {
		for _, c := range l.Certs {
			for _, f := range []string{c.Cert, c.Key} {
				b, err := os.ReadFile(f)
				if err != nil {
					b = []byte(err.Error())
				}
				fmt.Fprintf(h, "%s %d;", f, len(b))
				h.Write(b)
			}
		}
	}
	return string(h.Sum(nil))
}

// sameListener reports whether two listener settings are the same.
func sameListener(a, b listen.Listener) bool {
	return a.Address == b.Address && slices.Equal(a.Certs, b.Certs) && a.RedirectHTTPS == b.RedirectHTTPS &&
		a.H2C == b.H2C && a.HTTP3 == b.HTTP3 && a.ProxyProtocol == b.ProxyProtocol
}

// proxyHandler answers every proxy request with the generation current
// when it arrives, held until the request is done.
func (d *daemon) proxyHandler() http.Handler {
	return d.proxyMetrics.Instrument(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		g := d.acquire()
		defer g.release()
		g.srv.ServeHTTP(w, r)
	}), func(r *http.Request, status int, cacheStatus string) {
		_, detail, _ := strings.Cut(cacheStatus, "detail=")
		d.tracker.Request(r, status, detail)
	})
}

// startFront serves fr in the background; a failure other than a
// shutdown is reported on d.failed.
func (d *daemon) startFront(fr *front) {
	ctx, cancel := context.WithCancel(context.Background())
	fr.cancel = cancel
	go func() {
		defer close(fr.done)
		if err := fr.group.Serve(ctx, fr.grace); err != nil && ctx.Err() == nil {
			select {
			case d.failed <- err:
			default:
			}
		}
	}()
}

// start serves the admin listener l in the background.
func (d *daemon) start(l *listener) {
	go func() {
		defer close(l.done)
		if err := l.srv.Serve(l.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			select {
			case d.failed <- fmt.Errorf("admin %s: %w", l.addr, err):
			default:
			}
		}
	}()
}

// stop shuts the admin listener l down: it stops accepting, lets requests
// in progress finish within grace, then closes what is left.
func (d *daemon) stop(l *listener, grace time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	err := l.srv.Shutdown(ctx)
	if err != nil {
		l.srv.Close()
	}
	<-l.done
	return err
}

// shutdown stops every listener gracefully, at once.
func (d *daemon) shutdown() error {
	d.mu.Lock()
	fr, admin := d.front, d.adminLn
	grace := d.current().s.shutdownTimeout
	d.mu.Unlock()
	var err error
	var wg sync.WaitGroup
	wg.Go(fr.stop)
	wg.Go(func() { err = d.stop(admin, grace) })
	wg.Wait()
	return err
}

// frontAddrs are the proxy listeners' bound addresses, with their scheme.
func (d *daemon) frontAddrs() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.front.group.Addrs()
}

// poller reports whether the proxy listeners' keep-alive connections
// wait on cellar's poller (server.poller, where epoll exists) and how
// many are registered with it.
func (d *daemon) poller() (on bool, conns int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.front == nil {
		return false, 0
	}
	return d.front.group.Poller()
}

// pollerState is server.poller as it took effect, for the log.
func (d *daemon) pollerState() string {
	if on, _ := d.poller(); on {
		return "on"
	}
	if d.current().s.poller {
		return "off (no epoll here)"
	}
	return "off"
}

// adminAddr is the bound address of the admin listener.
func (d *daemon) adminAddr() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.adminLn.ln.Addr().String()
}
