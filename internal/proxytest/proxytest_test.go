package proxytest

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

func TestSyncBufferKeepsEveryConcurrentWrite(t *testing.T) {
	var b SyncBuffer
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for j := range 100 {
				fmt.Fprintf(&b, "%d-%d\n", i, j)
			}
		})
	}
	wg.Wait()
	if n := strings.Count(b.String(), "\n"); n != 800 {
		t.Fatalf("%d lines, want 800", n)
	}
}

func TestDoSendsHostAndHeaderAndReadsTheBody(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%s %s %s %s", r.Method, r.Host, r.URL.Path, r.Header.Get("X-Test"))
	}))
	defer srv.Close()
	resp, body := Do(t, srv.Client(), srv.URL, "cellar.test", http.MethodPut, "/p", http.Header{"X-Test": {"v"}})
	if resp.StatusCode != 200 || body != "PUT cellar.test /p v" {
		t.Fatalf("%d %q", resp.StatusCode, body)
	}
}
