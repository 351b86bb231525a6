package main

import "testing"

// TestExamplePoolConfig: the example file's pool settings decode to their
// documented defaults.
func TestExamplePoolConfig(t *testing.T) {
	fc, lines, err := loadConfig("../../testdata/cellar.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var s settings
	if err := fc.apply(&s, lines); err != nil {
		t.Fatal(err)
	}
	p := s.proxy
	if p.Balance != "round_robin" || p.Retries.Tries != 2 || len(p.Retries.Statuses) != 3 || p.Retries.Budget.String() != "2s" || p.MaxFails != 2 {
		t.Errorf("pool settings %+v", p)
	}
	site := p.Sites[0]
	if len(site.Pool) != 3 || site.Pool[0].Weight != 3 || !site.Pool[2].Backup || site.Balance != "least_conn" || site.Headers.Host != "api.internal" {
		t.Errorf("site %+v", site)
	}
}
