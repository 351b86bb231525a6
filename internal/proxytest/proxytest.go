// Package proxytest holds the helpers that the end-to-end tests of several
// packages (proxy, purge, cmd/cellar) share: a log sink safe for a
// server's goroutines, a client call through a proxy under test, and a
// keep-alive client of hits that counts what the server allocates per hit
// (hits.go).
package proxytest

import (
	"bytes"
	"io"
	"net/http"
	"sync"
	"testing"
)

// SyncBuffer is an io.Writer that many goroutines may write to at once,
// for collecting a server's logs in a test.
type SyncBuffer struct {
	mu sync.Mutex // protects b
	b  bytes.Buffer
}

// Write appends p.
func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// String returns everything written so far.
func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Do sends method path to the server at base with client, Host set to host
// (a fixed Host keeps cache keys stable across restarts, whose servers
// listen on new ports) and header h, and returns the response with its
// whole body. A transport or body error fails the test.
func Do(t testing.TB, client *http.Client, base, host, method, path string, h http.Header) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, base+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = host
	for k, v := range h {
		req.Header[k] = v
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading body: %v", method, path, err)
	}
	return resp, string(b)
}
