package main

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestPoolConfigErrorsNameKeyAndLine: bad origins, balance policies and
// retries are reported with their key and line, all at once.
func TestPoolConfigErrorsNameKeyAndLine(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "missing.pem")
	for _, tc := range []struct {
		name, text string
		want       []string
	}{
		{"bad weight", "origins:\n  - http://10.0.0.1\n  - {url: http://10.0.0.2, weight: 0}\n", []string{"line 3", "origins[1].weight", `"0"`, "1 to 1000"}},
		{"unknown policy", "origins: [http://10.0.0.1]\nbalance: fastest\n", []string{"line 2", "balance", `"fastest"`, "least_conn"}},
		{"unknown site policy", "sites:\n  - origins: [http://10.0.0.1]\n    balance: sticky\n", []string{"line 3", "sites[0].balance"}},
		{"unloadable CA", "origins:\n  - url: https://10.0.0.1\n    ca_file: " + missing + "\n", []string{"line 3", "origins[0].ca_file", "no such file"}},
		{"unknown origin key", "origins:\n  - url: http://10.0.0.1\n    wieght: 2\n", []string{"line 3", "wieght"}},
		{"bad retries", "retries:\n  tries: 0\n  statuses: [503, 1000]\n  budget: forever\n", []string{"line 2", "retries.tries", "line 3", "retries.statuses[1]", "line 4", "retries.budget"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := startServe(t, "-config", writeConfig(t, tc.text), "-data-dir", t.TempDir())
			if err == nil {
				t.Fatal("serve started with a bad config")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

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
