package proxy

import (
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cellar-cache/cellar/internal/accesslog"
	"github.com/cellar-cache/cellar/internal/h1"
)

// mapOnly hides PresetFields: the hit's fields go through the header map.
type mapOnly struct{ http.ResponseWriter }

func (w mapOnly) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// presetCount counts the PresetFields calls that reached the engine.
type presetCount struct {
	http.ResponseWriter
	n *atomic.Int64
}

func (w presetCount) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w presetCount) PresetFields(f *h1.Fields) bool {
	ok := presetFields(w.ResponseWriter, f)
	if ok {
		w.n.Add(1)
	}
	return ok
}

// wholeResponse sends req to the rig's proxy on a new connection and
// returns every byte of the answer (the request asks to close).
func wholeResponse(t *testing.T, r *rig, req string) string {
	t.Helper()
	c, err := net.Dial("tcp", r.front.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(c)
	return string(b)
}

// groupedHeader returns raw's status line and field lines grouped by name
// in the order of the names (a server may send fields of different names
// in any order; those of one name keep theirs), then the body.
func groupedHeader(t *testing.T, raw string) string {
	t.Helper()
	head, body, ok := strings.Cut(raw, "\r\n\r\n")
	if !ok {
		t.Fatalf("no end of header in %q", raw)
	}
	lines := strings.Split(head, "\r\n")
	byName := map[string][]string{}
	var names []string
	for _, l := range lines[1:] {
		k, _, _ := strings.Cut(l, ":")
		if byName[k] == nil {
			names = append(names, k)
		}
		byName[k] = append(byName[k], l)
	}
	slices.Sort(names)
	out := []string{lines[0]}
	for _, k := range names {
		out = append(out, byName[k]...)
	}
	return strings.Join(out, "\n") + "\n\n" + body
}

// TestHitSendsTheSameResponseWithPresetFields: a hit whose stored fields
// the HTTP/1.1 engine sends as ready-made wire bytes (h1.Fields) sends the
// same status line, fields (of each name, the same lines in the same order)
// and body as one whose fields go through the header map: with Set-Cookie
// stripped, Vary, an origin's Age, coding variants, a stored 404, HEAD,
// 304, ranges, hits from disk after a restart, and response header rules
// that add fields (the preset is used) or remove and replace stored ones
// (it is not).
func TestHitSendsTheSameResponseWithPresetFields(t *testing.T) {
	html := strings.Repeat("<p>cellar caches this page</p>\n", 100)
	origin := func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Cache-Control", "public, max-age=3600") // public: stored with Set-Cookie
		h.Set("Last-Modified", "Tue, 01 Dec 2026 19:00:00 GMT")
		switch r.URL.Path {
		case "/octet":
			h.Set("Content-Type", "application/octet-stream")
			h.Set("Etag", `"v1"`)
			h.Set("Set-Cookie", "session=1")
			h.Set("Vary", "Origin")
			h.Set("Age", "5")
			h["X-Multi"] = []string{"a", "b"}
			h.Set("X-Padded", "  spaced ")
			io.WriteString(w, "0123456789abcdefghij")
		case "/html":
			h.Set("Content-Type", "text/html; charset=utf-8")
			h.Set("Etag", `W/"h1"`)
			io.WriteString(w, html)
		case "/gone":
			h.Set("Content-Type", "text/plain")
			w.WriteHeader(http.StatusNotFound)
			io.WriteString(w, "not here")
		}
	}
	requests := []struct{ name, raw string }{
		{"GET", "GET /octet HTTP/1.1\r\nHost: " + testHost + "\r\n"},
		{"HEAD", "HEAD /octet HTTP/1.1\r\nHost: " + testHost + "\r\n"},
		{"HTTP/1.0", "GET /octet HTTP/1.0\r\nHost: " + testHost + "\r\n"},
		{"If-None-Match", "GET /octet HTTP/1.1\r\nHost: " + testHost + "\r\nIf-None-Match: \"v1\"\r\n"},
		{"Range", "GET /octet HTTP/1.1\r\nHost: " + testHost + "\r\nRange: bytes=2-5\r\n"},
		{"br variant", "GET /html HTTP/1.1\r\nHost: " + testHost + "\r\nAccept-Encoding: br\r\n"},
		{"gzip variant", "GET /html HTTP/1.1\r\nHost: " + testHost + "\r\nAccept-Encoding: gzip\r\n"},
		{"identity of a compressible body", "GET /html HTTP/1.1\r\nHost: " + testHost + "\r\n"},
		{"stored 404", "GET /gone HTTP/1.1\r\nHost: " + testHost + "\r\n"},
	}
	for _, tc := range []struct {
		name   string
		rules  HeaderOps
		preset bool // the fields are preset on a plain GET
	}{
		{"no rules", HeaderOps{}, true},
		{"rules that add", HeaderOps{Add: map[string]string{"Vary": "Cookie", "X-Frame-Options": "DENY"}, Set: map[string]string{"X-Served-By": "cellar"}}, true},
		{"rules that remove or replace a stored field", HeaderOps{Remove: []string{"Etag"}, Set: map[string]string{"Cache-Control": "no-cache"}}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var viaMap atomic.Bool
			var presets atomic.Int64
			on := true
			r := newRig(t, origin, withProxyOptions(func(o *Options) {
				o.ResponseHeaders = tc.rules
				o.AccessLog, o.AccessLogOutput = &on, accesslog.New(io.Discard, accesslog.Options{})
			}), withFront(func(h http.Handler) http.Handler {
				// As cellar serve runs it: in Instrument's writer.
				h = h.(*Server).metrics.Instrument(h, nil)
				return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
					if viaMap.Load() {
						h.ServeHTTP(mapOnly{w}, req)
					} else {
						h.ServeHTTP(presetCount{w, &presets}, req)
					}
				})
			}))
			r.fillCodings("/html")
			for _, p := range []string{"/octet", "/gone"} {
				r.get(p)
			}
			r.waitIdle()
			for _, restarted := range []bool{false, true} {
				if restarted {
					r.restart()
				}
				for _, req := range requests {
					raw := req.raw + "Connection: close\r\n\r\n"
					viaMap.Store(true)
					want := groupedHeader(t, wholeResponse(t, r, raw))
					viaMap.Store(false)
					before := presets.Load()
					got := groupedHeader(t, wholeResponse(t, r, raw))
					if !strings.Contains(got, "; hit") {
						t.Errorf("%s (restarted %v): not a hit:\n%s", req.name, restarted, got)
					}
					if got != want {
						t.Errorf("%s (restarted %v):\nthrough the map:\n%s\npreset:\n%s", req.name, restarted, want, got)
					}
					preset := presets.Load() > before
					if plain := !strings.Contains(req.raw, "If-") && !strings.Contains(req.raw, "Range"); preset != (tc.preset && plain) {
						t.Errorf("%s (restarted %v): fields preset %v, want %v", req.name, restarted, preset, tc.preset && plain)
					}
				}
			}
		})
	}
}
