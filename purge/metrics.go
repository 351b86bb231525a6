package purge

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the purge API's Prometheus collectors. Register them with
// Register; nothing is registered globally.
type Metrics struct {
	requests *prometheus.CounterVec // by kind and result
	objects  *prometheus.CounterVec // by kind
	forwards *prometheus.CounterVec // by peer and result
}

// NewMetrics returns a set of collectors for Options.Metrics.
func NewMetrics() *Metrics { return newMetrics() }

func newMetrics() *Metrics {
	return &Metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "cellar", Name: "purge_requests_total",
			Help: "Purge requests by kind (url, prefix, tag, all, method) and result (ok, incomplete: purged here but a peer failed, unpublished: the purge stream did not store it, bad_request, unauthorized, forbidden, error).",
		}, []string{"kind", "result"}),
		objects: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "cellar", Name: "purged_objects_total",
			Help: "Stored objects removed or invalidated by purges, by kind.",
		}, []string{"kind"}),
		forwards: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "cellar", Name: "purge_peer_forwards_total",
			Help: "Purges forwarded to peers, by peer (the configured admin URL) and result (ok, unreachable, timeout, status: an answer other than 200, bad_answer).",
		}, []string{"peer", "result"}),
	}
}

// Register adds the collectors to reg.
func (m *Metrics) Register(reg prometheus.Registerer) error {
	for _, c := range []prometheus.Collector{m.requests, m.objects, m.forwards} {
		if err := reg.Register(c); err != nil {
			return err
		}
	}
	return nil
}
