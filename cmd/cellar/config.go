package main

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/cellar-cache/cellar/cache"
	"github.com/cellar-cache/cellar/cluster"
	"github.com/cellar-cache/cellar/internal/accesslog"
	"github.com/cellar-cache/cellar/internal/bytesize"
	"github.com/cellar-cache/cellar/internal/cli"
	"github.com/cellar-cache/cellar/listen"
	"github.com/cellar-cache/cellar/proxy"
	"github.com/cellar-cache/cellar/purge"
	"github.com/cellar-cache/cellar/store"
)

// fileConfig is the YAML config file, decoded strictly: an unknown key is an
// error naming its line. Sizes and durations are kept as written and
// checked in settings(), which names the key and line of a bad value.
type fileConfig struct {
	Listen          string           `yaml:"listen"`
	Listeners       []listenerConfig `yaml:"listeners"`
	Admin           adminConfig      `yaml:"admin"`
	Origin          string           `yaml:"origin"`
	Origins         []originConfig   `yaml:"origins"`
	Balance         string           `yaml:"balance"`
	Retries         retriesConfig    `yaml:"retries"`
	Headers         headersConfig    `yaml:"headers"`
	DataDir         string           `yaml:"data_dir"`
	Memory          string           `yaml:"memory"`
	Disk            string           `yaml:"disk"`
	MaxObject       string           `yaml:"max_object"`
	MaxMemoryObject string           `yaml:"max_memory_object"`
	PreserveHost    *bool            `yaml:"preserve_host"`
	AccessLog       *bool            `yaml:"access_log"`
	AccessLogFormat string           `yaml:"access_log_format"`
	AccessLogPath   string           `yaml:"access_log_path"`
	LogLevel        string           `yaml:"log_level"`
	Debug           bool             `yaml:"debug"`
	Keep            string           `yaml:"keep"`
	HitForMiss      string           `yaml:"hit_for_miss"`
	Coalescing      coalesceConfig   `yaml:"coalescing"`
	Compression     compressConfig   `yaml:"compression"`
	Sites           []siteConfig     `yaml:"sites"`
	Health          healthConfig     `yaml:"health_check"`
	TLS             tlsConfig        `yaml:"tls"`
	Timeouts        timeoutConfig    `yaml:"timeouts"`
	Cache           cacheConfig      `yaml:"cache"`
	Purge           purgeConfig      `yaml:"purge"`
	TrustedProxies  []string         `yaml:"trusted_proxies"`
	// The edge (issue 15): request limits and rate limits.
	Limits limitsConfig `yaml:"limits"`
	// Cluster (issue 19): static members and key ownership.
	Cluster clusterConfig `yaml:"cluster"`
	// Server (issue 14): the HTTP/1.x server engine.
	Server serverConfig `yaml:"server"`
}

// serverConfig chooses the HTTP/1.x engine (plain listeners, and TLS ones
// for the clients that choose http/1.1): "cellar" (the default) or
// "net/http".
type serverConfig struct {
	Engine string `yaml:"engine"`
	// Poller: cellar's engine's plain keep-alive connections wait for
	// their next request on cellar's own epoll poller
	// (listen.Options.Poller); on unless set to false. Without epoll (not
	// Linux) they wait in their reads whatever it says.
	Poller *bool `yaml:"poller"`
}

// clusterConfig is the cluster section: cluster.Config, local_hot
// (proxy.Options.LocalHot) and nats, the purge stream.
type clusterConfig struct {
	Self     string               `yaml:"self"`
	Peers    []string             `yaml:"peers"`
	DownFor  string               `yaml:"down_for"`
	Gossip   *clusterGossipConfig `yaml:"gossip"`
	LocalHot bool                 `yaml:"local_hot"`
	// NATS is the purge stream (purgestream.go).
	NATS natsConfig `yaml:"nats"`
}

// clusterGossipConfig is cluster.gossip: cluster.GossipConfig.
type clusterGossipConfig struct {
	Bind string   `yaml:"bind"`
	Join []string `yaml:"join"`
}

type limitsConfig struct {
	MaxHeaderBytes  string     `yaml:"max_header_bytes"`
	MaxTarget       string     `yaml:"max_target"`
	MaxHeaderFields int        `yaml:"max_header_fields"`
	MaxBody         string     `yaml:"max_body"`
	MaxConns        int        `yaml:"max_conns"`
	MaxRanges       int        `yaml:"max_ranges"`
	Rate            rateConfig `yaml:"rate"`
}

type rateConfig struct {
	PerSecond float64 `yaml:"per_second"`
	Burst     int     `yaml:"burst"`
}

type headerOpsConfig struct {
	Set    map[string]string `yaml:"set"`
	Add    map[string]string `yaml:"add"`
	Remove []string          `yaml:"remove"`
}

func (h headerOpsConfig) ops() proxy.HeaderOps {
	return proxy.HeaderOps{Set: h.Set, Add: h.Add, Remove: h.Remove}
}

// apply folds the limits into o, reporting bad values to p.
func (l limitsConfig) apply(o *proxy.Limits, p *problems) {
	sizeInt := func(key, v string, dst *int) {
		var n int64
		p.size(key, v, &n)
		if n > 1<<30 {
			p.add(key, v, "want at most 1GiB")
		} else if n > 0 {
			*dst = int(n)
		}
	}
	sizeInt("limits.max_header_bytes", l.MaxHeaderBytes, &o.MaxHeaderBytes)
	sizeInt("limits.max_target", l.MaxTarget, &o.MaxTarget)
	p.size("limits.max_body", l.MaxBody, &o.MaxBody)
	for _, c := range []struct {
		key string
		v   int
		dst *int
	}{
		{"limits.max_header_fields", l.MaxHeaderFields, &o.MaxHeaderFields},
		{"limits.max_conns", l.MaxConns, &o.MaxConns},
		{"limits.max_ranges", l.MaxRanges, &o.MaxRanges},
	} {
		if c.v < 0 {
			p.add(c.key, strconv.Itoa(c.v), "want a positive number")
		}
		*c.dst = c.v
	}
	o.Rate = l.Rate.limit()
	if err := o.Rate.Validate(); err != nil {
		p.add("limits.rate", fmt.Sprint(l.Rate.PerSecond), err.Error())
	}
}

func (r rateConfig) limit() proxy.RateLimit {
	return proxy.RateLimit{PerSecond: r.PerSecond, Burst: r.Burst}
}

// limitPtr is a site's own limit, or nil when the site sets none.
func (r *rateConfig) limitPtr() *proxy.RateLimit {
	if r == nil {
		return nil
	}
	rl := r.limit()
	return &rl
}

// adminConfig is the admin listener: its address alone ("admin:
// 127.0.0.1:8081"), or a section with listen, pprof and metrics_token.
type adminConfig struct {
	Listen string `yaml:"listen"`
	// Pprof serves /debug/pprof/ behind the admin (purge) bearer token;
	// off by default.
	Pprof bool `yaml:"pprof"`
	// MetricsToken puts /metrics behind the admin bearer token too.
	MetricsToken bool `yaml:"metrics_token"`
}

// UnmarshalYAML reads the address form or the section form, strictly.
func (a *adminConfig) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		return n.Decode(&a.Listen)
	}
	if n.Kind != yaml.MappingNode {
		return fmt.Errorf("line %d: admin: want an address or a section with listen, pprof and metrics_token", n.Line)
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		var err error
		switch k.Value {
		case "listen":
			err = v.Decode(&a.Listen)
		case "pprof":
			err = v.Decode(&a.Pprof)
		case "metrics_token":
			err = v.Decode(&a.MetricsToken)
		default:
			return fmt.Errorf("line %d: field %s not found in admin (want listen, pprof or metrics_token)", k.Line, k.Value)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

type coalesceConfig struct {
	MaxWaiters    int    `yaml:"max_waiters"`
	WaitTimeout   string `yaml:"wait_timeout"`
	MaxBackground int    `yaml:"max_background"`
}

type compressConfig struct {
	Enabled    *bool          `yaml:"enabled"`
	Order      []string       `yaml:"order"`
	Types      []string       `yaml:"types"`
	MinSize    string         `yaml:"min_size"`
	Levels     map[string]int `yaml:"levels"`
	BestLevels map[string]int `yaml:"best_levels"`
	Workers    int            `yaml:"workers"`
	BestMax    string         `yaml:"best_max"`
}

type siteConfig struct {
	Hosts      []string       `yaml:"hosts"`
	PathPrefix string         `yaml:"path_prefix"`
	Origins    []originConfig `yaml:"origins"`
	Balance    string         `yaml:"balance"`
	Headers    headersConfig  `yaml:"headers"`
	// The site's own rate limit (issue 15).
	Rate *rateConfig `yaml:"rate"`
}

type healthConfig struct {
	Path         string `yaml:"path"`
	Interval     string `yaml:"interval"`
	FailCooldown string `yaml:"fail_cooldown"`
	MaxFails     int    `yaml:"max_fails"`
}

type tlsConfig struct {
	Cert string `yaml:"cert"`
	Key  string `yaml:"key"`
}

type timeoutConfig struct {
	Connect  string `yaml:"connect"`
	Response string `yaml:"response"`
	Idle     string `yaml:"idle"`
	Fill     string `yaml:"fill"`
	// BetweenBytes bounds each wait for origin body bytes (default 60s).
	BetweenBytes string `yaml:"between_bytes"`
	Shutdown     string `yaml:"shutdown"`
	// TunnelIdle closes an upgraded connection (WebSocket) idle this long.
	TunnelIdle string `yaml:"tunnel_idle"`
	// Idle-progress timeouts on the client side (issue 15).
	Write      string `yaml:"write"`
	ClientBody string `yaml:"client_body"`
}

type cacheConfig struct {
	HeuristicFraction    *float64     `yaml:"heuristic_fraction"`
	HeuristicMax         string       `yaml:"heuristic_max"`
	DefaultTTL           string       `yaml:"default_ttl"`
	Targets              []string     `yaml:"targets"`
	ShareCookies         string       `yaml:"share_cookies"`
	Cookies              string       `yaml:"cookies"` // safe | rfc (issue 15)
	StripCDNCacheControl bool         `yaml:"strip_cdn_cache_control"`
	StaleWhileRevalidate string       `yaml:"stale_while_revalidate"`
	StaleIfError         string       `yaml:"stale_if_error"`
	Rules                []ruleConfig `yaml:"rules"`
	// What operators tune (issue 17): key shaping, client directives,
	// negative caching.
	Key           keyConfig         `yaml:"key"`
	ClientNoCache string            `yaml:"client_no_cache"`
	StatusTTL     map[string]string `yaml:"status_ttl"`
	Slice         sliceConfig       `yaml:"slice"`
	Vary          varyConfig        `yaml:"vary"`
}

// varyConfig is cache.vary: cache.VaryNormalize.
type varyConfig struct {
	AcceptLanguage []string `yaml:"accept_language"`
	Accept         []string `yaml:"accept"`
}

// sliceConfig is cache.slice: large objects in aligned ranges.
type sliceConfig struct {
	Min  string `yaml:"min"`
	Size string `yaml:"size"`
}

type ruleConfig struct {
	Prefix        string `yaml:"prefix"`
	TTL           string `yaml:"ttl"`
	Bypass        bool   `yaml:"bypass"`
	IgnoreNoCache bool   `yaml:"ignore_no_cache"`
	// Issue 17: per-rule key, client directives, negative caching and
	// overrides; a rule with hosts is a rule per site.
	Hosts               []string          `yaml:"hosts"`
	Key                 *keyConfig        `yaml:"key"`
	ClientNoCache       string            `yaml:"client_no_cache"`
	StatusTTL           map[string]string `yaml:"status_ttl"`
	Grace               string            `yaml:"grace"`
	Keep                string            `yaml:"keep"`
	IgnoreOriginNoCache bool              `yaml:"ignore_origin_no_cache"`
	IgnorePrivate       bool              `yaml:"ignore_private"`
	StripSetCookie      bool              `yaml:"strip_set_cookie"`
}

// keyConfig is cache.key (and a rule's key): cache.KeyOptions.
type keyConfig struct {
	Query        string   `yaml:"query"`
	IgnoreParams []string `yaml:"ignore_params"`
	OnlyParams   []string `yaml:"only_params"`
	Headers      []string `yaml:"headers"`
	Cookies      []string `yaml:"cookies"`
	FoldCase     bool     `yaml:"fold_case"`
}

type purgeConfig struct {
	Tokens      []string `yaml:"tokens"`
	Networks    []string `yaml:"networks"`
	ExposeTags  bool     `yaml:"expose_tags"`
	TagFields   []string `yaml:"tag_fields"`
	Peers       []string `yaml:"peers"`
	PeerToken   string   `yaml:"peer_token"`
	PeerTimeout string   `yaml:"peer_timeout"`
}

// originConfig is one entry of origins: a URL, or a mapping with the URL
// and its settings.
type originConfig struct {
	URL                string `yaml:"url"`
	Weight             *int   `yaml:"weight"`
	Backup             bool   `yaml:"backup"`
	MaxIdleConns       int    `yaml:"max_idle_conns"`
	ServerName         string `yaml:"server_name"`
	CAFile             string `yaml:"ca_file"`
	InsecureSkipVerify bool   `yaml:"insecure_skip_verify"`
}

// UnmarshalYAML accepts a plain URL or a mapping, decoded as strictly as the
// rest of the file.
func (o *originConfig) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		return n.Decode(&o.URL)
	}
	if n.Kind == yaml.MappingNode {
		for i := 0; i < len(n.Content); i += 2 {
			switch k := n.Content[i]; k.Value {
			case "url", "weight", "backup", "max_idle_conns", "server_name", "ca_file", "insecure_skip_verify":
			default:
				return fmt.Errorf("line %d: field %s not found in an origin (want url, weight, backup, max_idle_conns, server_name, ca_file or insecure_skip_verify)", k.Line, k.Value)
			}
		}
	}
	type plain originConfig // without this method
	return n.Decode((*plain)(o))
}

type retriesConfig struct {
	Tries    *int   `yaml:"tries"`
	Statuses []int  `yaml:"statuses"`
	Budget   string `yaml:"budget"`
}

type headersConfig struct {
	Request struct {
		Set    map[string]string `yaml:"set"`
		Add    map[string]string `yaml:"add"`
		Remove []string          `yaml:"remove"`
		Host   string            `yaml:"host"`
	} `yaml:"request"`
	// Response edits every response to clients (issue 15).
	Response headerOpsConfig `yaml:"response"`
}

func (h headersConfig) rewrite() proxy.HeaderRewrite {
	r := h.Request
	return proxy.HeaderRewrite{Set: r.Set, Add: r.Add, Remove: r.Remove, Host: r.Host}
}

// pool checks the origins at key and returns them with their settings.
func (p *problems) pool(key string, origins []originConfig) []proxy.Origin {
	var out []proxy.Origin
	for i, o := range origins {
		at := fmt.Sprintf("%s[%d]", key, i)
		url := o.URL
		if url == "" {
			p.add(at+".url", "", "want the origin's URL")
		} else {
			url = p.url(at, url)
		}
		po := proxy.Origin{URL: url, Backup: o.Backup, MaxIdleConns: o.MaxIdleConns,
			ServerName: o.ServerName, CAFile: o.CAFile, InsecureSkipVerify: o.InsecureSkipVerify}
		if o.Weight != nil {
			if *o.Weight < 1 || *o.Weight > 1000 {
				p.add(at+".weight", strconv.Itoa(*o.Weight), "want a whole number from 1 to 1000")
			}
			po.Weight = *o.Weight
		}
		if o.MaxIdleConns < 0 {
			p.add(at+".max_idle_conns", strconv.Itoa(o.MaxIdleConns), "want a positive number of connections")
		}
		if o.CAFile != "" {
			if pem, err := os.ReadFile(o.CAFile); err != nil {
				p.add(at+".ca_file", o.CAFile, err.Error())
			} else if !x509.NewCertPool().AppendCertsFromPEM(pem) {
				p.add(at+".ca_file", o.CAFile, "no PEM certificate in it")
			}
		}
		out = append(out, po)
	}
	return out
}

// balance checks a balance policy name.
func (p *problems) balance(key, v string) {
	switch v {
	case "", "round_robin", "least_conn", "random_two", "hash":
		return
	}
	p.add(key, v, "want round_robin, least_conn, random_two or hash")
}

// listenerConfig is one entry of listeners.
type listenerConfig struct {
	Address string `yaml:"address"`
	TLS     *struct {
		Cert  string      `yaml:"cert"`
		Key   string      `yaml:"key"`
		Certs []certFiles `yaml:"certs"` // more certificates, chosen by SNI
	} `yaml:"tls"`
	RedirectHTTPS bool `yaml:"redirect_https"`
	H2C           bool `yaml:"h2c"`
	HTTP3         bool `yaml:"http3"`
	ProxyProtocol bool `yaml:"proxy_protocol"`
}

type certFiles struct {
	Cert string `yaml:"cert"`
	Key  string `yaml:"key"`
}

// listeners checks the listeners list, loading every certificate, and
// returns it for listen.Open.
func (p *problems) listeners(ls []listenerConfig, trusted []string) []listen.Listener {
	var out []listen.Listener
	anyTLS := false
	for _, l := range ls {
		anyTLS = anyTLS || l.TLS != nil
	}
	for i, l := range ls {
		at := fmt.Sprintf("listeners[%d]", i)
		addr := l.Address
		if a, err := cli.HostPort(addr); err != nil {
			p.add(at+".address", l.Address, "want host:port, e.g. 127.0.0.1:8080 or :443")
		} else {
			addr = a
		}
		ln := listen.Listener{Address: addr, RedirectHTTPS: l.RedirectHTTPS, H2C: l.H2C, HTTP3: l.HTTP3, ProxyProtocol: l.ProxyProtocol}
		if l.TLS != nil {
			pairs := append([]certFiles{{Cert: l.TLS.Cert, Key: l.TLS.Key}}, l.TLS.Certs...)
			for j, c := range pairs {
				key := at + ".tls.cert"
				if j > 0 {
					key = fmt.Sprintf("%s.tls.certs[%d]", at, j-1)
				}
				if _, err := tls.LoadX509KeyPair(c.Cert, c.Key); err != nil {
					p.add(key, c.Cert, "the certificate and key do not load: "+err.Error())
				}
				ln.Certs = append(ln.Certs, listen.CertFiles{Cert: c.Cert, Key: c.Key})
			}
		}
		switch {
		case l.HTTP3 && l.TLS == nil:
			p.add(at+".http3", "true", "HTTP/3 needs tls on the listener")
		case l.H2C && l.TLS != nil:
			p.add(at+".h2c", "true", "h2c is HTTP/2 without TLS; a tls listener speaks HTTP/2 already")
		case l.RedirectHTTPS && (l.TLS != nil || !anyTLS):
			p.add(at+".redirect_https", "true", "want a plain listener, and another listener with tls to redirect to")
		case l.ProxyProtocol && len(trusted) == 0:
			p.add(at+".proxy_protocol", "true", "the PROXY protocol is read only from trusted_proxies; list the load balancers there")
		}
		out = append(out, ln)
	}
	return out
}

// settings is everything serve needs, after defaults, file and flags.
type settings struct {
	listen, admin     string
	adminPprof        bool // serve /debug/pprof/ (behind the admin token)
	adminMetricsToken bool // /metrics needs the admin token
	tlsCert, tlsKey   string
	listeners         []listen.Listener // from listeners:; empty: listen and tls
	shutdownTimeout   time.Duration
	proxy             proxy.Options
	store             store.Options
	cache             cache.Options
	purgeTokens       []string
	purgeNetworks     []netip.Prefix
	purgePeers        []string
	purgePeerToken    string // empty: CELLAR_PURGE_PEER_TOKEN, else the first purge token
	purgePeerTimeout  time.Duration
	accessLogPath     string     // "" for standard error
	logLevel          slog.Level // the least level of the process log; info by default
	// cluster is the cluster section as read (nil without one): a gossip
	// membership lives as long as the process (daemon.cluster).
	cluster *cluster.Config

	// nats is cluster.nats, the purge stream; zero: none.
	nats natsSettings
	// engine is the HTTP/1.x engine (listen.Options.Engine); "": cellar's.
	engine string
	// poller is server.poller (listen.Options.Poller); on by default.
	poller bool
}

// loadConfig reads and strictly decodes a config file. The returned lines
// map each key path ("cache.rules[0].ttl") to its line, for error messages.
func loadConfig(path string) (*fileConfig, map[string]int, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, err
	}
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, nil, fmt.Errorf("%s:\n%w", path, explainDecodeError(err, nil))
	}
	lines := map[string]int{}
	walkLines(&root, "", lines)
	if errs := checkKeys(&root); len(errs) > 0 {
		return nil, nil, fmt.Errorf("%s:\n%w", path, errors.Join(errs...))
	}
	var fc fileConfig
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&fc); err != nil && !errors.Is(err, io.EOF) { // io.EOF: an empty file
		return nil, nil, fmt.Errorf("%s:\n%w", path, explainDecodeError(err, lines))
	}
	return &fc, lines, nil
}

// walkLines records the line of every mapping key below n.
func walkLines(n *yaml.Node, path string, lines map[string]int) {
	switch n.Kind {
	case yaml.DocumentNode:
		for _, c := range n.Content {
			walkLines(c, path, lines)
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i]
			p := k.Value
			if path != "" {
				p = path + "." + k.Value
			}
			lines[p] = k.Line
			walkLines(n.Content[i+1], p, lines)
		}
	case yaml.SequenceNode:
		for i, c := range n.Content {
			p := fmt.Sprintf("%s[%d]", path, i)
			lines[p] = c.Line
			walkLines(c, p, lines)
		}
	}
}

// problems collects every bad value of a config at once.
type problems struct {
	lines map[string]int
	errs  []error
}

func (p *problems) add(key, value, rule string) {
	where := ""
	if l, ok := p.lines[key]; ok {
		where = fmt.Sprintf("line %d: ", l)
	}
	p.errs = append(p.errs, fmt.Errorf("%s%s: %q: %s", where, key, value, rule))
}

func (p *problems) size(key, v string, dst *int64) {
	if v == "" {
		return
	}
	n, err := bytesize.Parse(v)
	if err != nil {
		p.add(key, v, "want a whole number of bytes with an optional unit K, M, G or T (binary), e.g. 256M or 2G")
		return
	}
	*dst = n
}

func (p *problems) duration(key, v string, dst *time.Duration) {
	if v == "" {
		return
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 {
		p.add(key, v, "want a non-negative duration such as 30s, 5m or 1h")
		return
	}
	*dst = d
}

// apply folds the file's values into s, reporting every bad value with its
// key and line.
func (fc *fileConfig) apply(s *settings, lines map[string]int) error {
	p := &problems{lines: lines}
	set := func(dst *string, v string) {
		if v != "" {
			*dst = v
		}
	}
	set(&s.listen, p.hostPort("listen", fc.Listen))
	set(&s.admin, p.hostPort("admin", fc.Admin.Listen))
	s.adminPprof, s.adminMetricsToken = fc.Admin.Pprof, fc.Admin.MetricsToken
	set(&s.store.Dir, fc.DataDir)
	set(&s.tlsCert, fc.TLS.Cert)
	set(&s.tlsKey, fc.TLS.Key)
	if len(fc.Listeners) > 0 && (fc.Listen != "" || fc.TLS.Cert != "") {
		p.add("listeners", "", "give either listen (and tls) or listeners, not both")
	}
	s.listeners = p.listeners(fc.Listeners, fc.TrustedProxies)
	if fc.Origin != "" && len(fc.Origins) > 0 {
		p.add("origin", fc.Origin, "give either origin or origins, not both")
	}
	if fc.Origin != "" {
		s.proxy.Origins = []string{p.url("origin", fc.Origin)}
	}
	if len(fc.Origins) > 0 {
		s.proxy.Origins, s.proxy.Pool = nil, p.pool("origins", fc.Origins)
	}
	p.balance("balance", fc.Balance)
	s.proxy.Balance = fc.Balance
	s.proxy.Headers = fc.Headers.rewrite()
	if t := fc.Retries.Tries; t != nil {
		if *t < 1 {
			p.add("retries.tries", strconv.Itoa(*t), "want at least 1 attempt (1: no retries)")
		}
		s.proxy.Retries.Tries = *t
	}
	for i, code := range fc.Retries.Statuses {
		if code < 100 || code > 599 {
			p.add(fmt.Sprintf("retries.statuses[%d]", i), strconv.Itoa(code), "want an HTTP status from 100 to 599")
		}
	}
	if fc.Retries.Statuses != nil {
		s.proxy.Retries.Statuses = fc.Retries.Statuses
	}
	p.duration("retries.budget", fc.Retries.Budget, &s.proxy.Retries.Budget)
	if fc.Health.MaxFails < 0 {
		p.add("health_check.max_fails", strconv.Itoa(fc.Health.MaxFails), "want a positive number of failures")
	}
	s.proxy.MaxFails = fc.Health.MaxFails
	p.size("memory", fc.Memory, &s.store.MemoryBytes)
	p.size("disk", fc.Disk, &s.store.DiskBytes)
	p.size("max_object", fc.MaxObject, &s.store.MaxObject)
	p.size("max_memory_object", fc.MaxMemoryObject, &s.store.MaxMemoryObject)
	if fc.PreserveHost != nil {
		s.proxy.PreserveHost = fc.PreserveHost
	}
	if fc.AccessLog != nil {
		s.proxy.AccessLog = fc.AccessLog
	}
	if f, err := accesslog.ParseFormat(fc.AccessLogFormat); err != nil {
		p.add("access_log_format", fc.AccessLogFormat, "want text, json or combined")
	} else {
		s.proxy.AccessLogFormat = f
	}
	set(&s.accessLogPath, fc.AccessLogPath)
	if fc.LogLevel != "" {
		if l, err := parseLogLevel(fc.LogLevel); err != nil {
			p.add("log_level", fc.LogLevel, "want debug, info, warn or error")
		} else {
			s.logLevel = l
		}
	}
	s.proxy.Debug = fc.Debug
	s.cache.Debug = fc.Debug
	for i, st := range fc.Sites {
		key := fmt.Sprintf("sites[%d]", i)
		p.balance(key+".balance", st.Balance)
		s.proxy.Sites = append(s.proxy.Sites, proxy.Site{Hosts: st.Hosts, PathPrefix: st.PathPrefix,
			Pool: p.pool(key+".origins", st.Origins), Balance: st.Balance, Headers: st.Headers.rewrite(),
			ResponseHeaders: st.Headers.Response.ops(), Rate: st.Rate.limitPtr()})
	}
	fc.Limits.apply(&s.proxy.Limits, p)
	s.proxy.ResponseHeaders = fc.Headers.Response.ops()
	p.duration("timeouts.write", fc.Timeouts.Write, &s.proxy.WriteTimeout)
	p.duration("timeouts.client_body", fc.Timeouts.ClientBody, &s.proxy.ClientBodyTimeout)
	co := fc.Coalescing
	if co.MaxWaiters < 0 {
		p.add("coalescing.max_waiters", strconv.Itoa(co.MaxWaiters), "want a positive number of requests")
	}
	if co.MaxBackground < 0 {
		p.add("coalescing.max_background", strconv.Itoa(co.MaxBackground), "want a positive number of revalidations")
	}
	s.proxy.MaxWaiters, s.proxy.MaxBackground = co.MaxWaiters, co.MaxBackground
	p.duration("coalescing.wait_timeout", co.WaitTimeout, &s.proxy.WaitTimeout)
	cz := fc.Compression
	p.codings("compression.order", cz.Order)
	s.proxy.Compress.Order, s.proxy.Compress.Types = cz.Order, cz.Types
	s.proxy.Compress.Levels, s.proxy.Compress.BestLevels = cz.Levels, cz.BestLevels
	p.size("compression.min_size", cz.MinSize, &s.proxy.Compress.MinSize)
	p.size("compression.best_max", cz.BestMax, &s.proxy.CompressBestMax)
	if cz.Workers < 0 {
		p.add("compression.workers", strconv.Itoa(cz.Workers), "want a positive number; use enabled: false to turn precompression off")
	}
	s.proxy.CompressWorkers = cz.Workers
	if cz.Enabled != nil && !*cz.Enabled {
		s.proxy.CompressWorkers = -1
	}
	s.proxy.HealthCheckPath = fc.Health.Path
	p.duration("health_check.interval", fc.Health.Interval, &s.proxy.HealthCheckInterval)
	p.duration("health_check.fail_cooldown", fc.Health.FailCooldown, &s.proxy.FailCooldown)
	p.duration("keep", fc.Keep, &s.proxy.Keep)
	p.duration("hit_for_miss", fc.HitForMiss, &s.proxy.HitForMiss)
	p.duration("timeouts.connect", fc.Timeouts.Connect, &s.proxy.ConnectTimeout)
	p.duration("timeouts.response", fc.Timeouts.Response, &s.proxy.ResponseTimeout)
	p.duration("timeouts.idle", fc.Timeouts.Idle, &s.proxy.IdleTimeout)
	p.duration("timeouts.fill", fc.Timeouts.Fill, &s.proxy.FillTimeout)
	p.duration("timeouts.between_bytes", fc.Timeouts.BetweenBytes, &s.proxy.BetweenBytes)
	p.duration("timeouts.shutdown", fc.Timeouts.Shutdown, &s.shutdownTimeout)
	if !listen.ValidEngine(fc.Server.Engine) {
		p.add("server.engine", fc.Server.Engine, "is cellar or net/http")
	}
	s.engine = fc.Server.Engine
	if fc.Server.Poller != nil {
		s.poller = *fc.Server.Poller
	}
	p.duration("timeouts.tunnel_idle", fc.Timeouts.TunnelIdle, &s.proxy.TunnelIdleTimeout)

	c := fc.Cache
	if c.HeuristicFraction != nil {
		if f := *c.HeuristicFraction; f <= 0 || f > 1 {
			p.add("cache.heuristic_fraction", strconv.FormatFloat(f, 'g', -1, 64), "want a fraction above 0 and at most 1")
		}
		s.cache.HeuristicFraction = *c.HeuristicFraction
	}
	p.duration("cache.heuristic_max", c.HeuristicMax, &s.cache.HeuristicMax)
	p.duration("cache.default_ttl", c.DefaultTTL, &s.cache.DefaultTTL)
	p.duration("cache.stale_while_revalidate", c.StaleWhileRevalidate, &s.cache.StaleWhileRevalidate)
	p.duration("cache.stale_if_error", c.StaleIfError, &s.cache.StaleIfError)
	if len(c.Targets) > 0 {
		s.cache.Targets = c.Targets
	}
	s.cache.StripCDNCacheControl = c.StripCDNCacheControl
	if pp, err := cache.ParsePersonalPolicy(c.Cookies); err != nil {
		p.add("cache.cookies", c.Cookies, "want safe or rfc")
	} else {
		s.cache.Personal = pp
	}
	if cp, err := cache.ParseCookiePolicy(c.ShareCookies); err != nil {
		p.add("cache.share_cookies", c.ShareCookies, "want explicit, never or always")
	} else {
		s.cache.Cookies = cp
	}
	p.keyOptions("cache.key", &c.Key, &s.cache.Key)
	p.clientNoCache("cache.client_no_cache", c.ClientNoCache, &s.cache.ClientNoCache)
	s.cache.StatusTTL = p.statusTTL("cache.status_ttl", c.StatusTTL)
	s.cache.VaryNormalize = cache.VaryNormalize{AcceptLanguage: c.Vary.AcceptLanguage, Accept: c.Vary.Accept}
	p.size("cache.slice.min", c.Slice.Min, &s.proxy.SliceMin)
	p.size("cache.slice.size", c.Slice.Size, &s.proxy.SliceSize)
	if s.proxy.SliceSize != 0 && s.proxy.SliceSize < 4<<10 {
		p.add("cache.slice.size", c.Slice.Size, "want at least 4KiB, e.g. 1MiB (0 turns slicing off)")
	}
	for i, r := range c.Rules {
		key := fmt.Sprintf("cache.rules[%d]", i)
		if !strings.HasPrefix(r.Prefix, "/") {
			p.add(key+".prefix", r.Prefix, "want a path prefix starting with /")
		}
		rule := cache.Rule{Prefix: r.Prefix, Bypass: r.Bypass, IgnoreNoCache: r.IgnoreNoCache,
			Hosts: r.Hosts, IgnoreOriginNoCache: r.IgnoreOriginNoCache, IgnorePrivate: r.IgnorePrivate, StripSetCookie: r.StripSetCookie}
		p.duration(key+".ttl", r.TTL, &rule.TTL)
		p.duration(key+".grace", r.Grace, &rule.Grace)
		p.duration(key+".keep", r.Keep, &rule.Keep)
		if r.Key != nil {
			rule.Key = &cache.KeyOptions{}
			p.keyOptions(key+".key", r.Key, rule.Key)
		}
		p.clientNoCache(key+".client_no_cache", r.ClientNoCache, &rule.ClientNoCache)
		rule.StatusTTL = p.statusTTL(key+".status_ttl", r.StatusTTL)
		s.cache.Rules = append(s.cache.Rules, rule)
	}
	s.purgeTokens = fc.Purge.Tokens
	for i, n := range fc.Purge.Networks {
		pfx, err := netip.ParsePrefix(n)
		if err != nil {
			a, aerr := netip.ParseAddr(n)
			if aerr != nil {
				p.add(fmt.Sprintf("purge.networks[%d]", i), n, "want a network such as 10.0.0.0/8 or an address")
				continue
			}
			pfx = netip.PrefixFrom(a, a.BitLen())
		}
		s.purgeNetworks = append(s.purgeNetworks, pfx.Masked())
	}
	s.purgePeers = nil
	for i, peer := range fc.Purge.Peers {
		if !strings.Contains(peer, "://") {
			if u, err := cli.URL(peer, false); err == nil {
				peer = u // host:port, as everywhere
			}
		}
		if err := purge.CheckPeerURL(peer); err != nil {
			p.add(fmt.Sprintf("purge.peers[%d]", i), fc.Purge.Peers[i], err.Error())
		}
		s.purgePeers = append(s.purgePeers, peer)
	}
	s.purgePeerToken = fc.Purge.PeerToken
	p.duration("purge.peer_timeout", fc.Purge.PeerTimeout, &s.purgePeerTimeout)
	if _, err := proxy.ParseTrustedProxies(fc.TrustedProxies); err != nil {
		p.add("trusted_proxies", strings.Join(fc.TrustedProxies, ","), err.Error())
	}
	s.proxy.TrustedProxies = fc.TrustedProxies
	s.cluster = nil
	if fc.Cluster.Self != "" || len(fc.Cluster.Peers) > 0 || fc.Cluster.Gossip != nil {
		cc := cluster.Config{Self: fc.Cluster.Self, Peers: fc.Cluster.Peers}
		if g := fc.Cluster.Gossip; g != nil {
			cc.Gossip = &cluster.GossipConfig{Bind: g.Bind, Join: g.Join}
		}
		p.duration("cluster.down_for", fc.Cluster.DownFor, &cc.DownFor)
		cl, err := cluster.New(cc) // binds nothing: a gossip starts in serve
		if err != nil {
			p.errs = append(p.errs, err)
		}
		s.proxy.Cluster, s.cluster = cl, &cc
	}
	s.proxy.LocalHot = fc.Cluster.LocalHot
	if fc.Cluster.LocalHot && s.cluster == nil {
		p.add("cluster.local_hot", "true", "needs a cluster: cluster.self with cluster.gossip or cluster.peers")
	}
	if s.nats = fc.Cluster.NATS.settings(p, fc.Cluster.Self); s.nats.on() && len(s.purgePeers) > 0 {
		p.add("purge.peers", strings.Join(fc.Purge.Peers, ","), "with cluster.nats every node gets every purge from the stream: remove purge.peers (the fan-out without NATS)")
	}
	s.cache.ExposeTags = fc.Purge.ExposeTags
	s.cache.TagFields = fc.Purge.TagFields
	return errors.Join(p.errs...)
}

// keyOptions reads a cache.key section into dst.
func (p *problems) keyOptions(key string, kc *keyConfig, dst *cache.KeyOptions) {
	q, err := cache.ParseQueryMode(kc.Query)
	if err != nil {
		p.add(key+".query", kc.Query, "want keep, sort or drop")
	}
	*dst = cache.KeyOptions{Query: q, IgnoreParams: kc.IgnoreParams, OnlyParams: kc.OnlyParams,
		Headers: kc.Headers, Cookies: kc.Cookies, FoldCase: kc.FoldCase}
}

// clientNoCache reads a client_no_cache value into dst.
func (p *problems) clientNoCache(key, v string, dst *cache.ClientNoCache) {
	c, err := cache.ParseClientNoCache(v)
	if err != nil {
		p.add(key, v, "want honor, ignore or revalidate")
		return
	}
	*dst = c
}

// statusTTL reads a status_ttl map ({404: 1m, 5xx: 0s}).
func (p *problems) statusTTL(key string, m map[string]string) map[string]time.Duration {
	if len(m) == 0 {
		return nil
	}
	out := make(map[string]time.Duration, len(m))
	for code, v := range m {
		k := key + "." + code
		if n, err := strconv.Atoi(code); (err != nil || n < 100 || n > 999) &&
			!(len(code) == 3 && code[0] >= '1' && code[0] <= '9' && strings.EqualFold(code[1:], "xx")) {
			p.add(k, code, "want a status code such as 404 or a class such as 5xx")
			continue
		}
		var d time.Duration
		if v == "" {
			p.add(k, v, "want a non-negative duration such as 0s, 1m or 1h")
			continue
		}
		p.duration(k, v, &d)
		out[code] = d
	}
	return out
}

// defaultDataDir is os.UserCacheDir()/cellar, or ./cellar-data when the
// user has no cache directory.
func defaultDataDir() string {
	if d, err := os.UserCacheDir(); err == nil {
		return filepath.Join(d, "cellar")
	}
	return "cellar-data"
}

// parseLogLevel reads a log level name: debug, info, warn or error, in any
// case (slog's names; "warning" is taken for warn).
func parseLogLevel(v string) (slog.Level, error) {
	if strings.EqualFold(v, "warning") {
		v = "warn"
	}
	var l slog.Level
	switch strings.ToLower(v) {
	case "debug", "info", "warn", "error":
		return l, l.UnmarshalText([]byte(v))
	}
	return l, fmt.Errorf("%q: want debug, info, warn or error", v)
}
