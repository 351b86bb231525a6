package store

import "github.com/prometheus/client_golang/prometheus"

// Collector exposes the store's Stats to Prometheus, read once per scrape.
func (s *Store) Collector() prometheus.Collector { return statsCollector{s} }

type statsCollector struct{ s *Store }

var (
	descBytes   = prometheus.NewDesc("cellar_store_bytes", "Bytes held by a tier.", []string{"tier"}, nil)
	descObjects = prometheus.NewDesc("cellar_store_objects", "Objects held by a tier.", []string{"tier"}, nil)
	descBudget  = prometheus.NewDesc("cellar_store_budget_bytes", "A tier's budget for objects (disk: DiskBytes less its fixed overheads), against which cellar_store_bytes is charged.", []string{"tier"}, nil)
	descLookups = prometheus.NewDesc("cellar_store_lookups_total", "Store lookups by result.", []string{"result"}, nil)
	descCorrupt = prometheus.NewDesc("cellar_store_corrupt_records_total", "Records that failed their checksum and were deleted.", nil, nil)
	descEvicted = prometheus.NewDesc("cellar_store_evictions_total", "Objects evicted from the disk tier to keep its budget.", nil, nil)
	descWriteEr = prometheus.NewDesc("cellar_store_write_errors_total", "Writes that failed (disk full, I/O errors).", nil, nil)
	// Bans (bans.go).
	descBansPending = prometheus.NewDesc("cellar_store_bans_pending", "Bans recorded and not yet swept through every object.", nil, nil)
	descBans        = prometheus.NewDesc("cellar_store_bans_total", "Bans (purges by regular expression) recorded since start.", nil, nil)
	descBanned      = prometheus.NewDesc("cellar_store_banned_objects_total", "Objects removed or invalidated by a ban, on lookup or by the background sweep.", []string{"by"}, nil)
	// The disk tier's state (diskslot.go).
	descDiskMod = prometheus.NewDesc("cellar_store_disk_mode", "1 for the disk tier's current mode (online, paused, read-only, offline), 0 for the others.", []string{"mode"}, nil)
	descFaults  = prometheus.NewDesc("cellar_store_disk_faults_total", "Faults of the disk tier (pebble errors it could not recover from in place); each takes the tier offline until it is reopened.", nil, nil)
	descQuarant = prometheus.NewDesc("cellar_store_disk_quarantines_total", "Data directories moved to quarantine because pebble could not open them or found them corrupt.", nil, nil)
)

// diskModes are the values of DiskState.Mode, for cellar_store_disk_mode.
var diskModes = []string{DiskOnline, DiskPaused, DiskReadOnly, DiskOffline}

func (c statsCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descBytes, descObjects, descBudget, descLookups, descCorrupt, descEvicted, descWriteEr, descBansPending, descBans, descBanned, descDiskMod, descFaults, descQuarant} {
		ch <- d
	}
}

func (c statsCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.s.Stats()
	gauge := func(d *prometheus.Desc, v int64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, float64(v), labels...)
	}
	counter := func(d *prometheus.Desc, v int64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	gauge(descBytes, st.MemoryBytes, "memory")
	gauge(descBytes, st.DiskBytes, "disk")
	gauge(descObjects, st.MemoryObjects, "memory")
	gauge(descObjects, st.DiskObjects, "disk")
	gauge(descBudget, st.MemoryBudget, "memory")
	gauge(descBudget, st.DiskObjectBudget, "disk")
	counter(descLookups, st.Hits, "hit")
	counter(descLookups, st.Misses, "miss")
	counter(descCorrupt, st.Corrupt)
	counter(descEvicted, st.Evictions)
	counter(descWriteEr, st.WriteErrors)
	bs := c.s.BanStats()
	gauge(descBansPending, bs.Pending)
	counter(descBans, bs.Added)
	counter(descBanned, bs.Lazy, "lookup")
	counter(descBanned, bs.Swept, "sweep")
	ds := c.s.DiskState()
	for _, m := range diskModes {
		v := int64(0)
		if m == ds.Mode {
			v = 1
		}
		gauge(descDiskMod, v, m)
	}
	counter(descFaults, ds.Faults)
	counter(descQuarant, ds.Quarantines)
}
