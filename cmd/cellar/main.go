// Command cellar is a caching HTTP accelerator: a reverse proxy that answers
// from its own memory and disk whenever HTTP caching rules allow.
//
//	cellar serve [-origin ADDR] [-listen ADDR] [-admin ADDR] [-data-dir DIR] [-memory SIZE] [-disk SIZE] [-config FILE]
//	cellar reload [-admin ADDR] [-token T]
//	cellar purge url|prefix|tag|all VALUE... [-soft] [-admin ADDR] [-token T]
//	cellar inspect URL... [-admin ADDR] [-token T] [-json]
//	cellar demo-origin [-listen ADDR] [-delay D]
//	cellar bench sim|http ...
//	cellar completion bash|zsh
//	cellar version
//
// Every command takes -h. An address is host:port or a URL.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/cellar-cache/cellar/bench"
	"github.com/cellar-cache/cellar/internal/cli"
	"github.com/cellar-cache/cellar/internal/demo"
	"github.com/cellar-cache/cellar/purge"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return // -h printed the usage to stdout
		}
		fmt.Fprintln(os.Stderr, "cellar:", err)
		os.Exit(1)
	}
}

// command is one subcommand: its synopsis and one-line description (for
// the usage, shell completion and its own -h) and what runs it.
type command struct {
	name, args, desc string
	run              func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

// commands are cellar's subcommands, in the order the usage lists them.
func commands() []command {
	return []command{
		{"serve", "[flags]", "run the caching reverse proxy",
			func(ctx context.Context, args []string, stdout, stderr io.Writer) error {
				return serve(ctx, args, stdout, stderr, nil)
			}},
		{"reload", "[-admin ADDR] [-token T]", "make a running cellar re-read its config file", reload},
		{"purge", "url|prefix|tag|all VALUE... [flags]", "purge stored objects through the admin API",
			func(ctx context.Context, args []string, stdout, stderr io.Writer) error {
				return purge.RunCLI(ctx, args, stdout, stderr, defaultDataDir())
			}},
		{"inspect", "URL... [flags]", "show what is stored for each URL", inspect},
		{"demo-origin", "[flags]", "run the demo origin alone", demoOrigin},
		{"bench", "sim|http [flags]", "measure cache policies (sim) or a running proxy (http)", benchCommand},
		{"completion", "bash|zsh", "print a shell completion script", completion},
		{"version", "", "print the version", func(_ context.Context, args []string, stdout, _ io.Writer) error {
			if len(args) > 0 && cli.IsHelp(args[0]) {
				fmt.Fprint(stdout, "cellar version: print the version\n\nUsage: cellar version\n")
				return flag.ErrHelp
			}
			fmt.Fprintln(stdout, "cellar", version())
			return nil
		}},
	}
}

// usage is cellar's top-level usage.
func usage() string {
	var b strings.Builder
	b.WriteString("cellar: a caching HTTP accelerator\n\nUsage:\n")
	for _, c := range commands() {
		fmt.Fprintf(&b, "  cellar %-12s %s\n", c.name, c.desc)
	}
	b.WriteString("\nRun cellar COMMAND -h for a command's flags; cellar --version prints the version.\n" +
		"Addresses are host:port or URLs; sizes take K, M, G or T (binary: 1K = 1024 bytes).\n")
	return b.String()
}

// run dispatches a subcommand. -h on any command prints its usage to
// stdout and returns flag.ErrHelp, which main treats as success.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage())
		return errors.New("no command given")
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stdout, usage())
		return nil
	case "-version", "--version", "-v":
		args = []string{"version"}
	}
	for _, c := range commands() {
		if c.name == args[0] {
			return c.run(ctx, args[1:], stdout, stderr)
		}
	}
	fmt.Fprint(stderr, usage())
	return fmt.Errorf("unknown command %q", args[0])
}

const benchUsage = `cellar bench: measure cache policies or a running proxy

Usage:
  cellar bench sim [flags]    hit ratios of cache policies on traces, in process
  cellar bench http [flags]   load a running proxy over HTTP

Run cellar bench sim -h or cellar bench http -h for their flags.
`

// benchCommand runs `cellar bench sim|http`.
func benchCommand(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, benchUsage)
		return errors.New("want a mode: sim or http")
	}
	switch args[0] {
	case "sim":
		return bench.RunSim(ctx, args[1:], stdout, stderr)
	case "http":
		return bench.RunHTTP(ctx, args[1:], stdout, stderr)
	}
	if cli.IsHelp(args[0]) {
		fmt.Fprint(stdout, benchUsage)
		return flag.ErrHelp
	}
	return fmt.Errorf("unknown mode %q: want sim or http", args[0])
}

// version is the module version, or the VCS revision of a local build.
func version() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	v := bi.Main.Version
	for _, s := range bi.Settings {
		if s.Key == "vcs.revision" && len(s.Value) >= 12 {
			v += " (" + s.Value[:12] + ")"
		}
	}
	return v
}

const demoUsage = `cellar demo-origin: run the demo origin alone (slow, cacheable, compressible pages)

Usage: cellar demo-origin [flags]

Flags:
`

// demoOrigin serves the demo origin until ctx ends.
func demoOrigin(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("demo-origin", flag.ContinueOnError)
	listen := fs.String("listen", "127.0.0.1:9000", "`address` to listen on (host:port or URL)")
	delay := fs.Duration("delay", 300*time.Millisecond, "how long each page takes")
	if err := cli.Parse(fs, args, stdout, demoUsage); err != nil {
		return err
	}
	addr, err := cli.HostPort(*listen)
	if err != nil {
		return fmt.Errorf("-listen %w", err)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "demo origin on http://%s/ (each page takes %v)\n", ln.Addr(), *delay)
	return serveUntil(ctx, &http.Server{Handler: demo.New(*delay), ReadHeaderTimeout: 10 * time.Second}, ln, 5*time.Second)
}

// serveUntil serves hs on ln until ctx ends, then shuts it down gracefully
// within grace.
func serveUntil(ctx context.Context, hs *http.Server, ln net.Listener, grace time.Duration) error {
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	err := hs.Shutdown(sctx)
	<-errc
	return err
}
