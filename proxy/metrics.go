package proxy

import (
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the proxy's Prometheus collectors. Register them with
// Register; nothing is registered globally.
type Metrics struct {
	requests                *prometheus.CounterVec // by outcome: hit, stale, miss, pass
	hits, stales, misses    prometheus.Counter     // requests' children, resolved once (hit path)
	passes                  prometheus.Counter
	originRequests          prometheus.Counter
	upstreamErrors          prometheus.Counter
	fills                   prometheus.Counter
	fillErrors              prometheus.Counter
	collapsed               prometheus.Counter
	collapseReleased        prometheus.Counter
	fillsInProgress         prometheus.Gauge
	hitForMiss              prometheus.Counter
	backgroundRevalidations prometheus.Counter
	storeErrors             prometheus.Counter
	retries                 prometheus.Counter // upstream.go
	origins                 *currentPool       // per-origin health and load (upstream.go) of the Server made last
	peers                   *peerMetrics       // peer fetches (peer.go); made by the first New with a cluster
	tunnels                 prometheus.Counter // upgrade.go
	openTunnels             prometheus.Gauge
	codings                 *codingMetrics         // precompression (codings.go)
	refused                 *prometheus.CounterVec // requests refused by a limit, by status
	rateLimited             prometheus.Counter
	connsOpen               prometheus.Gauge
	connsRefused            prometheus.Counter
	http                    *httpMetrics // latency, status classes, origins (instrument.go)
}

// NewMetrics returns a set of collectors for Options.Metrics.
func NewMetrics() *Metrics { return newMetrics() }

func newMetrics() *Metrics {
	c := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Namespace: "cellar", Name: name, Help: help})
	}
	g := func(name, help string) prometheus.Gauge {
		return prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "cellar", Name: name, Help: help})
	}
	requests := prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "cellar", Name: "requests_total",
		Help: "Client requests by cache outcome: hit (fresh), stale (served stale without asking the origin first), miss (went to the origin: fills, revalidations, stale-if-error), pass (not cacheable: a request the cache does not handle, a response that may not be shared such as no-store or private, or a key marked hit-for-miss).",
	}, []string{"outcome"})
	return &Metrics{
		requests:                requests,
		hits:                    requests.WithLabelValues("hit"),
		stales:                  requests.WithLabelValues("stale"),
		misses:                  requests.WithLabelValues("miss"),
		passes:                  requests.WithLabelValues("pass"),
		originRequests:          c("origin_requests_total", "Requests sent to origins."),
		upstreamErrors:          c("origin_errors_total", "Origin requests that failed (connection, timeout, body)."),
		fills:                   c("fills_total", "Cache fills started."),
		fillErrors:              c("fill_errors_total", "Cache fills aborted because the origin's body failed."),
		collapsed:               c("collapsed_requests_total", "Requests that waited on another request's fill."),
		collapseReleased:        c("collapse_released_total", "Requests that stopped waiting on a fill (waiting list full or wait timeout) and went to the origin themselves."),
		fillsInProgress:         g("fills_in_progress", "Coalesced origin requests (fills and revalidations) in progress."),
		hitForMiss:              c("hit_for_miss_total", "Requests sent straight to the origin because their key was recently not shareable."),
		backgroundRevalidations: c("background_revalidations_total", "Stale-while-revalidate background revalidations."),
		storeErrors:             c("store_errors_total", "Store operations that failed other than by a miss."),
		retries:                 c("origin_retries_total", "Origin requests tried again on another origin after a connection error, timeout or retried status."),
		tunnels:                 c("tunnels_total", "Upgraded connections (WebSocket and others) tunnelled to an origin."),
		openTunnels:             g("open_tunnels", "Upgraded connections open now."),
		codings:                 newCodingMetrics(),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "cellar", Name: "requests_refused_total",
			Help: "Client requests refused by a limit (414 target, 431 header fields, 413 body, 408 body timeout, 400 malformed body), by status.",
		}, []string{"status"}),
		rateLimited:  c("rate_limited_total", "Client requests answered 429 by the per-client rate limit."),
		connsOpen:    g("client_connections", "Open client connections on the proxy listeners."),
		connsRefused: c("connections_refused_total", "Client connections closed at once because the proxy listener had limits.max_conns open."),
		http:         newHTTPMetrics(),
		origins:      &currentPool{},
	}
}

// Register adds the collectors to reg.
func (m *Metrics) Register(reg prometheus.Registerer) error {
	cs := []prometheus.Collector{m.refused, m.rateLimited, m.connsOpen, m.connsRefused, m.requests, m.originRequests, m.upstreamErrors, m.fills, m.fillErrors, m.collapsed, m.collapseReleased, m.fillsInProgress, m.hitForMiss, m.backgroundRevalidations, m.storeErrors, m.retries, m.tunnels, m.openTunnels}
	cs = append(cs, m.origins)
	if m.peers != nil {
		cs = append(cs, m.peers.fetches, m.peers.hot)
	}
	cs = append(cs, m.http.collectors()...)
	for _, c := range append(cs, m.codings.collectors()...) {
		if err := reg.Register(c); err != nil {
			return err
		}
	}
	return nil
}

// currentPool collects the origins' health and load from the pool of the
// Server made last with these Metrics: servers that replace one another
// on a config reload share one registration.
type currentPool struct{ p atomic.Pointer[pool] }

var _ prometheus.Collector = (*currentPool)(nil)

func (c *currentPool) Describe(ch chan<- *prometheus.Desc) {
	ch <- originUpDesc
	ch <- originInFlightDesc
}

func (c *currentPool) Collect(ch chan<- prometheus.Metric) {
	if p := c.p.Load(); p != nil {
		p.Collect(ch)
	}
}
