package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/cellar-cache/cellar/proxy"
)

// TestInspectShowsWhatIsStored runs `cellar inspect` against a running
// cellar: a stored URL shows its key, a fresh 200 with its tag and size;
// -json gives the same report; an unknown URL shows nothing stored; a wrong
// token and a malformed URL are errors that say why.
func TestInspectShowsWhatIsStored(t *testing.T) {
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=600")
		w.Header().Set("Surrogate-Key", "shelf-1")
		io.WriteString(w, "a stored body")
	}))
	defer origin.Close()
	dir := t.TempDir()
	r, err := startServe(t, "-origin", origin.URL, "-data-dir", dir, "-memory", "8MiB", "-disk", "64MiB")
	if err != nil {
		t.Fatal(err)
	}
	u := "http://" + r.proxy + "/book"
	get(t, u)
	// A client has the body before the commit's fsync ends; a second
	// request waits for the commit (or is a hit), so the object is stored.
	get(t, u)
	ctx := context.Background()
	admin := "http://" + r.admin
	var out, errb strings.Builder
	if err := run(ctx, []string{"inspect", "-admin", admin, "-data-dir", dir, u}, &out, &errb); err != nil {
		t.Fatalf("inspect: %v\n%s", err, errb.String())
	}
	for _, want := range []string{u, "response", "200", "13", "fresh", "shelf-1"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("inspect output lacks %q:\n%s", want, out.String())
		}
	}

	out.Reset()
	if err := run(ctx, []string{"inspect", "-json", "-admin", admin, "-data-dir", dir, u, "http://" + r.proxy + "/never"}, &out, &errb); err != nil {
		t.Fatalf("inspect -json: %v", err)
	}
	var reps []proxy.InspectReport
	if err := json.Unmarshal([]byte(out.String()), &reps); err != nil {
		t.Fatalf("inspect -json output: %v\n%s", err, out.String())
	}
	if len(reps) != 2 || len(reps[0].Objects) != 1 || !reps[0].Objects[0].Fresh || reps[0].Objects[0].Size != 13 || len(reps[1].Objects) != 0 {
		t.Errorf("inspect -json reports %+v, want one fresh 13-byte object, then none", reps)
	}

	err = run(ctx, []string{"inspect", "-admin", admin, "-token", "not-the-token-at-all", u}, &out, &errb)
	if err == nil || !strings.Contains(err.Error(), "401") {
		t.Errorf("inspect with a wrong token: %v, want a 401 error", err)
	}
	err = run(ctx, []string{"inspect", "-admin", admin, "-data-dir", dir, "/book"}, &out, &errb)
	if err == nil || !strings.Contains(err.Error(), "400") {
		t.Errorf("inspect of a relative URL: %v, want a 400 error", err)
	}
	if err := run(ctx, []string{"inspect", "-data-dir", dir}, &out, &errb); err == nil {
		t.Error("inspect without a URL must fail")
	}
}
