package store

import (
	"context"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/cellar-cache/cellar/cache"
)

func TestCollectorReportsStats(t *testing.T) {
	s, err := Open(Options{Dir: t.TempDir(), MemoryBytes: 1 << 20, DiskBytes: 16 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	w, err := s.Create(ctx, "k", cache.Meta{Status: 200}, CreateOptions{SizeHint: 3})
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte("abc"))
	if _, err := w.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	s.Get(ctx, "k")
	s.Get(ctx, "absent")
	reg := prometheus.NewRegistry()
	reg.MustRegister(s.Collector())
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	disk := func(name string) float64 {
		for _, mf := range mfs {
			if mf.GetName() != name {
				continue
			}
			for _, m := range mf.GetMetric() {
				for _, l := range m.GetLabel() {
					if l.GetName() == "tier" && l.GetValue() == "disk" {
						return m.GetGauge().GetValue()
					}
				}
			}
		}
		return -1
	}
	if got := disk("cellar_store_objects"); got != 1 {
		t.Errorf("cellar_store_objects{tier=disk} = %v, want 1", got)
	}
	if got, want := disk("cellar_store_budget_bytes"), float64(s.Stats().DiskObjectBudget); got != want || got <= 0 {
		t.Errorf("cellar_store_budget_bytes{tier=disk} = %v, want %v", got, want)
	}
	n, err := testutil.GatherAndCount(reg, "cellar_store_lookups_total")
	if err != nil || n != 2 {
		t.Errorf("lookup series = %d, %v; want hit and miss", n, err)
	}
}
