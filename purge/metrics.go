package purge

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the purge API's Prometheus collectors. Register them with
// Register; nothing is registered globally.
type Metrics struct {
	requests *prometheus.CounterVec // by kind and result
	objects  *prometheus.CounterVec // by kind
}

func newMetrics() *Metrics {
	return &Metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "cellar", Name: "purge_requests_total",
			Help: "Purge requests by kind (url, prefix, tag, all, method) and result (ok, bad_request, unauthorized, forbidden, error).",
		}, []string{"kind", "result"}),
		objects: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "cellar", Name: "purged_objects_total",
			Help: "Stored objects removed or invalidated by purges, by kind.",
		}, []string{"kind"}),
	}
}

// Register adds the collectors to reg.
func (m *Metrics) Register(reg prometheus.Registerer) error {
	for _, c := range []prometheus.Collector{m.requests, m.objects} {
		if err := reg.Register(c); err != nil {
			return err
		}
	}
	return nil
}
