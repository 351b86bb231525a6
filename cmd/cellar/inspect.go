package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/cellar-cache/cellar/internal/cli"
	"github.com/cellar-cache/cellar/proxy"
	"github.com/cellar-cache/cellar/purge"
)

const inspectUsage = `cellar inspect: show what a running cellar holds for each URL

Usage: cellar inspect [flags] URL...

Shows what a running cellar holds for each URL: its cache key, the Vary
fields, and every stored object (the response, or the Vary marker and its
variants, and the gzip, br and zstd forms cellar made), each with status,
size, age, time to live, state and tier. Asks the admin listener's
/inspect endpoint with the purge token.

Flags:
`

// inspect runs `cellar inspect`.
func inspect(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("inspect", flag.ContinueOnError)
	af := addAdminFlags(fs)
	asJSON := fs.Bool("json", false, "print the reports as JSON")
	timeout := fs.Duration("timeout", 30*time.Second, "give up after this long")
	var urls []string
	for {
		if err := cli.Parse(fs, args, stdout, inspectUsage); err != nil {
			return err
		}
		if fs.NArg() == 0 {
			break
		}
		urls = append(urls, fs.Arg(0))
		args = fs.Args()[1:]
	}
	if len(urls) == 0 {
		cli.PrintUsage(stderr, fs, inspectUsage)
		return errors.New("inspect: give at least one URL")
	}
	adminURL, tok, err := af.resolve()
	if err != nil {
		return fmt.Errorf("inspect: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	client := &http.Client{Transport: &http.Transport{Proxy: nil}}
	defer client.CloseIdleConnections()
	var reports []*proxy.InspectReport
	for _, u := range urls {
		rep, err := fetchInspect(ctx, client, adminURL, tok, u)
		if err != nil {
			return err
		}
		reports = append(reports, rep)
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(reports)
	}
	for i, rep := range reports {
		if i > 0 {
			fmt.Fprintln(stdout)
		}
		printInspect(stdout, rep)
	}
	return nil
}

// fetchInspect asks the admin listener at admin about one URL.
func fetchInspect(ctx context.Context, client *http.Client, admin, tok, u string) (*proxy.InspectReport, error) {
	target := strings.TrimRight(admin, "/") + "/inspect?url=" + url.QueryEscape(u)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return nil, fmt.Errorf("inspect: -admin %q: %w", admin, err)
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("inspect: %w", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, fmt.Errorf("inspect %s: reading the answer: %w", u, err)
	}
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Error string `json:"error"`
		}
		msg := strings.TrimSpace(string(b))
		if json.Unmarshal(b, &e) == nil && e.Error != "" {
			msg = e.Error
		}
		return nil, fmt.Errorf("inspect %s: %s: %s", u, resp.Status, msg)
	}
	var rep proxy.InspectReport
	if err := json.Unmarshal(b, &rep); err != nil {
		return nil, fmt.Errorf("inspect %s: decoding the answer: %w", u, err)
	}
	return &rep, nil
}

// printInspect prints one report as a table.
func printInspect(w io.Writer, rep *proxy.InspectReport) {
	fmt.Fprintf(w, "%s\n  key %s", rep.URL, rep.Key)
	if len(rep.Vary) > 0 {
		fmt.Fprintf(w, "; vary: %s", strings.Join(rep.Vary, ", "))
	}
	fmt.Fprintln(w)
	if len(rep.Objects) == 0 {
		fmt.Fprintln(w, "  nothing stored")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  KIND\tCODING\tSTATUS\tSIZE\tAGE\tTTL\tSTATE\tTIER\tTAGS\tKEY")
	for _, o := range rep.Objects {
		status, age, ttl, state := "-", "-", "-", "-"
		if o.Kind != "vary-marker" {
			status = fmt.Sprint(o.Status)
			age = (time.Duration(o.AgeSeconds) * time.Second).String()
			ttl = (time.Duration(o.TTLSeconds) * time.Second).String()
			switch {
			case o.Invalid:
				state = "invalid"
			case o.Fresh:
				state = "fresh"
			default:
				state = "stale"
			}
		}
		coding := o.Coding
		if coding == "" {
			coding = "-"
		}
		tier := "disk"
		if o.InMemory {
			tier = "memory+disk"
		}
		tags := strings.Join(o.Tags, ",")
		if tags == "" {
			tags = "-"
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\n", o.Kind, coding, status, o.Size, age, ttl, state, tier, tags, o.Key)
	}
	tw.Flush()
	if rep.Truncated {
		fmt.Fprintln(w, "  (more objects are stored than listed)")
	}
}

// adminFlags are the flags of a command-line client of the admin listener
// (inspect, reload): where it is and the bearer token to show it.
type adminFlags struct{ admin, token, dataDir *string }

func addAdminFlags(fs *flag.FlagSet) adminFlags {
	return adminFlags{
		admin:   fs.String("admin", "127.0.0.1:8081", "admin listener `address` (host:port or URL)"),
		token:   fs.String("token", "", "bearer `token` (default: $"+purge.EnvToken+", else the token file in -data-dir)"),
		dataDir: fs.String("data-dir", defaultDataDir(), "data `directory` holding the generated token file"),
	}
}

// resolve returns the admin listener's URL and the bearer token.
func (a adminFlags) resolve() (adminURL, token string, err error) {
	if adminURL, err = cli.URL(*a.admin, false); err != nil {
		return "", "", fmt.Errorf("-admin %w", err)
	}
	if token, err = purge.ClientToken(*a.token, *a.dataDir); err != nil {
		return "", "", err
	}
	return adminURL, token, nil
}
