package h1

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
)

// presetCases are header fields a handler sends through the header map or
// as preset Fields, with the fields it sets in the map either way (extra).
var presetCases = []struct {
	name   string
	fields http.Header
	extra  http.Header
	status int
	body   string
}{
	{
		name: "hit",
		fields: http.Header{
			"Cache-Control": {"public, max-age=3600"}, "Content-Type": {"application/octet-stream"},
			"Etag": {`"6b0f1e86-400"`}, "Last-Modified": {"Tue, 01 Dec 2026 19:21:00 GMT"},
			"Server": {"nginx/1.22.1"}, "Accept-Ranges": {"bytes"}, "Via": {"1.1 origin", "1.1 cellar"},
			"Set-Cookie": {"a=1", "b=2"}, "Vary": {"Accept-Encoding"}, "Date": {"Tue, 01 Dec 2026 21:00:00 GMT"},
		},
		extra:  http.Header{"Age": {"12"}, "Cache-Status": {"cellar; hit; ttl=3588"}, "Content-Length": {"5"}},
		status: 200, body: "hello",
	},
	{
		name:   "no content type, no date: sniffed, dated",
		fields: http.Header{"Etag": {`W/"x"`}},
		extra:  http.Header{"Content-Length": {"13"}},
		status: 200, body: "<html></html>",
	},
	{
		name:   "length unknown",
		fields: http.Header{"Content-Type": {"text/plain"}, "Date": {"Tue, 01 Dec 2026 21:00:00 GMT"}},
		status: 200, body: "hello",
	},
	{
		name: "values net/http would trim or mend, names it would skip",
		fields: http.Header{
			"X-Padded": {"  a b \t"}, "X-Split": {"a\r\nSet-Cookie: x=1"}, "X-Empty": {""}, "X-None": {},
			"Bad Name": {"x"}, "Date": {"Tue, 01 Dec 2026 21:00:00 GMT"},
		},
		extra:  http.Header{"Content-Length": {"5"}},
		status: 200, body: "hello",
	},
	{
		name:   "a field added after the preset's (a rule's Add)",
		fields: http.Header{"Vary": {"Accept-Encoding"}, "Cache-Control": {"max-age=60"}, "Date": {"Tue, 01 Dec 2026 21:00:00 GMT"}},
		extra:  http.Header{"Vary": {"Origin"}, "X-Frame-Options": {"DENY"}, "Content-Length": {"5"}},
		status: 200, body: "hello",
	},
	{
		name:   "no body",
		fields: http.Header{"Etag": {`"v1"`}, "Date": {"Tue, 01 Dec 2026 21:00:00 GMT"}},
		status: 304,
	},
	{
		name:   "stored 404",
		fields: http.Header{"Content-Type": {"text/html"}, "Date": {"Tue, 01 Dec 2026 21:00:00 GMT"}},
		extra:  http.Header{"Content-Length": {"5"}},
		status: 404, body: "gone!",
	},
}

// presetHandler answers /map/N with presetCases[N]'s fields in the header
// map and /preset/N with them preset, and the extra ones in the map.
func presetHandler(t *testing.T) http.Handler {
	fields := make([]*Fields, len(presetCases))
	for i, tc := range presetCases {
		if fields[i] = NewFields(tc.fields); fields[i] == nil {
			t.Fatalf("%s: NewFields refused %v", tc.name, tc.fields)
		}
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var i int
		how, _, _ := strings.Cut(r.URL.Path[1:], "/")
		fmt.Sscanf(r.URL.Path[len(how)+2:], "%d", &i)
		tc := presetCases[i]
		h := w.Header()
		if how == "preset" {
			if !w.(*response).PresetFields(fields[i]) {
				t.Errorf("%s: PresetFields refused before the header was out", tc.name)
			}
		} else {
			for k, vs := range tc.fields {
				h[k] = vs
			}
		}
		for k, vs := range tc.extra {
			h[k] = append(h[k], vs...)
		}
		w.WriteHeader(tc.status)
		io.WriteString(w, tc.body)
	})
}

// headerOf returns the status line and the field lines of the response
// that begins raw, grouped by name in the order of their names (a server
// may send fields of different names in any order; those of one name
// keep theirs), and the rest of raw. The engine's own Date is written D.
func headerOf(t *testing.T, raw string) (string, string) {
	t.Helper()
	head, rest, ok := strings.Cut(raw, "\r\n\r\n")
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
		if k == "Date" && !strings.Contains(l, "21:00:00") {
			l = "Date: D"
		}
		byName[k] = append(byName[k], l)
	}
	slices.Sort(names)
	out := []string{lines[0]}
	for _, k := range names {
		out = append(out, byName[k]...)
	}
	return strings.Join(out, "\n"), rest
}

// TestPresetFieldsAreSentAsTheHeaderMapWouldSendThem: a response whose
// fields are preset (a cache hit's stored fields) has the same status line,
// fields and body as the one whose handler sets them in the header map,
// for GET and HEAD, HTTP/1.1 and HTTP/1.0.
func TestPresetFieldsAreSentAsTheHeaderMapWouldSendThem(t *testing.T) {
	_, addr := start(t, nil, presetHandler(t))
	for i, tc := range presetCases {
		for _, req := range []string{"GET %s HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", "HEAD %s HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", "GET %s HTTP/1.0\r\n\r\n"} {
			viaMap := exchange(t, addr, fmt.Sprintf(req, fmt.Sprintf("/map/%d", i)))
			preset := exchange(t, addr, fmt.Sprintf(req, fmt.Sprintf("/preset/%d", i)))
			mh, mb := headerOf(t, viaMap)
			ph, pb := headerOf(t, preset)
			if mh != ph || mb != pb {
				t.Errorf("%s, %q:\nthrough the map:\n%s\n%q\npreset:\n%s\n%q", tc.name, strings.Fields(req)[0]+" "+strings.Fields(req)[2], mh, mb, ph, pb)
			}
		}
	}
}

// TestPresetFieldsLastOneResponse: the next response on the connection
// sends its own fields only, and a preset after the header is out is
// refused.
func TestPresetFieldsLastOneResponse(t *testing.T) {
	f := NewFields(http.Header{"X-Preset": {"1"}})
	refused := make(chan bool, 1)
	_, addr := start(t, nil, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/preset" {
			w.(*response).PresetFields(f)
		}
		io.WriteString(w, r.URL.Path)
		if r.URL.Path == "/late" {
			w.(http.Flusher).Flush()
			refused <- !w.(*response).PresetFields(f)
		}
	}))
	got := exchange(t, addr, "GET /preset HTTP/1.1\r\nHost: a\r\n\r\nGET /next HTTP/1.1\r\nHost: a\r\n\r\nGET /late HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
	br := bufio.NewReader(strings.NewReader(got))
	for i, want := range []string{"1", "", ""} {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("%v\n%s", err, got)
		}
		io.Copy(io.Discard, resp.Body)
		if v := resp.Header.Get("X-Preset"); v != want {
			t.Errorf("response %d: X-Preset %q, want %q", i+1, v, want)
		}
	}
	if !<-refused {
		t.Error("PresetFields took fields after the header was out")
	}
}

// TestNewFieldsLeavesFramingToTheHeaderMap: fields the engine reads to
// frame the response, to close the connection or to send trailers are not
// taken.
func TestNewFieldsLeavesFramingToTheHeaderMap(t *testing.T) {
	for _, k := range []string{"Content-Length", "Transfer-Encoding", "Connection", "Trailer", http.TrailerPrefix + "X"} {
		if f := NewFields(http.Header{"Etag": {`"v"`}, k: {"1"}}); f != nil {
			t.Errorf("NewFields took %s", k)
		}
	}
	f := NewFields(http.Header{"Etag": {`"v"`}, "Via": {"1.1 a", "1.1 b"}, "X-Note": {"Date: today"}})
	for name, want := range map[string]bool{"Etag": true, "Via": true, "X-Note": true, "Date": false, "Vi": false, "1.1 b": false, "": false} {
		if f.Has(name) != want {
			t.Errorf("Has(%q) = %v, want %v", name, !want, want)
		}
	}
}

// BenchmarkHitHeader serves keep-alive GETs answered as a cache hit is
// (presetCases[0]: ten stored fields, Age, Cache-Status, Content-Length),
// with the stored fields in the header map or preset.
func BenchmarkHitHeader(b *testing.B) {
	tc := presetCases[0]
	f := NewFields(tc.fields)
	body := []byte(tc.body)
	for _, preset := range []bool{false, true} {
		b.Run(map[bool]string{false: "map", true: "preset"}[preset], func(b *testing.B) {
			s := New(&http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				h := w.Header()
				if preset {
					w.(*response).PresetFields(f)
				} else {
					for k, vs := range tc.fields {
						h[k] = vs
					}
				}
				for k, vs := range tc.extra {
					h[k] = vs
				}
				w.Write(body)
			})})
			b.ReportAllocs()
			const n = 100
			for b.Loop() {
				servePipelined(s, wrkRequest, n)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/request")
		})
	}
}
