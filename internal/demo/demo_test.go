package demo

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
)

// TestEveryPathAnswers fetches every page the index lists over real
// loopback HTTP: each answers 200 with a body whose length matches
// Content-Length when one is sent, and the Cache-Control the index
// promises.
func TestEveryPathAnswers(t *testing.T) {
	o := New(0)
	ts := httptest.NewServer(o)
	defer ts.Close()
	wantCC := map[string]string{
		"/page/1":         "public, max-age=60",
		"/api/items.json": "max-age=5, stale-while-revalidate=30, stale-if-error=300",
		"/hello":          "max-age=30",
		"/big?mib=8":      "public, max-age=300",
		"/private":        "private, max-age=60",
		"/nostore":        "no-store",
	}
	for _, p := range append([]struct{ Path, What string }{{"/", "index"}}, Paths...) {
		t.Run(p.Path, func(t *testing.T) {
			resp, err := http.Get(ts.URL + p.Path)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, err := io.ReadAll(resp.Body)
			if err != nil {
				t.Fatalf("reading the body: %v", err)
			}
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d, want 200", resp.StatusCode)
			}
			if cl := resp.Header.Get("Content-Length"); cl != "" && cl != strconv.Itoa(len(body)) {
				t.Errorf("Content-Length %s, body %d bytes", cl, len(body))
			}
			if want, ok := wantCC[p.Path]; ok && resp.Header.Get("Cache-Control") != want {
				t.Errorf("Cache-Control %q, want %q", resp.Header.Get("Cache-Control"), want)
			}
		})
	}
	if n := o.Hits.Load(); n != int64(len(Paths)+1) {
		t.Errorf("Hits = %d, want %d", n, len(Paths)+1)
	}
}

// TestBigIsExactlyMiB checks /big's size and clamping: ?mib=N sends N MiB
// of 1 KiB lines; a missing or bad value sends 8 MiB.
func TestBigIsExactlyMiB(t *testing.T) {
	ts := httptest.NewServer(New(0))
	defer ts.Close()
	for _, tc := range []struct {
		query string
		mib   int
	}{{"?mib=1", 1}, {"?mib=3", 3}, {"", 8}, {"?mib=-2", 8}, {"?mib=x", 8}} {
		resp, err := http.Get(ts.URL + "/big" + tc.query)
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatalf("/big%s: reading: %v", tc.query, err)
		}
		if len(body) != tc.mib<<20 {
			t.Errorf("/big%s: %d bytes, want %d", tc.query, len(body), tc.mib<<20)
		}
		lines := strings.Split(strings.TrimSuffix(string(body), "\n"), "\n")
		if len(lines) != tc.mib<<10 || len(lines[0]) != 1023 {
			t.Errorf("/big%s: %d lines of %d bytes, want %d lines of 1023 bytes and a newline", tc.query, len(lines), len(lines[0]), tc.mib<<10)
		}
	}
}

// TestDelayHonoursClientDeparture checks that a client that leaves during
// the delay gets no page and holds nothing.
func TestDelayHonoursClientDeparture(t *testing.T) {
	o := New(0)
	req := httptest.NewRequest(http.MethodGet, "/hello", nil)
	ctx, cancel := context.WithCancel(req.Context())
	cancel()
	o.Delay = 1 << 62 // would never finish on its own
	rec := httptest.NewRecorder()
	o.ServeHTTP(rec, req.WithContext(ctx))
	if rec.Body.Len() != 0 {
		t.Errorf("a departed client got %q", rec.Body.String())
	}
}
