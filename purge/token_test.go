package purge_test

import (
	"bytes"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cellar-cache/cellar/purge"
)

// TestTokenGeneratedOnceWithMode0600 checks the first-start token: created
// with mode 0600, reused on later starts, regenerated when the file is
// empty, and tightened when others may read it.
func TestTokenGeneratedOnceWithMode0600(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data") // not yet created
	tok, created, err := purge.LoadOrCreateToken(dir)
	if err != nil || !created || len(tok) < 40 {
		t.Fatalf("first start: %q, created %v, err %v", tok, created, err)
	}
	path := filepath.Join(dir, purge.TokenFile)
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm != 0o600 {
		t.Errorf("token file mode %o, want 600", perm)
	}
	again, created, err := purge.LoadOrCreateToken(dir)
	if err != nil || created || again != tok {
		t.Errorf("second start: %q, created %v, err %v; want the same token reused", again, created, err)
	}
	other, _, _ := purge.LoadOrCreateToken(t.TempDir())
	if other == tok {
		t.Errorf("two data directories got the same token")
	}

	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if got, _, err := purge.LoadOrCreateToken(dir); err != nil || got != tok {
		t.Fatalf("with mode 644: %q, %v", got, err)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Errorf("a token file readable by others was not tightened: %o", fi.Mode().Perm())
	}

	if err := os.WriteFile(path, []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if got, created, err := purge.LoadOrCreateToken(dir); err != nil || !created || got == "" || got == tok {
		t.Errorf("empty file: %q, created %v, err %v; want a new token", got, created, err)
	}
}

// TestResolveTokensPrecedence checks config, then CELLAR_PURGE_TOKEN, then
// the generated file, and that the log names the file but not the token.
func TestResolveTokensPrecedence(t *testing.T) {
	dir := t.TempDir()
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	got, err := purge.ResolveTokens([]string{"from-config-0123456789"}, "from-env-0123456789", dir, log)
	if err != nil || len(got) != 1 || got[0] != "from-config-0123456789" {
		t.Errorf("config and env: %q, %v; want the config's", got, err)
	}
	got, err = purge.ResolveTokens(nil, " from-env-0123456789\n", dir, log)
	if err != nil || len(got) != 1 || got[0] != "from-env-0123456789" {
		t.Errorf("env only: %q, %v; want the env's", got, err)
	}
	if _, err := os.Stat(filepath.Join(dir, purge.TokenFile)); err == nil {
		t.Errorf("a token file was written although a token was given")
	}
	got, err = purge.ResolveTokens(nil, "", dir, log)
	if err != nil || len(got) != 1 {
		t.Fatalf("none given: %q, %v", got, err)
	}
	file, _ := purge.ReadTokenFile(filepath.Join(dir, purge.TokenFile))
	if got[0] != file {
		t.Errorf("generated token %q is not the file's %q", got[0], file)
	}
	if !strings.Contains(logs.String(), filepath.Join(dir, purge.TokenFile)) {
		t.Errorf("the log does not say where the token is:\n%s", logs.String())
	}
	for _, secret := range []string{got[0], "from-env-0123456789", "from-config-0123456789"} {
		if strings.Contains(logs.String(), secret) {
			t.Errorf("the log reveals a token:\n%s", logs.String())
		}
	}
}

// TestNewRejectsWeakOrMissingTokens checks Options.Validate.
func TestNewRejectsWeakOrMissingTokens(t *testing.T) {
	r := newRig(t, catalog)
	for _, tokens := range [][]string{nil, {"short"}, {"has white space in it here"}} {
		if _, err := purge.New(r.store, purge.Options{Tokens: tokens, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}); err == nil {
			t.Errorf("New with tokens %q: no error", tokens)
		}
	}
}

// TestRunCLI drives the command-line client against the admin API.
func TestRunCLI(t *testing.T) {
	r := newRig(t, catalog)
	r.fillCatalog()
	dataDir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dataDir, purge.TokenFile), []byte(testToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv(purge.EnvToken, "")
	tests := []struct {
		name string
		args []string
		out  string // stdout, or the error's text when err
		err  bool
	}{
		{"tag, flags after values", []string{"tag", "product-4", "-admin", r.admin.URL}, "purged 1\n", false},
		{"soft url, token flag", []string{"-soft", "-token", testToken, "-admin", r.admin.URL, "url", "http://cellar.test/b"}, "purged 1\n", false},
		{"prefix, two values", []string{"prefix", "-admin", r.admin.URL, "http://cellar.test/blog/1", "http://cellar.test/blog/2"}, "purged 2\n", false},
		{"wrong token", []string{"all", "-admin", r.admin.URL, "-token", "wrong-token-0123456789abcdef"}, "401", true},
		{"no token file", []string{"all", "-admin", r.admin.URL, "-data-dir", t.TempDir()}, "reading token", true},
		{"relative url checked locally", []string{"url", "/a", "-admin", r.admin.URL}, "absolute http or https", true},
		{"unknown kind", []string{"everything", "-admin", r.admin.URL}, `unknown kind "everything"`, true},
		{"no values", []string{"tag", "-admin", r.admin.URL}, "at least one value", true},
		{"all with a value", []string{"all", "x", "-admin", r.admin.URL}, "unexpected value", true},
		{"all", []string{"all", "-admin", r.admin.URL}, "purged 5\n", false}, // 8 minus the 3 removed above (the soft purge keeps /b)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			err := purge.RunCLI(t.Context(), tt.args, &stdout, &stderr, dataDir)
			switch {
			case tt.err && (err == nil || !strings.Contains(err.Error(), tt.out)):
				t.Errorf("RunCLI(%q) error %v, want one with %q", tt.args, err, tt.out)
			case !tt.err && (err != nil || stdout.String() != tt.out):
				t.Errorf("RunCLI(%q) = %q, %v; want %q", tt.args, stdout.String(), err, tt.out)
			}
		})
	}
}
