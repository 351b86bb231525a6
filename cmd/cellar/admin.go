package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/pprof"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/cellar-cache/cellar/cluster"
	"github.com/cellar-cache/cellar/cluster/purgestream"
	"github.com/cellar-cache/cellar/internal/cli"
	"github.com/cellar-cache/cellar/internal/dashboard"
	"github.com/cellar-cache/cellar/proxy"
)

// adminMux is the admin listener's handler. Routes that depend on the
// config (purge, inspect, the token check) use the generation current
// when the request arrives.
func (d *daemon) adminMux() http.Handler {
	m := http.NewServeMux()
	dash := dashboard.Handler(dashboard.Options{Gatherer: d.reg, Tracker: d.tracker, Status: func() any { return d.readiness() }})
	m.Handle("GET /{$}", dash) // the page itself holds no figures
	m.Handle("GET /dashboard.json", d.withGeneration(func(g *generation) http.Handler { return g.metricsAuth(dash) }))
	m.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		if !d.serving.Load() {
			http.Error(w, "shutting down", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
		// The disk tier's state: cellar serves whatever it is.
		ds := d.store.DiskState()
		fmt.Fprintf(w, "disk: %s", ds.Mode)
		if ds.Reason != "" {
			fmt.Fprintf(w, " (%s)", ds.Reason)
		}
		fmt.Fprintln(w)
		d.clusterHealth(w) // cluster.go
		if d.purges != nil {
			fmt.Fprintln(w, d.purges.healthLine())
		}
	})
	m.HandleFunc("GET /readyz", d.serveReadyz)
	metrics := promhttp.HandlerFor(d.reg, promhttp.HandlerOpts{})
	m.Handle("GET /metrics", d.withGeneration(func(g *generation) http.Handler { return g.metricsAuth(metrics) }))
	// Profiles (admin.pprof), behind the admin token.
	for path, h := range map[string]http.HandlerFunc{"/debug/pprof/": pprof.Index, "/debug/pprof/profile": pprof.Profile, "/debug/pprof/trace": pprof.Trace} {
		m.Handle(path, d.withGeneration(func(g *generation) http.Handler {
			if !g.s.adminPprof {
				return http.NotFoundHandler()
			}
			return g.purger.RequireToken(h)
		}))
	}
	m.Handle("/purge/", d.trackPurges(d.withGeneration(func(g *generation) http.Handler { return g.purgeH })))
	m.Handle("/inspect", d.withGeneration(func(g *generation) http.Handler { return g.inspect }))
	m.Handle("POST /reload", d.withGeneration(func(g *generation) http.Handler {
		return g.purger.RequireToken(http.HandlerFunc(d.serveReload))
	}))
	return m
}

// metricsAuth puts h (the metrics, the dashboard's figures) behind the
// admin token when admin.metrics_token is set.
func (g *generation) metricsAuth(h http.Handler) http.Handler {
	if g.s.adminMetricsToken {
		return g.purger.RequireToken(h)
	}
	return h
}

// warnOpenAdmin warns, loudly, when the admin listener is reachable from
// other hosts with /metrics open.
func (d *daemon) warnOpenAdmin(s settings) {
	if a := d.adminLn.ln.Addr(); !isLoopback(a) && !s.adminMetricsToken {
		d.log.Warn("THE ADMIN LISTENER IS REACHABLE FROM OTHER HOSTS: /metrics, /healthz and the dashboard's figures answer anyone without a token; "+
			"bind admin to loopback, firewall it, or set admin.metrics_token: true (purge, inspect, reload and pprof always need the token)",
			"admin", a.String())
	}
}

// withGeneration serves each request with the handler h picks from the
// current generation, held for the request.
func (d *daemon) withGeneration(h func(*generation) http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		g := d.acquire()
		defer g.release()
		h(g).ServeHTTP(w, r)
	})
}

// trackPurges notes each purge request and its answer for the dashboard.
func (d *daemon) trackPurges(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := &purgeRecorder{ResponseWriter: w, code: http.StatusOK}
		h.ServeHTTP(rec, r)
		var ans struct {
			Purged int    `json:"purged"`
			Error  string `json:"error"`
		}
		json.Unmarshal(rec.body, &ans)
		detail := ans.Error
		if rec.code == http.StatusOK {
			detail = fmt.Sprintf("purged %d", ans.Purged)
		}
		d.tracker.Purge(strings.TrimPrefix(r.URL.Path, "/purge/"), rec.code, detail)
	})
}

// purgeRecorder keeps the status and the start of a purge answer.
type purgeRecorder struct {
	http.ResponseWriter
	code int
	body []byte
}

func (p *purgeRecorder) WriteHeader(code int) {
	p.code = code
	p.ResponseWriter.WriteHeader(code)
}

func (p *purgeRecorder) Write(b []byte) (int, error) {
	if room := 4096 - len(p.body); room > 0 {
		p.body = append(p.body, b[:min(len(b), room)]...)
	}
	return p.ResponseWriter.Write(b)
}

// serveReload answers POST /reload: 200 with the new generation, or 422
// with why the config was refused (the running one stays).
func (d *daemon) serveReload(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	res, err := d.reload(r.Context(), "POST /reload")
	if err != nil {
		w.WriteHeader(http.StatusUnprocessableEntity)
		json.NewEncoder(w).Encode(map[string]string{"error": err.Error()})
		return
	}
	json.NewEncoder(w).Encode(res)
}

// readiness is the JSON answer of GET /readyz.
type readiness struct {
	Ready bool `json:"ready"`
	// Reasons say why the answer is not ready.
	Reasons []string `json:"reasons,omitempty"`
	Config  struct {
		File       string    `json:"file,omitempty"`
		Generation int       `json:"generation"`
		LoadedAt   time.Time `json:"loaded_at"`
		LastError  string    `json:"last_reload_error,omitempty"`
	} `json:"config"`
	Listeners []listenerState     `json:"listeners"`
	Store     storeState          `json:"store"`
	Origins   []proxy.OriginState `json:"origins"`
	// PurgeStream is the purge stream's state (cluster.nats), lag included.
	PurgeStream *purgestream.Status `json:"purge_stream,omitempty"`
	// Cluster lists the cluster's members and their states (self, alive,
	// down), when this node is in one.
	Cluster []cluster.Member `json:"cluster,omitempty"`
}

type listenerState struct {
	Role    string `json:"role"`
	Address string `json:"address"`
	TLS     bool   `json:"tls,omitempty"`
}

type storeState struct {
	Dir           string `json:"dir"`
	MemoryBytes   int64  `json:"memory_bytes"`
	MemoryBudget  int64  `json:"memory_budget"`
	MemoryObjects int64  `json:"memory_objects"`
	DiskBytes     int64  `json:"disk_bytes"`
	DiskBudget    int64  `json:"disk_budget"`
	DiskObjects   int64  `json:"disk_objects"`
	// Disk is the disk tier's mode (online, paused, read-only, offline)
	// and DiskReason why it is not online, or its last fault.
	Disk       string `json:"disk"`
	DiskReason string `json:"disk_reason,omitempty"`
}

// listenerStates lists the listeners served. Call with d.mu held.
func (d *daemon) listenerStates() []listenerState {
	var ls []listenerState
	if d.front != nil {
		for _, a := range d.front.group.Addrs() {
			scheme, hp, _ := strings.Cut(a, "://")
			ls = append(ls, listenerState{Role: "proxy", Address: hp, TLS: scheme == "https"})
		}
	}
	if d.adminLn != nil {
		ls = append(ls, listenerState{Role: "admin", Address: d.adminLn.ln.Addr().String()})
	}
	return ls
}

// readiness reports what /readyz and the dashboard show.
func (d *daemon) readiness() readiness {
	var rd readiness
	g := d.current()
	d.mu.Lock()
	rd.Config.File = *d.flags.config
	rd.Config.Generation = g.n
	rd.Config.LoadedAt = d.loadedAt.UTC()
	rd.Config.LastError = d.lastError
	rd.Listeners = d.listenerStates()
	d.mu.Unlock()
	st, ds := d.store.Stats(), d.store.DiskState()
	rd.Store = storeState{
		Dir: d.storeOpts.Dir, Disk: ds.Mode, DiskReason: ds.Reason,
		MemoryBytes: st.MemoryBytes, MemoryBudget: d.storeOpts.MemoryBytes, MemoryObjects: st.MemoryObjects,
		DiskBytes: st.DiskBytes, DiskBudget: d.storeOpts.DiskBytes, DiskObjects: st.DiskObjects,
	}
	rd.Origins = g.srv.Origins()
	if d.purges != nil {
		ps := d.purges.stream.Status()
		rd.PurgeStream = &ps
	}
	if g != nil && g.s.proxy.Cluster != nil {
		rd.Cluster = g.s.proxy.Cluster.Members(time.Now())
	}
	rd.Ready = d.serving.Load()
	if !rd.Ready {
		rd.Reasons = append(rd.Reasons, "not serving (starting or shutting down)")
	}
	return rd
}

// serveReadyz answers GET /readyz: 200 when cellar serves with its
// listeners up, its config loaded and its store open, else 503; the JSON
// body gives the detail either way.
func (d *daemon) serveReadyz(w http.ResponseWriter, r *http.Request) {
	rd := d.readiness()
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	if !rd.Ready {
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(rd)
}

// opsMetrics are the daemon's own collectors: its reloads.
type opsMetrics struct {
	reloads    *prometheus.CounterVec
	generation prometheus.Gauge
}

func newOpsMetrics() *opsMetrics {
	return &opsMetrics{
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "cellar", Name: "config_reloads_total",
			Help: "Config reloads by result (ok, error: the running config stayed).",
		}, []string{"result"}),
		generation: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "cellar", Name: "config_generation",
			Help: "Number of the config in use: 0 at start, one more at each successful reload.",
		}),
	}
}

func (o *opsMetrics) register(reg prometheus.Registerer) error {
	for _, c := range []prometheus.Collector{o.reloads, o.generation} {
		if err := reg.Register(c); err != nil {
			return err
		}
	}
	return nil
}

const reloadUsage = `cellar reload: make a running cellar re-read its config file

Usage: cellar reload [flags]

Sends POST /reload to the admin listener with the purge token. cellar
re-reads the file it was started with (-config), applies its command-line
flags again, checks everything and swaps the new config in; requests in
progress finish on the old one. A config with errors is refused, the
running one stays, and the errors are printed. Sending SIGHUP to the
process does the same.

Flags:
`

// reload runs `cellar reload`.
func reload(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("reload", flag.ContinueOnError)
	af := addAdminFlags(fs)
	timeout := fs.Duration("timeout", time.Minute, "give up after this long")
	if err := cli.Parse(fs, args, stdout, reloadUsage); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("reload: unexpected argument %q", fs.Arg(0))
	}
	adminURL, tok, err := af.resolve()
	if err != nil {
		return fmt.Errorf("reload: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, adminURL+"/reload", nil)
	if err != nil {
		return fmt.Errorf("reload: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	client := &http.Client{Transport: &http.Transport{Proxy: nil}}
	defer client.CloseIdleConnections()
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("reload: %w", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("reload: reading the answer: %w", err)
	}
	var ans struct {
		reloadResult
		Error string `json:"error"`
	}
	if json.Unmarshal(b, &ans) != nil {
		ans.Error = strings.TrimSpace(string(b))
	}
	if resp.StatusCode != http.StatusOK {
		if ans.Error == "" {
			ans.Error = resp.Status
		}
		return errors.New("reload refused; the running config stays:\n" + ans.Error)
	}
	fmt.Fprintf(stdout, "reloaded: config generation %d\n", ans.Generation)
	for _, l := range ans.Listeners {
		fmt.Fprintf(stdout, "%s listener on %s\n", l.Role, l.Address)
	}
	if len(ans.RestartNeeded) > 0 {
		fmt.Fprintf(stdout, "changed, but applied only at restart: %s\n", strings.Join(ans.RestartNeeded, ", "))
	}
	return nil
}
