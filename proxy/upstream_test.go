package proxy

import (
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"
)

// multiRig is a rig whose proxy forwards to several origins.
func multiRig(t *testing.T, extra []string, opts ...rigOption) *rig {
	opts = append(opts, func(r *rig) { r.extraOrigins = extra })
	return newRig(t, func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "first") }, opts...)
}

func TestOriginsShareTheLoadRoundRobin(t *testing.T) {
	var second atomic.Int64
	o2 := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		second.Add(1)
		io.WriteString(w, "second")
	}))
	defer o2.Close()
	r := multiRig(t, []string{o2.URL})
	for i := 0; i < 10; i++ {
		r.do(http.MethodPost, "/rr", nil)
	}
	if a, b := r.origin.hits.Load(), second.Load(); a != 5 || b != 5 {
		t.Errorf("requests per origin = %d, %d; want 5, 5", a, b)
	}
}

func TestDownOriginIsSkippedAndRequestsRetried(t *testing.T) {
	dead := httptest.NewServer(http.NotFoundHandler())
	deadURL := dead.URL
	dead.Close()
	r := multiRig(t, []string{deadURL})
	for i := 0; i < 6; i++ {
		resp, body := r.get("/d")
		if resp.StatusCode != 200 || body != "first" {
			t.Fatalf("request %d: %d %q; want the live origin's answer", i, resp.StatusCode, body)
		}
	}
	if u := r.server.transport.byHost[deadURL[len("http://"):]]; u.healthy(time.Now()) {
		t.Error("the dead origin is still marked healthy")
	}
}

func TestActiveHealthCheckTakesAFailingOriginOut(t *testing.T) {
	var sick atomic.Bool
	sick.Store(true)
	var served atomic.Int64
	o2 := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/health" && sick.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		if r.URL.Path != "/health" {
			served.Add(1)
		}
		io.WriteString(w, "second")
	}))
	defer o2.Close()
	r := multiRig(t, []string{o2.URL}, withProxyOptions(func(o *Options) {
		o.HealthCheckPath = "/health"
		o.HealthCheckInterval = 20 * time.Millisecond
	}))
	host := o2.URL[len("http://"):]
	waitFor(t, "the failing origin marked down", func() bool { return !r.server.transport.byHost[host].healthy(time.Now()) })
	for i := 0; i < 6; i++ {
		r.do(http.MethodPost, "/h", nil)
	}
	if n := served.Load(); n != 0 {
		t.Errorf("the unhealthy origin served %d requests", n)
	}
	sick.Store(false)
	waitFor(t, "the recovered origin marked up", func() bool { return r.server.transport.byHost[host].healthy(time.Now()) })
}

func TestSitesRouteByHostAndPathPrefix(t *testing.T) {
	answer := func(name string) *httptest.Server {
		s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, name) }))
		t.Cleanup(s.Close)
		return s
	}
	api, img := answer("api"), answer("img")
	r := newRig(t, func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "default") },
		withProxyOptions(func(o *Options) {
			o.Sites = []Site{
				{Hosts: []string{testHost}, PathPrefix: "/api/", Origins: []string{api.URL}},
				{Hosts: []string{"*.images.test"}, Origins: []string{img.URL}},
			}
		}))
	for _, tc := range []struct{ host, path, want string }{
		{testHost, "/api/v1", "api"},
		{testHost, "/other", "default"},
		{"a.images.test:8080", "/x.png", "img"},
		{"images.test", "/x.png", "default"},
	} {
		req, _ := http.NewRequest(http.MethodGet, r.front.URL+tc.path, nil)
		req.Host = tc.host
		resp, err := r.front.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(b) != tc.want {
			t.Errorf("%s%s went to %q, want %q", tc.host, tc.path, b, tc.want)
		}
	}
}
