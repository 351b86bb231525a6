package main

import (
	"bufio"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// idOrigin is an origin that remembers the X-Request-ID of each request.
type idOrigin struct {
	*httptest.Server
	mu  sync.Mutex
	ids map[string]string // path -> X-Request-ID received
}

func newIDOrigin(t *testing.T) *idOrigin {
	o := &idOrigin{ids: map[string]string{}}
	o.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		o.mu.Lock()
		o.ids[r.URL.Path] = r.Header.Get("X-Request-Id")
		o.mu.Unlock()
		w.Header().Set("Cache-Control", "max-age=60")
		io.WriteString(w, "body of "+r.URL.Path)
	}))
	t.Cleanup(o.Close)
	return o
}

func (o *idOrigin) id(path string) string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.ids[path]
}

// request makes a GET and returns its Cache-Status.
func request(t *testing.T, url string, h map[string]string) string {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	for k, v := range h {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.Header.Get("Cache-Status")
}

// accessLines returns the access lines of a text log.
func accessLines(log string) []string {
	var out []string
	for _, l := range strings.Split(log, "\n") {
		if strings.Contains(l, " msg=access ") {
			out = append(out, l)
		}
	}
	return out
}

func TestAccessLogTextHasEveryFieldAndTheRequestIDReachesTheOrigin(t *testing.T) {
	origin := newIDOrigin(t)
	cfg := writeConfig(t, "trusted_proxies: [127.0.0.1]\n")
	r, err := startServe(t, "-config", cfg, "-origin", origin.URL, "-data-dir", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + r.proxy
	// The test client is a trusted proxy: its id is kept.
	request(t, base+"/given", map[string]string{"X-Request-ID": "client-id-1", "User-Agent": "test agent/1", "Referer": "http://ref.example/"})
	request(t, base+"/made", nil)
	// Then a hit, once the fill is stored (a request during the fill
	// would be collapsed onto it).
	for i := 0; !strings.Contains(request(t, base+"/made", nil), "hit"); i++ {
		if i == 1000 {
			t.Fatal("no hit after 1000 requests")
		}
		time.Sleep(time.Millisecond)
	}
	r.stop(t) // the lines are written by shutdown at the latest

	lines := accessLines(r.log.String())
	if len(lines) < 3 {
		t.Fatalf("%d access lines, want 3 or more:\n%s", len(lines), r.log)
	}
	// Each request's line, by what it was (the order in which handlers
	// end is not the clients' order).
	var given, madeLine, hit string
	for _, l := range lines {
		switch {
		case strings.Contains(l, "uri=/given"):
			given = l
		case strings.Contains(l, "uri=/made") && strings.Contains(l, "stored"):
			madeLine = l
		case strings.Contains(l, "uri=/made") && strings.Contains(l, `cache="cellar; hit`):
			hit = l
		}
	}
	lines = []string{given, madeLine, hit}
	for _, want := range []string{
		"method=GET", "uri=/given", "proto=HTTP/1.1", "status=200", "bytes=14", `cache="cellar; fwd=uri-miss; fwd-status=200; stored`,
		"remote=127.0.0.1", `user_agent="test agent/1"`, "referer=http://ref.example/",
		"origin=" + strings.TrimPrefix(origin.URL, "http://"), "origin_ms=", "request_id=client-id-1",
	} {
		if !strings.Contains(lines[0], want) {
			t.Errorf("line %q lacks %q", lines[0], want)
		}
	}
	if got := origin.id("/given"); got != "client-id-1" {
		t.Errorf("origin got X-Request-ID %q, want the client's", got)
	}
	madeID := regexp.MustCompile(`request_id=(\S+)`).FindStringSubmatch(lines[1])
	if madeID == nil || origin.id("/made") != madeID[1] {
		t.Fatalf("made id: the line says %v, the origin got %q", madeID, origin.id("/made"))
	}
	if !strings.Contains(lines[2], `cache="cellar; hit`) || strings.Contains(lines[2], "origin=") {
		t.Errorf("the hit's line %q: want a hit and no origin", lines[2])
	}
	if id := regexp.MustCompile(`request_id=(\S+)`).FindStringSubmatch(lines[2]); id == nil || id[1] == madeID[1] {
		t.Errorf("the hit's line %q: want an id of its own", lines[2])
	}
}

func TestAccessLogUntrustedClientsIDIsReplaced(t *testing.T) {
	origin := newIDOrigin(t)
	cfg := writeConfig(t, "access_log_format: json\n") // trusting no proxy, the default
	r, err := startServe(t, "-config", cfg, "-origin", origin.URL, "-data-dir", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	request(t, "http://"+r.proxy+"/x", map[string]string{"X-Request-ID": "forged", "X-Forwarded-For": "203.0.113.9"})
	r.stop(t)
	var e map[string]any
	for _, l := range strings.Split(r.log.String(), "\n") {
		if strings.HasPrefix(l, `{"time"`) {
			if err := json.Unmarshal([]byte(l), &e); err != nil {
				t.Fatalf("json line %s: %v", l, err)
			}
		}
	}
	if e == nil {
		t.Fatalf("no json access line:\n%s", r.log)
	}
	if e["request_id"] == "forged" || origin.id("/x") != e["request_id"] {
		t.Errorf("untrusted client: line id %v, origin got %q; want one cellar made, the same in both", e["request_id"], origin.id("/x"))
	}
	if e["remote"] != "127.0.0.1" {
		t.Errorf("remote = %v: an untrusted peer's X-Forwarded-For was believed", e["remote"])
	}
}

func TestAccessLogRealClientBehindATrustedProxy(t *testing.T) {
	origin := newIDOrigin(t)
	cfg := writeConfig(t, "trusted_proxies: [127.0.0.0/8]\n")
	r, err := startServe(t, "-config", cfg, "-origin", origin.URL, "-data-dir", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	// A client (198.51.100.4) that forged a first hop, then a trusted proxy
	// on loopback (which is the peer).
	request(t, "http://"+r.proxy+"/x", map[string]string{"X-Forwarded-For": "10.9.9.9, 198.51.100.4, 127.0.0.2"})
	r.stop(t)
	lines := accessLines(r.log.String())
	if len(lines) != 1 || !strings.Contains(lines[0], " remote=198.51.100.4 ") {
		t.Errorf("want remote=198.51.100.4 (the nearest untrusted hop) in %q", lines)
	}
}

func TestAccessLogFileRotatesOnSIGUSR1AndLosesNothingAtShutdown(t *testing.T) {
	origin := newIDOrigin(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "access.log")
	r, err := startServe(t, "-origin", origin.URL, "-data-dir", t.TempDir(), "-access-log-path", path, "-access-log-format", "combined")
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + r.proxy
	request(t, base+"/before", map[string]string{"User-Agent": "ua"})
	// The line is written within the writer's interval (a streamed
	// response may reach the client before its handler has logged it).
	deadline := time.Now().Add(20 * time.Second)
	for b, _ := os.ReadFile(path); !strings.Contains(string(b), "/before"); b, _ = os.ReadFile(path) {
		if time.Now().After(deadline) {
			t.Fatal("the line was not written within 20 s")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(os.Getpid(), syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	deadline = time.Now().Add(20 * time.Second)
	for !strings.Contains(r.log.String(), "access log reopened") {
		if time.Now().After(deadline) {
			t.Fatalf("no reopen after SIGUSR1:\n%s", r.log)
		}
		time.Sleep(5 * time.Millisecond)
	}
	const n = 500
	for i := range n {
		request(t, base+"/after/"+string(rune('a'+i%26)), nil)
	}
	r.stop(t)

	old, _ := os.ReadFile(path + ".1")
	want := regexp.MustCompile(`^127\.0\.0\.1 - - \[\d\d/\w{3}/\d{4}:\d\d:\d\d:\d\d [+-]\d{4}\] "GET /before HTTP/1\.1" 200 15 "-" "ua"\n$`)
	if !want.Match(old) {
		t.Errorf("rotated file %q is not the one combined line of the request before rotation", old)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	count := 0
	for sc := bufio.NewScanner(f); sc.Scan(); count++ {
		if !strings.Contains(sc.Text(), `"GET /after/`) {
			t.Errorf("unexpected line %q", sc.Text())
		}
	}
	if count != n {
		t.Errorf("%d lines in the new file after shutdown, want %d", count, n)
	}
	if strings.Contains(r.log.String(), " msg=access ") {
		t.Error("access lines went to stderr as well as to the file")
	}
}

func TestAccessLogBadFormatIsAClearError(t *testing.T) {
	_, err := startServe(t, "-config", writeConfig(t, "access_log_format: xml\n"), "-data-dir", t.TempDir())
	if err == nil || !strings.Contains(err.Error(), "line 1: access_log_format") || !strings.Contains(err.Error(), "text, json or combined") {
		t.Errorf("error = %v", err)
	}
	_, err = startServe(t, "-access-log-path", filepath.Join(t.TempDir(), "missing", "a.log"), "-data-dir", t.TempDir())
	if err == nil || !strings.Contains(err.Error(), "access log") {
		t.Errorf("error for an access log in a missing directory = %v", err)
	}
}
