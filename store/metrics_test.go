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
	var diskObjects float64 = -1
	for _, mf := range mfs {
		if mf.GetName() != "cellar_store_objects" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "tier" && l.GetValue() == "disk" {
					diskObjects = m.GetGauge().GetValue()
				}
			}
		}
	}
	if diskObjects != 1 {
		t.Errorf("cellar_store_objects{tier=disk} = %v, want 1", diskObjects)
	}
	n, err := testutil.GatherAndCount(reg, "cellar_store_lookups_total")
	if err != nil || n != 2 {
		t.Errorf("lookup series = %d, %v; want hit and miss", n, err)
	}
}
