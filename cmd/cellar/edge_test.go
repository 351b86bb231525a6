package main

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// The edge's config (limits, headers, rate, the timeouts and the admin
// section) reaches the proxy that serve runs.
func TestServeAppliesTheEdgeConfig(t *testing.T) {
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Powered-By", "php")
		w.Write([]byte("ok"))
	}))
	defer origin.Close()
	cfg := writeConfig(t, `
limits:
  max_target: 1KiB
  max_header_fields: 50
  max_body: 10KiB
  max_conns: 100
  max_ranges: 4
  rate: {per_second: 1000, burst: 1000}
headers:
  response:
    set: {Strict-Transport-Security: max-age=63072000}
    remove: [X-Powered-By]
timeouts:
  write: 30s
  client_body: 20s
admin:
  listen: 127.0.0.1:0
  pprof: false
  metrics_token: true
purge:
  tokens: [sekrit-sekrit-sekrit]
`)
	r, err := startServe(t, "-config", cfg, "-origin", origin.URL, "-data-dir", t.TempDir(), "-access-log=false")
	if err != nil {
		t.Fatal(err)
	}
	resp, body := get(t, "http://"+r.proxy+"/a")
	if resp.StatusCode != 200 || body != "ok" {
		t.Fatalf("GET /a: %d %q", resp.StatusCode, body)
	}
	if resp.Header.Get("Strict-Transport-Security") != "max-age=63072000" || resp.Header.Get("X-Powered-By") != "" {
		t.Errorf("response header edits not applied: %v", resp.Header)
	}
	if resp, _ := get(t, "http://"+r.proxy+"/"+strings.Repeat("x", 1100)); resp.StatusCode != http.StatusRequestURITooLong {
		t.Errorf("1100-byte target: %d, want 414", resp.StatusCode)
	}
	if resp, _ := get(t, "http://"+r.admin+"/metrics"); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("/metrics without the token: %d, want 401", resp.StatusCode)
	}
	req, _ := http.NewRequest("GET", "http://"+r.admin+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer sekrit-sekrit-sekrit")
	mresp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	mresp.Body.Close()
	if mresp.StatusCode != 200 {
		t.Errorf("/metrics with the token: %d", mresp.StatusCode)
	}
	if resp, _ := get(t, "http://"+r.admin+"/debug/pprof/"); resp.StatusCode != http.StatusNotFound {
		t.Errorf("/debug/pprof/ with pprof off: %d, want 404", resp.StatusCode)
	}
}

func TestAdminPprofNeedsTheToken(t *testing.T) {
	cfg := writeConfig(t, "admin:\n  listen: 127.0.0.1:0\n  pprof: true\npurge:\n  tokens: [sekrit-sekrit-sekrit]\n")
	r, err := startServe(t, "-config", cfg, "-data-dir", t.TempDir(), "-access-log=false")
	if err != nil {
		t.Fatal(err)
	}
	if resp, _ := get(t, "http://"+r.admin+"/debug/pprof/"); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("/debug/pprof/ without the token: %d, want 401", resp.StatusCode)
	}
	req, _ := http.NewRequest("GET", "http://"+r.admin+"/debug/pprof/", nil)
	req.Header.Set("Authorization", "Bearer sekrit-sekrit-sekrit")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("/debug/pprof/ with the token: %d", resp.StatusCode)
	}
	if resp, _ := get(t, "http://"+r.admin+"/metrics"); resp.StatusCode != 200 {
		t.Errorf("/metrics without metrics_token: %d, want 200", resp.StatusCode)
	}
	if strings.Contains(r.log.String(), "REACHABLE FROM OTHER HOSTS") {
		t.Error("warned about a loopback admin listener")
	}
}

func TestServeWarnsAboutAnOpenAdminListener(t *testing.T) {
	r, err := startServe(t, "-admin", "0.0.0.0:0", "-data-dir", t.TempDir(), "-access-log=false")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(r.log.String(), "REACHABLE FROM OTHER HOSTS") {
		t.Errorf("no warning for an admin listener on all interfaces:\n%s", r.log)
	}
}
