package purge_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/cellar-cache/cellar/cache"
	"github.com/cellar-cache/cellar/purge"
	"github.com/cellar-cache/cellar/store"
)

const crashDirEnv = "CELLAR_PURGE_CRASH_DIR"

// TestPurgeCrashHelper is the child process of TestPurgeSurvivesKillNine:
// it stores objects, purges some through the API, says so and waits to be
// killed.
func TestPurgeCrashHelper(t *testing.T) {
	dir := os.Getenv(crashDirEnv)
	if dir == "" {
		t.Skip("runs as the child of TestPurgeSurvivesKillNine")
	}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	st, err := store.Open(store.Options{Dir: dir, MemoryBytes: 8 << 20, DiskBytes: 64 << 20, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, o := range []struct{ key, tag string }{
		{"http://cellar.test/a", "product-4"},
		{"http://cellar.test/a\x00e=gzip", "product-4"},
		{"http://cellar.test/b", "product-42"},
		{"http://cellar.test/c", "product-4"},
	} {
		w, err := st.Create(ctx, o.key, cache.Meta{Status: 200}, store.CreateOptions{Tags: []string{o.tag}, SizeHint: -1})
		if err != nil {
			t.Fatal(err)
		}
		w.Write([]byte("body of " + o.key))
		if _, err := w.Commit(ctx); err != nil {
			t.Fatal(err)
		}
	}
	api, err := purge.New(st, purge.Options{Tokens: []string{testToken}, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []struct{ kind, body string }{
		{"tag", `{"tags":["product-4"]}`},
		{"url", `{"urls":["http://cellar.test/c"]}`}, // already gone: 0
		{"url", `{"urls":["http://cellar.test/b"],"soft":true}`},
	} {
		req := httptest.NewRequest(http.MethodPost, "/purge/"+q.kind, strings.NewReader(q.body))
		req.Header.Set("Authorization", "Bearer "+testToken)
		rec := httptest.NewRecorder()
		api.Handler().ServeHTTP(rec, req)
		if rec.Code != 200 {
			t.Fatalf("%s: %d %s", q.body, rec.Code, rec.Body)
		}
	}
	fmt.Println("PURGED")
	select {} // killed here, store open
}

// TestPurgeSurvivesKillNine purges in a child process, kills it with
// SIGKILL while its store is open, and checks after reopening that the
// purged objects (all variants) are gone, the soft-purged one is Invalid,
// and the tag index has no dangling entries.
func TestPurgeSurvivesKillNine(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a child process")
	}
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestPurgeCrashHelper$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashDirEnv+"="+dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(out)
	purged := false
	var lines []string
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if sc.Text() == "PURGED" {
			purged = true
			break
		}
	}
	cmd.Process.Kill()
	cmd.Wait()
	if !purged {
		t.Fatalf("the child did not purge:\n%s", strings.Join(lines, "\n"))
	}

	st, err := store.Open(store.Options{Dir: dir, MemoryBytes: 8 << 20, DiskBytes: 64 << 20, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ctx := context.Background()
	for _, k := range []string{"http://cellar.test/a", "http://cellar.test/a\x00e=gzip", "http://cellar.test/c"} {
		if _, err := st.Get(ctx, k); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("Get(%q) after kill -9: %v; it was purged", k, err)
		}
	}
	if o, err := st.Get(ctx, "http://cellar.test/b"); err != nil || !o.Meta.Invalid {
		t.Errorf("soft-purged /b after kill -9: %+v, %v; want it kept, Invalid", o, err)
	}
	if n, err := st.Purge(ctx, store.Selector{Tag: "product-4"}, false); err != nil || n != 0 {
		t.Errorf("purging product-4 again: %d, %v; want 0", n, err)
	}
	if n, err := st.Purge(ctx, store.Selector{Tag: "product-42"}, false); err != nil || n != 1 {
		t.Errorf("purging product-42: %d, %v; want 1 (/b)", n, err)
	}
}
