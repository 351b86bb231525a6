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
	"net/http/pprof"
	"net/url"
	"os"
	"os/signal"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/cellar-cache/cellar/cache"
	"github.com/cellar-cache/cellar/internal/accesslog"
	"github.com/cellar-cache/cellar/internal/bytesize"
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

// serve runs the caching proxy until ctx ends. ready, when not nil, is
// called once both listeners accept connections.
func serve(ctx context.Context, args []string, stderr io.Writer, ready func(addrs)) error {
	s := settings{
		listen:          "127.0.0.1:8080",
		admin:           "127.0.0.1:8081",
		shutdownTimeout: 10 * time.Second,
		store: store.Options{
			Dir:         defaultDataDir(),
			MemoryBytes: 256 << 20,
			DiskBytes:   2 << 30,
		},
	}
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", "", "YAML config `file`; flags override it")
	origin := fs.String("origin", "", "origin `URL` (default: a bundled demo origin)")
	listenAddr := fs.String("listen", s.listen, "proxy listen `address`")
	admin := fs.String("admin", s.admin, "admin listen `address` (health, metrics, purge)")
	dataDir := fs.String("data-dir", s.store.Dir, "data `directory` of the disk tier")
	memory := fs.String("memory", bytesize.Format(s.store.MemoryBytes), "memory tier budget (KiB, MiB, GiB)")
	disk := fs.String("disk", bytesize.Format(s.store.DiskBytes), "disk tier budget (KiB, MiB, GiB)")
	accessLog := fs.Bool("access-log", true, "log one line per request")
	accessLogFormat := fs.String("access-log-format", "text", "access log `format`: text, json or combined")
	accessLogPath := fs.String("access-log-path", "", "access log `file`, reopened on SIGUSR1 (default standard error)")
	tlsCert := fs.String("tls-cert", "", "PEM certificate `file`: terminate TLS (and speak HTTP/2) on -listen")
	tlsKey := fs.String("tls-key", "", "PEM private key `file` for -tls-cert")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("serve: unexpected argument %q", fs.Arg(0))
	}
	if *configPath != "" {
		fc, lines, err := loadConfig(*configPath)
		if err != nil {
			return fmt.Errorf("config: %w", err)
		}
		if err := fc.apply(&s, lines); err != nil {
			return fmt.Errorf("config %s:\n%w", *configPath, err)
		}
	}
	// Flags given on the command line override the file.
	var flagErrs []error
	fs.Visit(func(f *flag.Flag) {
		var err error
		switch f.Name {
		case "origin":
			s.proxy.Origins, s.proxy.Pool = []string{*origin}, nil
		case "listen":
			s.listen, s.listeners = *listenAddr, nil
		case "admin":
			s.admin = *admin
		case "data-dir":
			s.store.Dir = *dataDir
		case "memory":
			s.store.MemoryBytes, err = bytesize.Parse(*memory)
		case "disk":
			s.store.DiskBytes, err = bytesize.Parse(*disk)
		case "access-log":
			s.proxy.AccessLog = accessLog
		case "access-log-format":
			s.proxy.AccessLogFormat, err = accesslog.ParseFormat(*accessLogFormat)
		case "access-log-path":
			s.accessLogPath = *accessLogPath
		case "tls-cert":
			s.tlsCert = *tlsCert
		case "tls-key":
			s.tlsKey = *tlsKey
		}
		if err != nil {
			flagErrs = append(flagErrs, fmt.Errorf("-%s: %w", f.Name, err))
		}
	})
	if (s.tlsCert == "") != (s.tlsKey == "") {
		flagErrs = append(flagErrs, errors.New("tls: give both a certificate and a key, or neither"))
	}
	if err := errors.Join(flagErrs...); err != nil {
		return err
	}

	log := slog.New(slog.NewTextHandler(stderr, nil))
	s.proxy.Logger = log
	s.store.Logger = log

	// Deferred calls run last first: cancel stops the demo origin before
	// bg.Wait waits for it, also when start-up fails below.
	var bg sync.WaitGroup
	defer bg.Wait()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	var originAddr string
	if len(s.proxy.Origins)+len(s.proxy.Pool) == 0 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return fmt.Errorf("demo origin: %w", err)
		}
		originAddr = ln.Addr().String()
		s.proxy.Origins = []string{"http://" + originAddr}
		bg.Add(1)
		go func() {
			defer bg.Done()
			serveUntil(ctx, &http.Server{Handler: demo.New(300 * time.Millisecond), ReadHeaderTimeout: 10 * time.Second}, ln, time.Second)
		}()
	}

	policy, err := cache.New(s.cache)
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	st, err := store.Open(s.store)
	if err != nil {
		return fmt.Errorf("data directory %s: %w", s.store.Dir, err)
	}
	defer st.Close()
	if os.Getenv("GOMEMLIMIT") == "" {
		bg.Add(1)
		go func() {
			defer bg.Done()
			followStore(ctx, st, s.store.MemoryBytes, time.Second)
		}()
	}
	tokens, err := purge.ResolveTokens(s.purgeTokens, os.Getenv(purge.EnvToken), s.store.Dir, log)
	if err != nil {
		return fmt.Errorf("purge token: %w", err)
	}
	peerToken := s.purgePeerToken
	if peerToken == "" {
		peerToken = strings.TrimSpace(os.Getenv(purge.EnvPeerToken))
	}
	purger, err := purge.New(st, purge.Options{
		Tokens: tokens, Networks: s.purgeNetworks, Logger: log,
		Peers: s.purgePeers, PeerToken: peerToken, PeerTimeout: s.purgePeerTimeout,
		Key: policy.KeyFromURL,
	})
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	defer purger.Close()
	s.proxy.Purge = purger.MethodHandler()
	if s.proxy.AccessLog == nil || *s.proxy.AccessLog {
		access, err := openAccessLog(ctx, &bg, s.accessLogPath, stderr, log)
		if err != nil {
			return fmt.Errorf("access log: %w", err)
		}
		// Deferred before srv.Close and the listeners' shutdown, so it
		// runs after them: every request's line is written.
		defer access.Close()
		s.proxy.AccessLogOutput = access
	}
	srv, err := proxy.New(s.proxy, policy, st)
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	defer srv.Close()

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	reg.MustRegister(st.Collector())
	if err := srv.Metrics().Register(reg); err != nil {
		return err
	}
	if err := purger.Metrics().Register(reg); err != nil {
		return err
	}
	if access := s.proxy.AccessLogOutput; access != nil {
		reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "cellar_access_log_dropped_total",
			Help: "Access lines dropped because the log's buffer was full (the output was slower than the traffic).",
		}, func() float64 { return float64(access.Dropped()) }))
	}

	trusted, _ := proxy.ParseTrustedProxies(s.proxy.TrustedProxies) // checked by proxy.New
	front, err := listen.Open(listen.Options{
		Listeners: s.frontListeners(),
		Handler:   srv,
		Trusted:   trusted.Trusted,
		ErrorLog:  slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		Wrap:      srv.Listener,            // connection limit, write timeout
		Configure: srv.ConfigureHTTPServer, // header size limit
	})
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	aln, err := net.Listen("tcp", s.admin)
	if err != nil {
		front.Close()
		return fmt.Errorf("admin listen: %w", err)
	}

	var serving atomic.Bool
	adminMux := http.NewServeMux()
	adminMux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		if !serving.Load() {
			http.Error(w, "shutting down", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
		// The disk tier's state: cellar serves whatever it is.
		ds := st.DiskState()
		fmt.Fprintf(w, "disk: %s", ds.Mode)
		if ds.Reason != "" {
			fmt.Fprintf(w, " (%s)", ds.Reason)
		}
		fmt.Fprintln(w)
	})
	var metrics http.Handler = promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
	if s.adminMetricsToken {
		metrics = purger.RequireToken(metrics)
	}
	adminMux.Handle("GET /metrics", metrics)
	if s.adminPprof {
		// Profiles (admin.pprof), behind the admin token.
		adminMux.Handle("/debug/pprof/", purger.RequireToken(http.HandlerFunc(pprof.Index)))
		adminMux.Handle("/debug/pprof/profile", purger.RequireToken(http.HandlerFunc(pprof.Profile)))
		adminMux.Handle("/debug/pprof/trace", purger.RequireToken(http.HandlerFunc(pprof.Trace)))
	}
	if !isLoopback(aln.Addr()) && !s.adminMetricsToken {
		log.Warn("THE ADMIN LISTENER IS REACHABLE FROM OTHER HOSTS: /metrics and /healthz answer anyone without a token; "+
			"bind admin to loopback, firewall it, or set admin.metrics_token: true (purge, inspect and pprof always need the token)",
			"admin", aln.Addr().String())
	}
	adminMux.Handle("/purge/", purger.Handler())
	adminMux.Handle("/inspect", purger.RequireToken(srv.InspectHandler()))

	origins := slices.Clone(s.proxy.Origins)
	for _, o := range s.proxy.Pool {
		origins = append(origins, o.URL)
	}
	warnUnreachable(ctx, log, origins)

	adminServer := &http.Server{Handler: adminMux, ReadHeaderTimeout: 10 * time.Second}

	log.Info("cellar started",
		"listen", strings.Join(front.Addrs(), ","), "admin", aln.Addr().String(),
		"origins", strings.Join(origins, ","), "data_dir", s.store.Dir,
		"memory", bytesize.Format(s.store.MemoryBytes), "disk", bytesize.Format(s.store.DiskBytes))
	if originAddr != "" {
		log.Info("no origin given: serving the bundled demo origin", "try", "curl -i "+front.Addrs()[0]+"/page/1")
	}

	errc := make(chan error, 2)
	go func() { errc <- front.Serve(ctx, s.shutdownTimeout) }()
	go func() { errc <- serveUntil(ctx, adminServer, aln, s.shutdownTimeout) }()
	serving.Store(true)
	if ready != nil {
		ready(addrs{proxy: hostPort(front.Addrs()[0]), admin: aln.Addr().String(), origin: originAddr, listeners: front.Addrs()})
	}

	var first error
	pending := 2 // results still to come on errc
	select {
	case first = <-errc: // a listener failed, or shut down at ctx's end: stop the other
		pending--
	case <-ctx.Done():
	}
	serving.Store(false)
	log.Info("shutting down", "grace", s.shutdownTimeout)
	cancel()
	for range pending {
		if err := <-errc; err != nil && first == nil {
			first = err
		}
	}
	if errors.Is(first, http.ErrServerClosed) {
		first = nil
	}
	return first
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
