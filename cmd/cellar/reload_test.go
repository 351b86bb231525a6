package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// namedOrigin answers every request with its name; /slow signals
// arrived, then waits for release.
func namedOrigin(t *testing.T, name string, release <-chan struct{}, arrived chan<- struct{}) *httptest.Server {
	t.Helper()
	o := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			select {
			case arrived <- struct{}{}:
			default:
			}
			select {
			case <-release:
			case <-r.Context().Done():
				return
			}
		}
		if strings.HasPrefix(r.URL.Path, "/cached") {
			w.Header().Set("Cache-Control", "max-age=600")
		} else {
			w.Header().Set("Cache-Control", "no-store")
		}
		io.WriteString(w, name)
	}))
	t.Cleanup(o.Close)
	return o
}

// waitFor polls cond until it holds, failing after a generous bound.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// readyz fetches the admin listener's readiness report.
func readyz(t *testing.T, admin string) (int, readiness) {
	t.Helper()
	resp, err := http.Get("http://" + admin + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var rd readiness
	if err := json.NewDecoder(resp.Body).Decode(&rd); err != nil {
		t.Fatalf("/readyz: %v", err)
	}
	return resp.StatusCode, rd
}

// TestReloadUnderLoadDropsNoRequest reloads a running cellar 20 times,
// alternately through SIGHUP and `cellar reload` (POST /reload), between
// two configs with different origins, while 8 clients send requests over
// keep-alive connections as fast as they can. Not one request may fail;
// each reload switches the origin; a request in progress at a reload
// finishes on the settings it started with; the store keeps its contents.
func TestReloadUnderLoadDropsNoRequest(t *testing.T) {
	release, arrived := make(chan struct{}), make(chan struct{}, 1)
	a, b := namedOrigin(t, "A", release, arrived), namedOrigin(t, "B", release, nil)
	dir := t.TempDir()
	cfg := writeConfig(t, "origin: "+a.URL+"\n")
	configFor := map[string]string{"A": "origin: " + a.URL + "\n", "B": "origin: " + strings.TrimPrefix(b.URL, "http://") + "\ncache:\n  default_ttl: 1m\n"}
	r, err := startServe(t, "-config", cfg, "-data-dir", dir, "-access-log=false")
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + r.proxy
	if _, body := get(t, base+"/cached"); body != "A" {
		t.Fatalf("first fill: %q", body)
	}
	// Stored once a request is a hit (the fill commits after the answer).
	waitFor(t, "/cached is stored", func() bool {
		resp, _ := get(t, base+"/cached")
		return strings.Contains(resp.Header.Get("Cache-Status"), "hit")
	})

	// A request in progress when the origin changes finishes on A.
	slow := make(chan string, 1)
	go func() {
		resp, err := http.Get(base + "/slow")
		if err != nil {
			slow <- err.Error()
			return
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		slow <- string(body)
	}()
	<-arrived

	var (
		stop             atomic.Bool
		ok, failed       atomic.Int64
		sawA, sawB       atomic.Int64
		failures         sync.Map
		wg               sync.WaitGroup
		newConns, reused atomic.Int64
	)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tr := &http.Transport{MaxIdleConnsPerHost: 1}
			defer tr.CloseIdleConnections()
			client := &http.Client{Transport: tr, Timeout: 30 * time.Second}
			trace := &httptrace.ClientTrace{GotConn: func(i httptrace.GotConnInfo) {
				if i.Reused {
					reused.Add(1)
				} else {
					newConns.Add(1)
				}
			}}
			for i := 0; !stop.Load(); i++ {
				path := "/pass"
				if i%4 == 0 {
					path = "/cached"
				}
				req, _ := http.NewRequestWithContext(httptrace.WithClientTrace(context.Background(), trace), http.MethodGet, base+path, nil)
				resp, err := client.Do(req)
				if err != nil {
					failed.Add(1)
					failures.Store(err.Error(), true)
					continue
				}
				body, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				if err != nil || resp.StatusCode != http.StatusOK {
					failed.Add(1)
					failures.Store(fmt.Sprintf("%d %q %v", resp.StatusCode, body, err), true)
					continue
				}
				ok.Add(1)
				if path == "/cached" && string(body) != "A" {
					failed.Add(1)
					failures.Store("/cached was not served from the store: "+resp.Header.Get("Cache-Status"), true)
					continue
				}
				switch string(body) {
				case "A":
					sawA.Add(1)
				case "B":
					sawB.Add(1)
				}
			}
		}()
	}

	start := time.Now()
	const reloads = 20
	for i := range reloads {
		want := "B"
		if i%2 == 1 {
			want = "A"
		}
		if err := os.WriteFile(cfg, []byte(configFor[want]), 0o600); err != nil {
			t.Fatal(err)
		}
		if i%2 == 0 {
			if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
				t.Fatal(err)
			}
		} else {
			var out, errb strings.Builder
			if err := run(context.Background(), []string{"reload", "-admin", r.admin, "-data-dir", dir}, &out, &errb); err != nil {
				t.Fatalf("cellar reload: %v", err)
			}
			if !strings.Contains(out.String(), fmt.Sprintf("generation %d", i+1)) {
				t.Errorf("cellar reload printed %q, want generation %d", out.String(), i+1)
			}
		}
		waitFor(t, fmt.Sprintf("reload %d takes effect", i+1), func() bool {
			_, rd := readyz(t, r.admin)
			return rd.Config.Generation == i+1
		})
		if i == 0 {
			close(release) // the slow request started on A ends after the switch to B
		}
		// Let the clients run on this generation before the next reload.
		from := ok.Load()
		waitFor(t, "requests flow between reloads", func() bool { return ok.Load() >= from+40 || failed.Load() > 0 })
		if _, body := get(t, base+"/pass"); body != want {
			t.Fatalf("after reload %d: origin %q, want %q", i+1, body, want)
		}
	}
	stop.Store(true)
	wg.Wait()
	elapsed := time.Since(start)

	if got := <-slow; got != "A" {
		t.Errorf("request in progress at the reload answered %q, want A (its own origin)", got)
	}
	t.Logf("reload under load: %d reloads in %v, %d requests ok, %d failed (%d answered by A, %d by B), %d connections opened, %d reused",
		reloads, elapsed.Round(time.Millisecond), ok.Load(), failed.Load(), sawA.Load(), sawB.Load(), newConns.Load(), reused.Load())
	if failed.Load() != 0 {
		failures.Range(func(k, _ any) bool { t.Errorf("failure: %v", k); return true })
		t.Fatalf("%d requests failed during reloads", failed.Load())
	}
	if ok.Load() < reloads || sawB.Load() == 0 {
		t.Errorf("the load did not run across the reloads: %d ok, %d from B", ok.Load(), sawB.Load())
	}
	if newConns.Load() > 8 {
		t.Errorf("%d connections opened by 8 keep-alive clients: reloads dropped connections", newConns.Load())
	}
	// The store was kept: /cached, filled from A before the first reload,
	// is still a hit.
	resp, body := get(t, base+"/cached")
	if body != "A" || !strings.Contains(resp.Header.Get("Cache-Status"), "hit") {
		t.Errorf("/cached after the reloads: %q, %q; want A from the store", body, resp.Header.Get("Cache-Status"))
	}
}

// TestReloadRefusesABadConfigAndKeepsServing checks that a config with
// errors is refused as a whole, with the line and key of each error, by
// `cellar reload` and by SIGHUP, while cellar keeps serving on the running
// config; /readyz and the metrics say so, and a fixed config is taken.
func TestReloadRefusesABadConfigAndKeepsServing(t *testing.T) {
	a, b := namedOrigin(t, "A", nil, nil), namedOrigin(t, "B", nil, nil)
	dir := t.TempDir()
	cfg := writeConfig(t, "origin: "+a.URL+"\n")
	r, err := startServe(t, "-config", cfg, "-data-dir", dir)
	if err != nil {
		t.Fatal(err)
	}
	bad := "origin: " + b.URL + "\nmemroy: 1G\ntimeouts:\n  connect: soon\n"
	if err := os.WriteFile(cfg, []byte(bad), 0o600); err != nil {
		t.Fatal(err)
	}
	var out, errb strings.Builder
	err = run(context.Background(), []string{"reload", "-admin", "http://" + r.admin, "-data-dir", dir}, &out, &errb)
	if err == nil || !strings.Contains(err.Error(), "line 2: memroy: unknown key; did you mean memory?") || !strings.Contains(err.Error(), "running config stays") {
		t.Errorf("cellar reload of a bad config: %v", err)
	}
	if _, body := get(t, "http://"+r.proxy+"/x"); body != "A" {
		t.Errorf("after a refused reload the origin is %q, want A", body)
	}
	code, rd := readyz(t, r.admin)
	if code != http.StatusOK || !rd.Ready || rd.Config.Generation != 0 || !strings.Contains(rd.Config.LastError, "memroy") {
		t.Errorf("/readyz after a refused reload: %d %+v", code, rd.Config)
	}
	if !strings.Contains(r.log.String(), "reload refused; the running config stays") {
		t.Errorf("log lacks the refusal:\n%s", r.log.String())
	}

	// A second error kind (the values are checked, not only the keys),
	// through SIGHUP.
	if err := os.WriteFile(cfg, []byte("origin: "+b.URL+"\ntimeouts:\n  connect: soon\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	syscall.Kill(os.Getpid(), syscall.SIGHUP)
	waitFor(t, "SIGHUP's refusal is logged", func() bool { return strings.Contains(r.log.String(), "timeouts.connect") })
	if _, body := get(t, "http://"+r.proxy+"/x"); body != "A" {
		t.Errorf("after a refused SIGHUP the origin is %q, want A", body)
	}

	if err := os.WriteFile(cfg, []byte("origin: "+b.URL+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := run(context.Background(), []string{"reload", "-admin", r.admin, "-data-dir", dir}, &out, &errb); err != nil {
		t.Fatalf("reload of the fixed config: %v", err)
	}
	if _, body := get(t, "http://"+r.proxy+"/x"); body != "B" {
		t.Errorf("after the fixed reload the origin is %q, want B", body)
	}
	_, rd = readyz(t, r.admin)
	if rd.Config.Generation != 1 || rd.Config.LastError != "" {
		t.Errorf("/readyz after a good reload: %+v", rd.Config)
	}
	_, metrics := get(t, "http://"+r.admin+"/metrics")
	for _, want := range []string{`cellar_config_reloads_total{result="error"} 2`, `cellar_config_reloads_total{result="ok"} 1`, "cellar_config_generation 1"} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}

	// Without the token, POST /reload is refused.
	resp, err := http.Post("http://"+r.admin+"/reload", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("POST /reload without a token: %d, want 401", resp.StatusCode)
	}
}

// TestReloadMovesListeners reloads to other proxy and admin addresses:
// the new ones serve at once, a request in progress on the old proxy
// listener finishes, and the old listeners then close.
func TestReloadMovesListeners(t *testing.T) {
	release, arrived := make(chan struct{}), make(chan struct{}, 1)
	a := namedOrigin(t, "A", release, arrived)
	dir := t.TempDir()
	cfg := writeConfig(t, "origin: "+a.URL+"\nlisten: 127.0.0.1:0\nadmin: 127.0.0.1:0\n")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ready := make(chan addrs, 1)
	done := make(chan error, 1)
	var logs strings.Builder
	var logMu sync.Mutex
	go func() {
		done <- serve(ctx, []string{"-config", cfg, "-data-dir", dir}, io.Discard, writerFunc(func(p []byte) (int, error) {
			logMu.Lock()
			defer logMu.Unlock()
			return logs.Write(p)
		}), func(ad addrs) { ready <- ad })
	}()
	var old addrs
	select {
	case old = <-ready:
	case err := <-done:
		t.Fatal(err)
	}
	slow := make(chan string, 1)
	go func() {
		resp, err := http.Get("http://" + old.proxy + "/slow")
		if err != nil {
			slow <- err.Error()
			return
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		slow <- string(body)
	}()
	<-arrived

	// "localhost:0" is another address than "127.0.0.1:0": new listeners.
	if err := os.WriteFile(cfg, []byte("origin: "+a.URL+"\nlisten: localhost:0\nadmin: localhost:0\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tok, err := os.ReadFile(dir + "/purge-token")
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodPost, "http://"+old.admin+"/reload", nil)
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(tok)))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var res reloadResult
	err = json.NewDecoder(resp.Body).Decode(&res)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("POST /reload: %d, %v", resp.StatusCode, err)
	}
	var newProxy, newAdmin string
	for _, l := range res.Listeners {
		switch l.Role {
		case "proxy":
			newProxy = l.Address
		case "admin":
			newAdmin = l.Address
		}
	}
	if newProxy == old.proxy || newAdmin == old.admin || newProxy == "" {
		t.Fatalf("listeners after the reload: %+v (old %+v)", res.Listeners, old)
	}
	if _, body := get(t, "http://"+newProxy+"/x"); body != "A" {
		t.Errorf("new proxy listener: %q", body)
	}
	if code, rd := readyz(t, newAdmin); code != http.StatusOK || rd.Config.Generation != 1 {
		t.Errorf("new admin listener: /readyz %d %+v", code, rd.Config)
	}
	close(release)
	if got := <-slow; got != "A" {
		t.Errorf("request in progress on the old listener: %q, want A", got)
	}
	waitFor(t, "the old proxy listener closes", func() bool {
		_, err := http.Get("http://" + old.proxy + "/x")
		return err != nil
	})
	cancel()
	if err := <-done; err != nil {
		t.Errorf("serve: %v", err)
	}
}

// writerFunc adapts a function to io.Writer.
type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// TestReloadChangedListenerKeepsItsSocket changes a listener's settings
// (h2c on) but not its address: the new listener set takes over the same
// socket, so the port stays and it never stops accepting.
func TestReloadChangedListenerKeepsItsSocket(t *testing.T) {
	a := namedOrigin(t, "A", nil, nil)
	dir := t.TempDir()
	cfg := writeConfig(t, "origin: "+a.URL+"\nlisteners:\n  - address: 127.0.0.1:0\n")
	r, err := startServeNoListen(t, "-config", cfg, "-admin", "127.0.0.1:0", "-data-dir", dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cfg, []byte("origin: "+a.URL+"\nlisteners:\n  - address: 127.0.0.1:0\n    h2c: true\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var out, errb strings.Builder
	if err := run(context.Background(), []string{"reload", "-admin", r.admin, "-data-dir", dir}, &out, &errb); err != nil {
		t.Fatalf("reload: %v", err)
	}
	if !strings.Contains(out.String(), "proxy listener on "+r.proxy) {
		t.Errorf("after the reload the proxy listens elsewhere:\n%s\nwant %s", out.String(), r.proxy)
	}
	for range 20 {
		if _, body := get(t, "http://"+r.proxy+"/x"); body != "A" {
			t.Fatalf("on the kept socket: %q", body)
		}
	}
}

// TestReloadTakesAReplacedCertificate replaces the TLS certificate files
// at the same paths and reloads: handshakes present the new certificate,
// on the same port, as soon as the old listener set has shut down.
func TestReloadTakesAReplacedCertificate(t *testing.T) {
	a := namedOrigin(t, "A", nil, nil)
	dir, certDir := t.TempDir(), t.TempDir()
	certFile, keyFile := selfSigned(t, certDir)
	cfg := writeConfig(t, "origin: "+a.URL+"\nlisten: 127.0.0.1:0\ntls: {cert: "+certFile+", key: "+keyFile+"}\n")
	r, err := startServeNoListen(t, "-config", cfg, "-admin", "127.0.0.1:0", "-data-dir", dir)
	if err != nil {
		t.Fatal(err)
	}
	serial := func() string {
		t.Helper()
		c, err := tls.Dial("tcp", r.proxy, &tls.Config{InsecureSkipVerify: true})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		return string(c.ConnectionState().PeerCertificates[0].Raw)
	}
	before := serial()
	selfSigned(t, certDir) // new files, new key, at the same paths
	var out, errb strings.Builder
	if err := run(context.Background(), []string{"reload", "-admin", r.admin, "-data-dir", dir}, &out, &errb); err != nil {
		t.Fatalf("reload: %v", err)
	}
	// The old listener set may accept a last connection or two until it
	// has shut down; from then on the shared socket is the new set's.
	waitFor(t, "the listener presents the new certificate", func() bool { return serial() != before })
}
