package proxy

import (
	"encoding/pem"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/cellar-cache/cellar/cache"
)

// countingOrigin is an origin that counts its requests and answers its name.
type countingOrigin struct {
	*httptest.Server
	name string
	hits atomic.Int64
}

func newCountingOrigin(t testing.TB, name string, h http.HandlerFunc) *countingOrigin {
	o := &countingOrigin{name: name}
	o.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		o.hits.Add(1)
		if h != nil {
			h(w, r)
			return
		}
		io.WriteString(w, name)
	}))
	t.Cleanup(o.Close)
	return o
}

// poolRig is a proxy whose requests for testHost go to pool, balanced by
// policy.
func poolRig(t *testing.T, policy string, pool []Origin, more ...rigOption) *rig {
	return newRig(t, func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "default") },
		append([]rigOption{withProxyOptions(func(o *Options) {
			o.Sites = []Site{{Hosts: []string{testHost}, Pool: pool, Balance: policy}}
		})}, more...)...)
}

// TestBalancePoliciesHonourWeights sends requests for distinct URLs through
// each policy to origins weighted 3, 1 and 1 plus a backup, and checks each
// origin's share is its weight's within 5 points, and the backup idle.
func TestBalancePoliciesHonourWeights(t *testing.T) {
	const n = 2000
	for _, policy := range balanceNames() {
		t.Run(policy, func(t *testing.T) {
			a, b, c := newCountingOrigin(t, "a", nil), newCountingOrigin(t, "b", nil), newCountingOrigin(t, "c", nil)
			spare := newCountingOrigin(t, "spare", nil)
			r := poolRig(t, policy, []Origin{
				{URL: a.URL, Weight: 3}, {URL: b.URL}, {URL: c.URL, Weight: 1}, {URL: spare.URL, Backup: true, Weight: 5},
			})
			for i := range n {
				if resp, _ := r.do(http.MethodPost, fmt.Sprintf("/item/%d", i), nil); resp.StatusCode != 200 {
					t.Fatalf("request %d: status %d", i, resp.StatusCode)
				}
			}
			var line string
			for _, o := range []struct {
				o    *countingOrigin
				want float64
			}{{a, 0.6}, {b, 0.2}, {c, 0.2}, {spare, 0}} {
				share := float64(o.o.hits.Load()) / n
				line += fmt.Sprintf(" %s=%d (%.1f%%, want %.0f%%)", o.o.name, o.o.hits.Load(), 100*share, 100*o.want)
				if math.Abs(share-o.want) > 0.05 {
					t.Errorf("%s got %.3f of the requests; want %.2f ± 0.05", o.o.name, share, o.want)
				}
			}
			t.Logf("%s, %d requests:%s", policy, n, line)
		})
	}
}

// TestBackupOriginsServeOnlyWhenPrimariesAreDown: requests go to the backup
// while the primary refuses connections, and back to the primary once it is
// healthy again.
func TestBackupOriginsServeOnlyWhenPrimariesAreDown(t *testing.T) {
	dead := httptest.NewServer(http.NotFoundHandler())
	dead.Close()
	spare := newCountingOrigin(t, "spare", nil)
	r := poolRig(t, "", []Origin{{URL: dead.URL}, {URL: spare.URL, Backup: true}})
	// GETs are retried on the backup; after MaxFails (2) the primary is
	// down and even a POST goes to the backup.
	for i, m := range []string{"GET", "GET", "GET", "POST"} {
		resp, body := r.do(m, "/b", http.Header{"Cache-Control": {"no-store"}})
		if resp.StatusCode != 200 || body != "spare" {
			t.Fatalf("request %d: %d %q; want the backup's answer", i, resp.StatusCode, body)
		}
	}
	live := newCountingOrigin(t, "live", nil)
	r2 := poolRig(t, "", []Origin{{URL: live.URL}, {URL: spare.URL, Backup: true}})
	before := spare.hits.Load()
	for range 4 {
		r2.do(http.MethodPost, "/b", nil)
	}
	if spare.hits.Load() != before || live.hits.Load() != 4 {
		t.Errorf("with the primary up: primary %d, backup %d more requests; want 4, 0", live.hits.Load(), spare.hits.Load()-before)
	}
}

// TestLeastConnAvoidsTheBusyOrigin: while one origin holds a request, the
// next requests go to the other.
func TestLeastConnAvoidsTheBusyOrigin(t *testing.T) {
	checkNoLeakedGoroutines(t)
	release := make(chan struct{})
	entered := make(chan struct{}, 1)
	slow := newCountingOrigin(t, "slow", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/hold" {
			entered <- struct{}{}
			<-release
		}
		io.WriteString(w, "slow")
	})
	fast := newCountingOrigin(t, "fast", nil)
	r := poolRig(t, "least_conn", []Origin{{URL: slow.URL}, {URL: fast.URL}})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for { // until it lands on the slow origin
			if _, body := r.do(http.MethodPost, "/hold", nil); body == "slow" {
				return
			}
		}
	}()
	<-entered
	if n := originGauges(t, r.server, "cellar_origin_in_flight")[slow.Listener.Addr().String()]; n != 1 {
		t.Errorf("cellar_origin_in_flight of the busy origin = %v; want 1", n)
	}
	for i := range 5 {
		if _, body := r.do(http.MethodPost, "/next", nil); body != "fast" {
			t.Errorf("request %d went to %q while the other origin was idle", i, body)
		}
	}
	close(release)
	<-done
}

// TestHashSendsAKeyToOneOrigin: every request for one URL goes to the same
// origin, and removing an origin moves only the keys it had.
func TestHashSendsAKeyToOneOrigin(t *testing.T) {
	a, b, c := newCountingOrigin(t, "a", nil), newCountingOrigin(t, "b", nil), newCountingOrigin(t, "c", nil)
	r := poolRig(t, "hash", []Origin{{URL: a.URL}, {URL: b.URL}, {URL: c.URL}})
	owner := map[string]string{}
	for i := range 30 {
		path := fmt.Sprintf("/k/%d", i%10)
		_, body := r.do(http.MethodPost, path, nil)
		if prev, ok := owner[path]; ok && prev != body {
			t.Fatalf("%s went to %s, then %s", path, prev, body)
		}
		owner[path] = body
	}

	// The key is the operator's cache key: with utm_* left out of it, the
	// tracking parameter does not move a URL to another origin.
	r2 := poolRig(t, "hash", []Origin{{URL: a.URL}, {URL: b.URL}, {URL: c.URL}},
		withCacheOptions(func(o *cache.Options) { o.Key.IgnoreParams = []string{"utm_*"} }))
	for i := range 10 {
		_, first := r2.do(http.MethodPost, fmt.Sprintf("/u/%d", i), nil)
		for _, campaign := range []string{"a", "b", "c", "d"} {
			if _, body := r2.do(http.MethodPost, fmt.Sprintf("/u/%d?utm_source=%s", i, campaign), nil); body != first {
				t.Fatalf("/u/%d went to %s, with utm_source=%s to %s", i, first, campaign, body)
			}
		}
	}

	// The selector alone: 3 origins, then without c.
	var ups []*upstream
	for _, o := range []*countingOrigin{a, b, c} {
		u := mustURL(o.URL)
		ups = append(ups, &upstream{url: u, seed: xxhash.Sum64String(u.Host)})
	}
	three := []candidate{{ups[0], 1}, {ups[1], 1}, {ups[2], 1}}
	moved, keys := 0, 10000
	for i := range keys {
		key := fmt.Sprintf("http://cellar.test/obj/%d", i)
		before, after := rendezvous{}.pick(three, key), rendezvous{}.pick(three[:2], key)
		if before != after {
			if before != ups[2] {
				t.Fatalf("key %s moved from %s, which stayed", key, before.url.Host)
			}
			moved++
		}
	}
	if share := float64(moved) / float64(keys); math.Abs(share-1.0/3) > 0.03 {
		t.Errorf("removing one of three origins moved %.3f of the keys; want about 1/3", share)
	}
}

func mustURL(raw string) *url.URL { u, _ := parseOrigin(raw); return u }

// TestRetriesGoToAnotherOrigin covers the retry rules end to end.
func TestRetriesGoToAnotherOrigin(t *testing.T) {
	unavailable := func(w http.ResponseWriter, _ *http.Request) { http.Error(w, "down", http.StatusServiceUnavailable) }
	for _, tc := range []struct {
		name       string
		method     string
		retries    Retries
		wantStatus int
		wantRetry  bool
	}{
		{"GET after 503", http.MethodGet, Retries{}, 200, true},
		{"POST is not idempotent", http.MethodPost, Retries{}, 503, false},
		{"tries 1 disables", http.MethodGet, Retries{Tries: 1}, 503, false},
		{"status not listed", http.MethodGet, Retries{Statuses: []int{502}}, 503, false},
		{"budget spent", http.MethodGet, Retries{Budget: time.Nanosecond}, 503, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bad := newCountingOrigin(t, "bad", unavailable)
			good := newCountingOrigin(t, "good", nil)
			r := poolRig(t, "", []Origin{{URL: bad.URL}, {URL: good.URL}},
				withProxyOptions(func(o *Options) { o.Retries = tc.retries }))
			// Round robin starts at the first origin, the failing one.
			resp, _ := r.do(tc.method, "/r", http.Header{"Cache-Control": {"no-store"}})
			if resp.StatusCode != tc.wantStatus {
				t.Errorf("status %d; want %d", resp.StatusCode, tc.wantStatus)
			}
			if got := testutil.ToFloat64(r.server.metrics.retries) == 1; got != tc.wantRetry {
				t.Errorf("retried = %v; want %v", got, tc.wantRetry)
			}
			if bad.hits.Load() != 1 {
				t.Errorf("the failing origin saw %d requests; want 1", bad.hits.Load())
			}
		})
	}
}

// TestRetryAfterTimeoutAndPassiveHealth: an origin that does not answer in
// time is retried elsewhere, and after MaxFails failures it is marked down.
func TestRetryAfterTimeoutAndPassiveHealth(t *testing.T) {
	checkNoLeakedGoroutines(t)
	stuck := newCountingOrigin(t, "stuck", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(10 * time.Second):
		}
	})
	good := newCountingOrigin(t, "good", nil)
	r := poolRig(t, "", []Origin{{URL: stuck.URL}, {URL: good.URL}}, withProxyOptions(func(o *Options) {
		o.ResponseTimeout = 100 * time.Millisecond
		o.MaxFails = 2
		o.FailCooldown = time.Hour
	}))
	for i := range 6 {
		resp, body := r.do(http.MethodGet, fmt.Sprintf("/t/%d", i), nil)
		if resp.StatusCode != 200 || body != "good" {
			t.Fatalf("request %d: %d %q; want the good origin's answer", i, resp.StatusCode, body)
		}
	}
	if n := stuck.hits.Load(); n != 2 {
		t.Errorf("the stuck origin saw %d requests; want 2, then marked down", n)
	}
	up := originGauges(t, r.server, "cellar_origin_up")
	if up[good.Listener.Addr().String()] != 1 || up[stuck.Listener.Addr().String()] != 0 {
		t.Errorf("cellar_origin_up = %v; want the good origin 1, the stuck one 0", up)
	}
}

// TestNoRetryOnceTheBodyStarted: an origin that fails in the middle of a
// body is not retried: the client already has part of the response.
func TestNoRetryOnceTheBodyStarted(t *testing.T) {
	checkNoLeakedGoroutines(t)
	broken := newCountingOrigin(t, "broken", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Length", "100")
		io.WriteString(w, "partial")
		w.(http.Flusher).Flush()
		panic(http.ErrAbortHandler)
	})
	good := newCountingOrigin(t, "good", nil)
	r := poolRig(t, "", []Origin{{URL: broken.URL}, {URL: good.URL}})
	req, _ := http.NewRequest(http.MethodGet, r.front.URL+"/p", nil)
	req.Host = testHost
	resp, err := r.front.Client().Do(req)
	if err == nil {
		_, err = io.ReadAll(resp.Body)
		resp.Body.Close()
	}
	// A 502 is right too when none of the body had reached the client yet.
	if err == nil && resp.StatusCode != http.StatusBadGateway {
		t.Errorf("the client read a whole %d response; want the truncated body to fail", resp.StatusCode)
	}
	if good.hits.Load() != 0 {
		t.Errorf("the other origin was asked %d times after the body had started", good.hits.Load())
	}
}

// TestSiteRewritesRequestHeaders: a site's headers.request removes, sets
// and adds fields and overrides Host on the requests to its origins.
func TestSiteRewritesRequestHeaders(t *testing.T) {
	seen := make(chan http.Header, 1)
	o := newCountingOrigin(t, "o", func(w http.ResponseWriter, r *http.Request) {
		h := r.Header.Clone()
		h.Set("Host", r.Host)
		seen <- h
	})
	r := newRig(t, func(http.ResponseWriter, *http.Request) {}, withProxyOptions(func(opts *Options) {
		opts.Sites = []Site{{Hosts: []string{testHost}, Origins: []string{o.URL}, Headers: HeaderRewrite{
			Remove: []string{"X-Secret"},
			Set:    map[string]string{"X-Env": "prod"},
			Add:    map[string]string{"X-Tag": "cellar"},
			Host:   "backend.internal",
		}}}
	}))
	r.do(http.MethodPost, "/h", http.Header{"X-Secret": {"s"}, "X-Env": {"dev"}, "X-Tag": {"client"}})
	h := <-seen
	if h.Get("X-Secret") != "" || h.Get("X-Env") != "prod" || len(h["X-Tag"]) != 2 || h.Get("Host") != "backend.internal" {
		t.Errorf("origin saw %v; want X-Secret removed, X-Env: prod, X-Tag twice, Host backend.internal", h)
	}
}

// TestHTTPSOriginWithCAFileAndServerName: an https origin is verified
// against the CA file under the configured server name (SNI); without the
// CA its certificate is refused; insecure_skip_verify accepts it.
func TestHTTPSOriginWithCAFileAndServerName(t *testing.T) {
	var sni atomic.Value
	o := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sni.Store(r.TLS.ServerName)
		io.WriteString(w, "secure")
	}))
	o.StartTLS()
	t.Cleanup(o.Close)
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: o.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		origin Origin
		status int
	}{
		{"ca file", Origin{URL: o.URL, CAFile: caFile, ServerName: "example.com"}, 200},
		{"system roots", Origin{URL: o.URL, ServerName: "example.com"}, 502},
		{"insecure", Origin{URL: o.URL, InsecureSkipVerify: true}, 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := poolRig(t, "", []Origin{tc.origin}, withProxyOptions(func(o *Options) { o.Retries.Tries = 1 }))
			resp, body := r.do(http.MethodPost, "/s", nil)
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d %q; want %d", resp.StatusCode, body, tc.status)
			}
			if tc.status == 200 && tc.origin.ServerName != "" && sni.Load() != tc.origin.ServerName {
				t.Errorf("origin saw SNI %q; want %q", sni.Load(), tc.origin.ServerName)
			}
		})
	}
	if _, err := newPool(&Options{Pool: []Origin{{URL: o.URL, CAFile: filepath.Join(t.TempDir(), "missing.pem")}}}, &http.Transport{}, nil); err == nil || !strings.Contains(err.Error(), "ca_file") {
		t.Errorf("a missing CA file: %v; want an error naming ca_file", err)
	}
}

// TestOriginKeepAlivePoolSize: an origin's max_idle_conns bounds the
// connections kept open between bursts of requests.
func TestOriginKeepAlivePoolSize(t *testing.T) {
	for _, tc := range []struct{ idle, wantConns int }{{1, 7}, {4, 4}} {
		t.Run(fmt.Sprint("idle ", tc.idle), func(t *testing.T) {
			arrived, release := make(chan struct{}), make(chan struct{})
			var conns atomic.Int64
			o := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				arrived <- struct{}{}
				<-release
			}))
			o.Config.ConnState = func(_ net.Conn, st http.ConnState) {
				if st == http.StateNew {
					conns.Add(1)
				}
			}
			o.Start()
			t.Cleanup(o.Close)
			r := poolRig(t, "", []Origin{{URL: o.URL, MaxIdleConns: tc.idle}})
			for range 2 { // two bursts of 4 concurrent requests
				done := make(chan struct{})
				for range 4 {
					go func() {
						defer func() { done <- struct{}{} }()
						r.do(http.MethodPost, "/k", nil)
					}()
				}
				for range 4 {
					<-arrived
				}
				for range 4 {
					release <- struct{}{}
				}
				for range 4 {
					<-done
				}
			}
			if n := conns.Load(); n != int64(tc.wantConns) {
				t.Errorf("the origin saw %d connections; want %d", n, tc.wantConns)
			}
		})
	}
}

// originGauges gathers one per-origin gauge of s by origin.
func originGauges(t *testing.T, s *Server, name string) map[string]float64 {
	t.Helper()
	reg := prometheus.NewRegistry()
	if err := s.Metrics().Register(reg); err != nil {
		t.Fatal(err)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			out[m.GetLabel()[0].GetValue()] = m.GetGauge().GetValue()
		}
	}
	return out
}
