package purge

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/cellar-cache/cellar/internal/cli"
)

const cliUsage = `cellar purge: remove (or mark stale) stored objects through a running cellar's admin API

Usage: cellar purge url|prefix|tag|regex|all [VALUE...] [flags]

  cellar purge url http://example.com/a http://example.com/b
  cellar purge prefix http://example.com/blog/
  cellar purge tag product-42 -soft
  cellar purge regex '^https?://example\.com/img/.*\.png$'
  cellar purge all

Flags (before or after the values):
`

// RunCLI is the command-line client of the admin API ("cellar purge"):
// args are what follows "purge". Without -token it uses CELLAR_PURGE_TOKEN,
// else the token file in -data-dir (default defaultDataDir). It prints the
// number of objects purged to stdout, then, with a purge stream, where
// the purge stands ("purge stream: event N, applied by A of M nodes so
// far"), or one line per peer the purge was forwarded to ("peer URL:
// purged N" or "peer URL: error: ..."). Any answer
// but 200, including the 502 of a purge that some peer missed, is an
// error.
func RunCLI(ctx context.Context, args []string, stdout, stderr io.Writer, defaultDataDir string) error {
	fs := flag.NewFlagSet("purge", flag.ContinueOnError)
	soft := fs.Bool("soft", false, "mark objects stale instead of removing them")
	admin := fs.String("admin", "127.0.0.1:8081", "admin listener `address` (host:port or URL)")
	token := fs.String("token", "", "bearer `token` (default: $"+EnvToken+", else the token file in -data-dir)")
	dataDir := fs.String("data-dir", defaultDataDir, "data `directory` holding the generated token file")
	timeout := fs.Duration("timeout", time.Minute, "give up after this long")

	// Flags may follow the values: parse until no flags remain.
	var vals []string
	for {
		if err := cli.Parse(fs, args, stdout, cliUsage); err != nil {
			return err
		}
		args = fs.Args()
		if len(args) == 0 {
			break
		}
		vals = append(vals, args[0])
		args = args[1:]
	}
	if len(vals) == 0 {
		cli.PrintUsage(stderr, fs, cliUsage)
		return errors.New("purge: want a kind: url, prefix, tag, regex or all")
	}
	k, vals := vals[0], vals[1:]
	body := map[string]any{"soft": *soft}
	switch k {
	case "url":
		body["urls"] = vals
	case "prefix":
		body["prefixes"] = vals
	case "tag":
		body["tags"] = vals
	case "regex":
		body["patterns"] = vals
	case "all":
		if len(vals) > 0 {
			return fmt.Errorf("purge all: unexpected value %q", vals[0])
		}
	default:
		return fmt.Errorf("purge: unknown kind %q: want url, prefix, tag, regex or all", k)
	}
	if k != "all" && len(vals) == 0 {
		return fmt.Errorf("purge %s: give at least one value", k)
	}
	// Catch malformed values here, with the server's own rules.
	payload, _ := json.Marshal(body)
	if _, _, err := ParseRequest(k, payload); err != nil {
		return err
	}

	tok, err := ClientToken(*token, *dataDir)
	if err != nil {
		return err
	}

	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	adminURL, err := cli.URL(*admin, false)
	if err != nil {
		return fmt.Errorf("purge: -admin %w", err)
	}
	u := adminURL + "/purge/" + k
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(payload))
	if err != nil {
		return fmt.Errorf("purge: -admin %q: %w", *admin, err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("purge: %w", err)
	}
	defer resp.Body.Close()
	var res result
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err == nil {
		err = json.Unmarshal(b, &res)
	}
	if err == nil && (resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusBadGateway && len(res.Peers) > 0) {
		// A 502 with peers: purged here, but not everywhere; say where.
		printResult(stdout, res)
	}
	if resp.StatusCode != http.StatusOK {
		msg := res.Error
		if msg == "" {
			msg = strings.TrimSpace(string(b))
		}
		return fmt.Errorf("purge: %s: %s", resp.Status, msg)
	}
	if err != nil {
		return fmt.Errorf("purge: reading the answer: %w", err)
	}
	return nil
}

// ClientToken is the bearer token a command-line client of the admin
// listener sends: flagToken when given, else $CELLAR_PURGE_TOKEN, else the
// token file that cellar generated in dataDir.
func ClientToken(flagToken, dataDir string) (string, error) {
	if tok := strings.TrimSpace(flagToken); tok != "" {
		return tok, nil
	}
	if tok := strings.TrimSpace(os.Getenv(EnvToken)); tok != "" {
		return tok, nil
	}
	tok, err := ReadTokenFile(filepath.Join(dataDir, TokenFile))
	if err != nil {
		return "", fmt.Errorf("%w (give -token, set %s or -data-dir)", err, EnvToken)
	}
	return tok, nil
}

// printResult prints the local count, where the purge stands in the
// purge stream, and each peer's result.
func printResult(w io.Writer, res result) {
	fmt.Fprintf(w, "purged %d\n", res.Purged)
	if st := res.Stream; st != nil {
		here := ""
		if st.Pending {
			here = " (not yet here)"
		}
		fmt.Fprintf(w, "purge stream: event %d, applied by %d of %d nodes so far%s\n", st.Seq, st.Applied, st.Nodes, here)
	}
	for _, p := range res.Peers {
		switch {
		case p.Error != "":
			fmt.Fprintf(w, "peer %s: error: %s\n", p.Peer, p.Error)
		case p.Purged != nil:
			fmt.Fprintf(w, "peer %s: purged %d\n", p.Peer, *p.Purged)
		default:
			fmt.Fprintf(w, "peer %s: no result\n", p.Peer)
		}
	}
}
