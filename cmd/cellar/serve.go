package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/cellar-cache/cellar/cluster/purgestream"
	"github.com/cellar-cache/cellar/compress"
	"github.com/cellar-cache/cellar/internal/accesslog"
	"github.com/cellar-cache/cellar/internal/bytesize"
	"github.com/cellar-cache/cellar/internal/cli"
	"github.com/cellar-cache/cellar/internal/demo"
	"github.com/cellar-cache/cellar/listen"
	"github.com/cellar-cache/cellar/proxy"
	"github.com/cellar-cache/cellar/purge"
	"github.com/cellar-cache/cellar/store"
)

// addrs are the addresses serve listens on, reported to tests.
type addrs struct {
	proxy, admin, origin string
	listeners            []string // every proxy listener, with its scheme
}

const serveUsage = `cellar serve: run the caching reverse proxy

Usage: cellar serve [flags]

Serves the proxy on -listen and the admin API (health, readiness,
metrics, purge, inspect, reload, dashboard) on -admin. Without -origin or
an origin in the config file, a bundled demo origin is started. SIGHUP,
cellar reload and POST /reload re-read -config; SIGINT and SIGTERM shut
down gracefully. Addresses are host:port or URLs; sizes take K, M, G or T
(binary units: 2G is 2 GiB).

Flags:
`

// serveFlags are serve's command-line flags. Those given on the command
// line override the config file, at start-up and at every reload.
type serveFlags struct {
	fs                                     *flag.FlagSet
	config, origin, listen, admin, dataDir *string
	memory, disk, tlsCert, tlsKey          *string
	accessLog                              *bool
	accessLogFormat, accessLogPath         *string
	logLevel                               *string
}

func newServeFlags() *serveFlags {
	d := defaultSettings()
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	return &serveFlags{
		fs:              fs,
		config:          fs.String("config", "", "YAML config `file`; flags override it"),
		origin:          fs.String("origin", "", "origin `address` (host:port or URL; default: a bundled demo origin)"),
		listen:          fs.String("listen", d.listen, "proxy listen `address`"),
		admin:           fs.String("admin", d.admin, "admin listen `address` (health, metrics, purge, dashboard)"),
		dataDir:         fs.String("data-dir", d.store.Dir, "data `directory` of the disk tier"),
		memory:          fs.String("memory", bytesize.Format(d.store.MemoryBytes), "memory tier budget (e.g. 256M, 1G)"),
		disk:            fs.String("disk", bytesize.Format(d.store.DiskBytes), "disk tier budget (e.g. 2G, 500G)"),
		accessLog:       fs.Bool("access-log", true, "log one line per request"),
		accessLogFormat: fs.String("access-log-format", "text", "access log `format`: text, json or combined"),
		accessLogPath:   fs.String("access-log-path", "", "access log `file`, reopened on SIGUSR1 (default standard error)"),
		logLevel:        fs.String("log-level", "info", "least `level` of the process log: debug, info, warn or error"),
		tlsCert:         fs.String("tls-cert", "", "PEM certificate `file`: terminate TLS (and speak HTTP/2) on -listen"),
		tlsKey:          fs.String("tls-key", "", "PEM private key `file` for -tls-cert"),
	}
}

// defaultSettings are serve's settings before the config file and flags.
func defaultSettings() settings {
	return settings{
		listen:          "127.0.0.1:8080",
		admin:           "127.0.0.1:8081",
		shutdownTimeout: 10 * time.Second,
		poller:          true, // where epoll exists (server.poller)
		store: store.Options{
			Dir:         defaultDataDir(),
			MemoryBytes: 256 << 20,
			DiskBytes:   2 << 30,
		},
	}
}

// load builds the settings: defaults, then the config file, then the
// flags given on the command line. Every problem is reported at once.
func (f *serveFlags) load() (settings, error) {
	s := defaultSettings()
	if *f.config != "" {
		fc, lines, err := loadConfig(*f.config)
		if err != nil {
			return s, fmt.Errorf("config %w", err)
		}
		if err := fc.apply(&s, lines); err != nil {
			return s, fmt.Errorf("config %s:\n%w", *f.config, err)
		}
	}
	var errs []error
	f.fs.Visit(func(fl *flag.Flag) {
		var err error
		switch fl.Name {
		case "origin":
			var o string
			if o, err = cli.URL(*f.origin, false); err == nil {
				s.proxy.Origins, s.proxy.Pool = []string{o}, nil
			}
		case "listen":
			s.listen, err = cli.HostPort(*f.listen)
			s.listeners = nil
		case "admin":
			s.admin, err = cli.HostPort(*f.admin)
		case "data-dir":
			s.store.Dir = *f.dataDir
		case "memory":
			s.store.MemoryBytes, err = bytesize.Parse(*f.memory)
		case "disk":
			s.store.DiskBytes, err = bytesize.Parse(*f.disk)
		case "access-log":
			s.proxy.AccessLog = f.accessLog
		case "access-log-format":
			s.proxy.AccessLogFormat, err = accesslog.ParseFormat(*f.accessLogFormat)
		case "access-log-path":
			s.accessLogPath = *f.accessLogPath
		case "log-level":
			s.logLevel, err = parseLogLevel(*f.logLevel)
		case "tls-cert":
			s.tlsCert = *f.tlsCert
		case "tls-key":
			s.tlsKey = *f.tlsKey
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("-%s %w", fl.Name, err))
		}
	})
	if (s.tlsCert == "") != (s.tlsKey == "") {
		errs = append(errs, errors.New("tls: give both a certificate and a key, or neither"))
	}
	return s, errors.Join(errs...)
}

// serve runs the caching proxy until ctx ends. ready, when not nil, is
// called once the listeners accept connections.
func serve(ctx context.Context, args []string, stdout, stderr io.Writer, ready func(addrs)) error {
	f := newServeFlags()
	if err := cli.Parse(f.fs, args, stdout, serveUsage); err != nil {
		return err
	}
	if f.fs.NArg() > 0 {
		return fmt.Errorf("serve: unexpected argument %q", f.fs.Arg(0))
	}
	s, err := f.load()
	if err != nil {
		return err
	}
	// The level is a variable: a reload may change it.
	level := new(slog.LevelVar)
	level.Set(s.logLevel)
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))

	// Deferred calls run last first: cancel stops the demo origin before
	// bg.Wait waits for it, also when start-up fails below.
	var bg sync.WaitGroup
	defer bg.Wait()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	var demoOrigin string
	if len(s.proxy.Origins)+len(s.proxy.Pool) == 0 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return fmt.Errorf("demo origin: %w", err)
		}
		demoOrigin = "http://" + ln.Addr().String()
		bg.Add(1)
		go func() {
			defer bg.Done()
			serveUntil(ctx, &http.Server{Handler: demo.New(300 * time.Millisecond), ReadHeaderTimeout: 10 * time.Second}, ln, time.Second)
		}()
	}

	// A start that is bound to fail on a busy or bad address fails before
	// the store writes anything to the data directory.
	if err := probeAddrs(s); err != nil {
		return err
	}
	if err := probeGossip(s); err != nil {
		return err
	}
	s.store.Logger = log
	st, err := store.Open(s.store)
	if err != nil {
		return fmt.Errorf("data directory %s: %w", s.store.Dir, err)
	}
	defer st.Close()
	if os.Getenv("GOMEMLIMIT") == "" {
		limitToStore(st, s.store.MemoryBytes)
		compress.NotifyEncoderBytes(func() { limitToStore(st, s.store.MemoryBytes) })
		bg.Add(1)
		go func() {
			defer bg.Done()
			followStore(ctx, st, s.store.MemoryBytes, time.Second)
		}()
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	reg.MustRegister(st.Collector())
	d := &daemon{
		flags: f, log: log, logLevel: level, store: st, storeOpts: s.store, demoOrigin: demoOrigin,
		accessLogPath: s.accessLogPath,
		proxyMetrics:  proxy.NewMetrics(), purgeMetrics: purge.NewMetrics(),
		ops: newOpsMetrics(), reg: reg,
	}
	// The purge stream (cluster.nats) applies its events with the current
	// generation's purge API once there is one; what the store holds is a
	// miss until the node has caught up. Closed before the store.
	built := make(chan struct{})
	d.purges, err = startPurgeStream(s.nats, s.store.Dir, st, log, func(ctx context.Context, evs []purgestream.Event) (int, error) {
		select {
		case <-built:
		case <-ctx.Done():
			return 0, ctx.Err()
		}
		return d.current().purger.Apply(ctx, evs)
	})
	if err != nil {
		return err
	}
	if d.purges != nil {
		defer d.purges.close()
	}
	// The access log lives as long as the process; every generation writes
	// to it. Deferred after st.Close, so it runs before it, once the
	// listeners have shut down and the generations are closed: every
	// request's line is written.
	if s.proxy.AccessLog == nil || *s.proxy.AccessLog {
		access, err := openAccessLog(ctx, &bg, s.accessLogPath, stderr, log)
		if err != nil {
			return fmt.Errorf("access log: %w", err)
		}
		defer access.Close()
		d.access = access
		reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "cellar_access_log_dropped_total",
			Help: "Access lines dropped because the log's buffer was full (the output was slower than the traffic).",
		}, func() float64 { return float64(access.Dropped()) }))
	}
	if err := d.registerMetrics(); err != nil {
		return err
	}
	if d.cluster, err = newGossipCluster(s, log); err != nil {
		return err
	}
	g, err := d.build(s)
	if err != nil {
		return err
	}
	// After the first generation is built: its cluster's peer metrics are
	// registered with the rest.
	if err := d.proxyMetrics.Register(reg); err != nil {
		d.retire(g)
		d.wait()
		return err
	}
	d.cur.Store(g)
	close(built)
	if d.purges != nil {
		d.purges.waitCatchUp(ctx, log)
	}
	if err := d.openListeners(s); err != nil {
		d.retire(g)
		d.wait()
		return err
	}
	origins := g.origins()
	warnUnreachable(ctx, log, origins)
	d.warnOpenAdmin(s)

	// SIGHUP reloads from here on (before it, it would end the process,
	// or be lost where it is ignored, as under nohup): before the line that
	// says cellar started, so that a SIGHUP sent on seeing it is kept until
	// the loop below takes it.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	log.Info("cellar started",
		"listen", strings.Join(d.frontAddrs(), ","), "admin", d.adminAddr(),
		"origins", strings.Join(origins, ","), "data_dir", s.store.Dir,
		"memory", bytesize.Format(s.store.MemoryBytes), "disk", bytesize.Format(s.store.DiskBytes),
		"poller", d.pollerState())
	if demoOrigin != "" {
		log.Info("no origin given: serving the bundled demo origin", "try", "curl -i "+d.frontAddrs()[0]+"/page/1")
	}
	d.serveListeners()
	d.serving.Store(true)
	var first error
	if d.cluster != nil {
		// Joined once this node answers peer fetches; left first at the end.
		first = d.cluster.Start()
		defer d.cluster.Close()
	}
	if ready != nil && first == nil {
		fa := d.frontAddrs()
		ready(addrs{proxy: hostPort(fa[0]), admin: d.adminAddr(), origin: strings.TrimPrefix(demoOrigin, "http://"), listeners: fa})
	}
wait:
	for first == nil {
		select {
		case first = <-d.failed: // a listener failed: stop the rest
			break wait
		case <-ctx.Done():
			break wait
		case <-hup:
			d.reload(ctx, "SIGHUP") // logs its outcome
		}
	}
	d.serving.Store(false)
	log.Info("shutting down", "grace", d.current().s.shutdownTimeout)
	if d.cluster != nil {
		d.cluster.Close() // the others stop sending peer fetches here
	}
	err = d.shutdown()
	d.retire(d.current())
	d.wait()
	if first != nil && !errors.Is(first, http.ErrServerClosed) {
		return first
	}
	return err
}

// openAccessLog returns the buffered access log writer: to the file at
// path, reopened on SIGUSR1 (for rotation) until ctx ends, or to stderr.
func openAccessLog(ctx context.Context, bg *sync.WaitGroup, path string, stderr io.Writer, log *slog.Logger) (*accesslog.Writer, error) {
	if path == "" {
		return accesslog.New(stderr, accesslog.Options{}), nil
	}
	w, err := accesslog.Open(path, accesslog.Options{})
	if err != nil {
		return nil, err
	}
	usr1 := make(chan os.Signal, 1)
	signal.Notify(usr1, syscall.SIGUSR1)
	bg.Add(1)
	go func() {
		defer bg.Done()
		defer signal.Stop(usr1)
		for {
			select {
			case <-ctx.Done():
				return
			case <-usr1:
				if err := w.Reopen(); err != nil {
					log.Error("access log: reopen failed; still writing to the old file", "path", path, "err", err)
				} else {
					log.Info("access log reopened", "path", path)
				}
			}
		}
	}()
	return w, nil
}

// isLoopback reports whether a listener's address accepts loopback
// connections only.
func isLoopback(a net.Addr) bool {
	ta, ok := a.(*net.TCPAddr)
	return ok && ta.IP.IsLoopback()
}

// warnUnreachable logs each origin that does not accept a connection now;
// cellar keeps serving what it has stored.
func warnUnreachable(ctx context.Context, log *slog.Logger, origins []string) {
	for _, o := range origins {
		u, err := url.Parse(o)
		if err != nil {
			continue
		}
		host := u.Host
		if u.Port() == "" {
			host = net.JoinHostPort(u.Hostname(), map[string]string{"https": "443"}[u.Scheme]+map[string]string{"http": "80"}[u.Scheme])
		}
		d := net.Dialer{Timeout: 2 * time.Second}
		c, err := d.DialContext(ctx, "tcp", host)
		if err != nil {
			log.Warn("origin unreachable at start; serving what is cached", "origin", o, "err", err)
			continue
		}
		c.Close()
	}
}

// frontListeners are the proxy's listeners: the listeners list, or the
// single listen address (with tls when given).
func (s *settings) frontListeners() []listen.Listener {
	if len(s.listeners) > 0 {
		return s.listeners
	}
	l := listen.Listener{Address: s.listen}
	if s.tlsCert != "" {
		l.Certs = []listen.CertFiles{{Cert: s.tlsCert, Key: s.tlsKey}}
	}
	return []listen.Listener{l}
}

// hostPort strips the scheme of a listener's address.
func hostPort(addr string) string {
	_, hp, _ := strings.Cut(addr, "://")
	return hp
}

// probeAddrs binds and closes each fixed TCP address that serve will
// listen on (the proxy's and the admin's), so that an address in use or
// invalid stops the start before the data directory is touched. Port 0
// needs no probe. The real listeners are bound later; a port taken in
// between still fails the start, with the same error.
func probeAddrs(s settings) error {
	addrs := []string{s.admin}
	for _, l := range s.frontListeners() {
		addrs = append(addrs, l.Address)
	}
	if s.nats.embedded {
		addrs = append(addrs, s.nats.listen) // the embedded NATS server's
	}
	for _, a := range addrs {
		if _, port, err := net.SplitHostPort(a); err == nil && port == "0" {
			continue
		}
		ln, err := net.Listen("tcp", a)
		if err != nil {
			return fmt.Errorf("listen: %w", err)
		}
		ln.Close()
	}
	return nil
}
