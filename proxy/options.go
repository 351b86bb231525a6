package proxy

import (
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/cellar-cache/cellar/cluster"
	"github.com/cellar-cache/cellar/compress"
	"github.com/cellar-cache/cellar/internal/accesslog"
	"github.com/cellar-cache/cellar/internal/httpheader"
)

// Options configure a Server. Every zero field means its documented default.
type Options struct {
	// Origins are the upstream servers (absolute http or https URLs with no
	// path beyond "/"), each with weight 1; Origins or Pool is required.
	Origins []string
	// Pool are more upstream servers, after Origins, with their weights,
	// backup flags and connection settings (upstream.go).
	Pool []Origin
	// Balance chooses among the healthy origins of Origins and Pool:
	// "round_robin" (the default), "least_conn", "random_two" or "hash"
	// (balance.go).
	Balance string
	// Retries says when a failed origin request is tried again on another
	// origin; zero fields mean its defaults.
	Retries Retries
	// MaxFails is how many failures in a row (connection errors, timeouts,
	// retried statuses) mark an origin down for FailCooldown (passive
	// health checking); default 2.
	MaxFails int
	// Headers rewrites the requests sent to Origins and Pool.
	Headers HeaderRewrite
	// Sites route requests by Host and path prefix to their own origins;
	// the first matching site wins, and a request that matches none goes to
	// Origins. None by default.
	Sites []Site
	// PreserveHost sends the client's Host to the origin (the default,
	// true, is set by EnsureDefaults only when HostOverride is empty).
	// When false the origin's own host is sent.
	PreserveHost *bool
	// ConnectTimeout bounds dialing the origin; default 5s.
	ConnectTimeout time.Duration
	// ResponseTimeout bounds the wait for the origin's response headers;
	// default 30s. A timeout answers 504.
	ResponseTimeout time.Duration
	// IdleTimeout closes idle upstream and client connections; default 90s.
	IdleTimeout time.Duration
	// BetweenBytes bounds the wait for each read of an origin response body
	// (fills and responses passed through from a fill): an origin that
	// sends nothing for this long fails the transfer, which ends each
	// client's response (a 504 when nothing was sent yet). It does not cap
	// the total transfer time. Default 60s.
	BetweenBytes time.Duration
	// FillTimeout, when set, caps a whole cache fill (headers and body),
	// which runs under a context owned by the server, not by the client.
	// Zero (the default): no cap, BetweenBytes and ResponseTimeout bound
	// the fill instead.
	FillTimeout time.Duration
	// TunnelIdleTimeout closes an upgraded connection (WebSocket and
	// others) when neither side has sent anything for this long; default 5m.
	TunnelIdleTimeout time.Duration
	// MaxIdleConnsPerHost is the upstream keep-alive pool per origin; default 64.
	MaxIdleConnsPerHost int
	// Keep is how long an expired object stays stored for stale serving and
	// revalidation past its freshness; default 1h.
	Keep time.Duration
	// HitForMiss is how long a key whose response was not shareable sends
	// requests straight to the origin, in parallel, instead of collapsing
	// them into one fill that cannot be shared; default 10s.
	HitForMiss time.Duration
	// MaxWaiters is the waiting list limit per key: how many requests may
	// wait on one fill in progress (coalescing). A request beyond it goes
	// to the origin itself, uncollapsed and without storing. Default 10000.
	MaxWaiters int
	// WaitTimeout is how long a request waits on another request's fill
	// for the response header before it goes to the origin itself,
	// uncollapsed and without storing (as nginx's proxy_cache_lock_timeout);
	// default 5s. Once the header has arrived the body streams to every
	// waiter; each body read is bounded by BetweenBytes.
	WaitTimeout time.Duration
	// FailCooldown is how long an origin that refused or dropped a
	// connection is skipped by the round robin (passive health checking);
	// default 10s.
	FailCooldown time.Duration
	// HealthCheckPath, when set, is probed on every origin each
	// HealthCheckInterval; an answer other than 2xx/3xx takes the origin out
	// of the round robin until a probe succeeds. Empty (the default): only
	// passive checking.
	HealthCheckPath string
	// HealthCheckInterval is the active probe interval; default 5s.
	HealthCheckInterval time.Duration
	// AccessLog writes one log line per request; nil means true.
	AccessLog *bool
	// AccessLogFormat is the layout of the access lines; default text.
	AccessLogFormat accesslog.Format
	// AccessLogOutput receives the access lines; the caller closes it
	// after Close. Nil: a buffered writer to standard error that Close
	// writes out and stops.
	AccessLogOutput *accesslog.Writer
	// Via is the pseudonym in the Via field; default "cellar".
	Via string
	// Debug adds the cache key to Cache-Status (RFC 9211 key parameter);
	// off by default since keys may reveal URLs of other users.
	Debug bool
	// MaxBackground bounds concurrent background revalidations
	// (stale-while-revalidate); default 64. When full, a stale hit does not
	// start another one.
	MaxBackground int
	// Logger receives errors and access lines; default slog.Default().
	Logger *slog.Logger
	// Cluster, when set, gives each cache key an owner among the cellar
	// nodes (package cluster): a miss for a key another member owns is
	// fetched from that member (peer.go), which coalesces it with the
	// other nodes' misses. Nil (the default): this node fetches every miss
	// from the origins itself.
	Cluster *cluster.Cluster
	// LocalHot (cluster.local_hot), with a Cluster: an owner's answer that
	// may be shared is also kept in this node's memory tier only (never
	// on disk), fresh for what remained of the owner's freshness, so that
	// the hottest keys are answered by every node (store.PutHot). Off by
	// default: a non-owner keeps nothing.
	LocalHot bool
	// Metrics are the collectors the Server counts into (NewMetrics).
	// Servers that replace one another on a config reload share one set,
	// registered once. Nil: a new set (Server.Metrics returns it).
	Metrics *Metrics
	// Purge answers requests with the PURGE method (purge.API.MethodHandler
	// purges the request's URL); nil forwards PURGE to the origin like any
	// unknown method.
	Purge http.Handler
	// Compress chooses which stored responses get gzip, br and zstd
	// variants and at which levels (see compress.Options); zero fields mean
	// that package's defaults.
	Compress compress.Options
	// CompressWorkers bounds the background jobs that encode variants
	// after a fill; default 2. When all are busy a fill gets no variants
	// until a later hit schedules them. Negative disables precompression
	// (stored variants and origin-encoded responses are still served).
	CompressWorkers int
	// SliceSize, when > 0, turns slicing on (slice.go): an object larger
	// than SliceMin that no complete stored response answers is fetched
	// and stored in aligned ranges of SliceSize bytes. Default 0: off.
	SliceSize int64
	// SliceMin is the size above which objects are sliced; default 8 MiB
	// when slicing is on.
	SliceMin int64
	// CompressBestMax is the largest body, in bytes, that a second
	// background pass re-encodes at compress.Options.BestLevels (brotli 11
	// runs at about 0.3 MB/s), one object at a time; default 1 MiB.
	// Negative disables the pass.
	CompressBestMax int64

	// TrustedProxies are the networks and addresses (CIDR or single
	// address) of proxies in front of cellar whose X-Forwarded-For hops
	// are believed when deciding a request's client address (see
	// TrustedProxies in clientaddr.go), and whose X-Request-ID is kept
	// (any other client's is replaced by one cellar makes). None by
	// default: the client is the connection's peer.
	TrustedProxies []string

	// Limits bound what one client may ask (limits.go); zero fields mean
	// their defaults.
	Limits Limits
	// WriteTimeout closes a client connection when a write to it makes no
	// progress for this long (a client that stops reading); an
	// idle-progress timeout, so large downloads are not capped. Applies
	// to listeners wrapped by Server.Listener. Default 60s; negative: none.
	WriteTimeout time.Duration
	// ClientBodyTimeout fails a forwarded request (408) when its body
	// makes no progress for this long; an idle-progress timeout, so large
	// uploads are not capped. Default 60s; negative: none.
	ClientBodyTimeout time.Duration
	// ResponseHeaders edit every response to clients, e.g. to add
	// Strict-Transport-Security; a site's own edits apply after these.
	ResponseHeaders HeaderOps
}

// Site is a routing rule: requests for one of Hosts (any host when empty;
// "*.example.com" matches its subdomains; the port is ignored) whose path
// starts with PathPrefix (any path when empty) go to Origins and Pool,
// chosen by Balance (default round_robin), with the site's Headers
// rewriting.
type Site struct {
	Hosts      []string
	PathPrefix string
	Origins    []string
	Pool       []Origin
	Balance    string
	Headers    HeaderRewrite
	// Rate, when set, replaces Limits.Rate for the site's requests, with
	// buckets of its own (a zero PerSecond: no limit).
	Rate *RateLimit
	// ResponseHeaders edit the site's responses after Options'.
	ResponseHeaders HeaderOps
}

// Origin is one upstream server with its settings.
type Origin struct {
	// URL is an absolute http or https URL with no path beyond "/".
	URL string
	// Weight is the origin's share of requests relative to the others of
	// its pool; default 1, at most 1000.
	Weight int
	// Backup origins get requests only while every other origin of the
	// pool is down.
	Backup bool
	// MaxIdleConns is the keep-alive pool to this origin; default
	// Options.MaxIdleConnsPerHost.
	MaxIdleConns int
	// ServerName is the TLS server name (SNI) and the name the
	// certificate must be valid for; default the URL's host.
	ServerName string
	// CAFile is a PEM file of the certificate authorities that an https
	// origin's certificate must chain to; default the system's.
	CAFile string
	// InsecureSkipVerify accepts any certificate from an https origin; for
	// tests only.
	InsecureSkipVerify bool
}

// Retries says when an origin request is tried again on another origin of
// its pool: after a connection error, a timeout, or one of Statuses, for an
// idempotent request whose body (if any) can be sent again, while fewer
// than Tries attempts were made and Budget has not passed since the first.
// A response is never retried once it is passed on: no byte of a body has
// reached the client when a retry starts.
type Retries struct {
	// Tries is the most attempts per request, the first included;
	// default 2. 1 disables retries.
	Tries int
	// Statuses are the origin answers retried; default 502, 503, 504.
	Statuses []int
	// Budget is how long after the first attempt another may start;
	// default 2s.
	Budget time.Duration
}

// HeaderRewrite changes the request header sent to the origins.
type HeaderRewrite struct {
	// Set replaces fields; Add appends to them; Remove deletes them
	// (applied first).
	Set, Add map[string]string
	Remove   []string
	// Host, when set, is the Host sent to the origins instead of the
	// client's (PreserveHost) or the origin's.
	Host string
}

// EnsureDefaults fills zero fields with their defaults.
func (o *Options) EnsureDefaults() {
	t := true
	if o.PreserveHost == nil {
		o.PreserveHost = &t
	}
	if o.AccessLog == nil {
		o.AccessLog = &t
	}
	if o.ConnectTimeout == 0 {
		o.ConnectTimeout = 5 * time.Second
	}
	if o.ResponseTimeout == 0 {
		o.ResponseTimeout = 30 * time.Second
	}
	if o.IdleTimeout == 0 {
		o.IdleTimeout = 90 * time.Second
	}
	if o.TunnelIdleTimeout == 0 {
		o.TunnelIdleTimeout = 5 * time.Minute
	}
	if o.BetweenBytes == 0 {
		o.BetweenBytes = 60 * time.Second
	}
	if o.MaxIdleConnsPerHost == 0 {
		o.MaxIdleConnsPerHost = 64
	}
	if o.HitForMiss == 0 {
		o.HitForMiss = 10 * time.Second
	}
	if o.MaxWaiters == 0 {
		o.MaxWaiters = 10000
	}
	if o.WaitTimeout == 0 {
		o.WaitTimeout = 5 * time.Second
	}
	if o.Retries.Tries == 0 {
		o.Retries.Tries = 2
	}
	if o.Retries.Statuses == nil {
		o.Retries.Statuses = []int{http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout}
	}
	if o.Retries.Budget == 0 {
		o.Retries.Budget = 2 * time.Second
	}
	if o.MaxFails == 0 {
		o.MaxFails = 2
	}
	if o.FailCooldown == 0 {
		o.FailCooldown = 10 * time.Second
	}
	if o.HealthCheckInterval == 0 {
		o.HealthCheckInterval = 5 * time.Second
	}
	if o.Keep == 0 {
		o.Keep = time.Hour
	}
	if o.MaxBackground == 0 {
		o.MaxBackground = 64
	}
	if o.Via == "" {
		o.Via = "cellar"
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	o.Compress.EnsureDefaults()
	if o.CompressWorkers == 0 {
		o.CompressWorkers = 2
	}
	if o.SliceSize > 0 && o.SliceMin == 0 {
		o.SliceMin = 8 << 20
	}
	if o.CompressBestMax == 0 {
		o.CompressBestMax = 1 << 20
	}
	o.Limits.EnsureDefaults()
	if o.WriteTimeout == 0 {
		o.WriteTimeout = 60 * time.Second
	}
	if o.ClientBodyTimeout == 0 {
		o.ClientBodyTimeout = 60 * time.Second
	}
}

// Validate reports every invalid field at once.
func (o *Options) Validate() error {
	var errs []error
	if len(o.Origins)+len(o.Pool) == 0 {
		errs = append(errs, errors.New("proxy: origins: at least one origin URL is required"))
	}
	errs = append(errs, validatePool("proxy: ", o.Origins, o.Pool, o.Balance, o.Headers)...)
	for i, st := range o.Sites {
		if len(st.Origins)+len(st.Pool) == 0 {
			errs = append(errs, fmt.Errorf("proxy: sites[%d]: at least one origin URL is required", i))
		}
		errs = append(errs, validatePool(fmt.Sprintf("proxy: sites[%d].", i), st.Origins, st.Pool, st.Balance, st.Headers)...)
		if st.PathPrefix != "" && !strings.HasPrefix(st.PathPrefix, "/") {
			errs = append(errs, fmt.Errorf("proxy: sites[%d].path_prefix %q: must start with /", i, st.PathPrefix))
		}
		if st.Rate != nil {
			if err := st.Rate.Validate(); err != nil {
				errs = append(errs, fmt.Errorf("proxy: sites[%d].rate: %w", i, err))
			}
		}
		if err := st.ResponseHeaders.Validate(); err != nil {
			errs = append(errs, fmt.Errorf("proxy: sites[%d].headers.response: %w", i, err))
		}
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"connect timeout", o.ConnectTimeout},
		{"response timeout", o.ResponseTimeout},
		{"idle timeout", o.IdleTimeout},
		{"fill timeout", o.FillTimeout},
		{"between-bytes timeout", o.BetweenBytes},
		{"tunnel idle timeout", o.TunnelIdleTimeout},
		{"keep", o.Keep},
		{"fail cooldown", o.FailCooldown},
		{"health check interval", o.HealthCheckInterval},
		{"hit-for-miss", o.HitForMiss},
		{"wait timeout", o.WaitTimeout},
	} {
		if d.v < 0 {
			errs = append(errs, fmt.Errorf("proxy: %s %s: must not be negative", d.name, d.v))
		}
	}
	if o.Retries.Tries < 0 {
		errs = append(errs, fmt.Errorf("proxy: retries.tries %d: must be at least 1", o.Retries.Tries))
	}
	if o.Retries.Budget < 0 {
		errs = append(errs, fmt.Errorf("proxy: retries.budget %s: must not be negative", o.Retries.Budget))
	}
	for _, code := range o.Retries.Statuses {
		if code < 100 || code > 599 {
			errs = append(errs, fmt.Errorf("proxy: retries.statuses %d: want an HTTP status from 100 to 599", code))
		}
	}
	if o.MaxFails < 0 {
		errs = append(errs, fmt.Errorf("proxy: max fails %d: must not be negative", o.MaxFails))
	}
	if o.SliceSize < 0 || o.SliceMin < 0 || (o.SliceSize > 0 && o.SliceSize < 4<<10) {
		errs = append(errs, fmt.Errorf("proxy: slice size %d, min %d: the size must be at least 4 KiB (0: slicing off), the minimum not negative", o.SliceSize, o.SliceMin))
	}
	if o.MaxWaiters < 0 {
		errs = append(errs, fmt.Errorf("proxy: max waiters %d: must not be negative", o.MaxWaiters))
	}
	if o.HealthCheckPath != "" && !strings.HasPrefix(o.HealthCheckPath, "/") {
		errs = append(errs, fmt.Errorf("proxy: health check path %q: must start with /", o.HealthCheckPath))
	}
	if strings.ContainsAny(o.Via, " \t,") {
		errs = append(errs, fmt.Errorf("proxy: via %q: must be one token", o.Via))
	}
	if err := o.Limits.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("proxy: %w", err))
	}
	if err := o.ResponseHeaders.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("proxy: headers.response: %w", err))
	}
	if _, err := ParseTrustedProxies(o.TrustedProxies); err != nil {
		errs = append(errs, fmt.Errorf("proxy: %w", err))
	}
	if err := o.Compress.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("proxy: compress: %w", err))
	}
	return errors.Join(errs...)
}

// validatePool checks one pool's origins, balance policy and header
// rewriting; prefix names the pool in errors.
func validatePool(prefix string, origins []string, pool []Origin, balance string, h HeaderRewrite) []error {
	var errs []error
	for i, raw := range origins {
		if _, err := parseOrigin(raw); err != nil {
			errs = append(errs, fmt.Errorf("%sorigins[%d] %q: %w", prefix, i, raw, err))
		}
	}
	for i, o := range pool {
		at := fmt.Sprintf("%spool[%d]", prefix, i)
		if _, err := parseOrigin(o.URL); err != nil {
			errs = append(errs, fmt.Errorf("%s.url %q: %w", at, o.URL, err))
		}
		if o.Weight < 0 || o.Weight > maxWeight {
			errs = append(errs, fmt.Errorf("%s.weight %d: want 1 to %d", at, o.Weight, maxWeight))
		}
		if o.MaxIdleConns < 0 {
			errs = append(errs, fmt.Errorf("%s.max_idle_conns %d: must not be negative", at, o.MaxIdleConns))
		}
	}
	if _, ok := selectors[balance]; !ok && balance != "" {
		errs = append(errs, fmt.Errorf("%sbalance %q: want one of %s", prefix, balance, strings.Join(balanceNames(), ", ")))
	}
	for _, name := range slices.Concat(h.Remove, slices.Collect(maps.Keys(h.Set)), slices.Collect(maps.Keys(h.Add))) {
		if !httpheader.IsToken(name) {
			errs = append(errs, fmt.Errorf("%sheaders.request: field name %q: not a token", prefix, name))
		}
	}
	return errs
}

// parseOrigin checks that raw is an absolute http(s) URL naming a host and
// no path, query or fragment.
func parseOrigin(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, err
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, errors.New("scheme must be http or https")
	}
	if u.Host == "" {
		return nil, errors.New("a host is required")
	}
	if (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		return nil, errors.New("must not have a path, query or fragment")
	}
	u.Path = ""
	return u, nil
}
