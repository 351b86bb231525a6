// Command cellar is a caching HTTP accelerator: a reverse proxy that answers
// from its own memory and disk whenever HTTP caching rules allow.
//
//	cellar serve [-origin URL] [-listen ADDR] [-admin ADDR] [-data-dir DIR] [-memory SIZE] [-disk SIZE] [-config FILE]
//	cellar demo-origin [-listen ADDR] [-delay D]
//	cellar purge url|prefix|tag|all VALUE... [-soft] [-admin URL] [-token T]
//	cellar inspect URL... [-admin URL] [-token T] [-json]
//	cellar bench sim|http ...
//	cellar version
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
	"syscall"
	"time"

	"github.com/cellar-cache/cellar/bench"
	"github.com/cellar-cache/cellar/internal/demo"
	"github.com/cellar-cache/cellar/purge"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "cellar:", err)
		}
		os.Exit(1)
	}
}

const usage = `cellar: a caching HTTP accelerator

Usage:
  cellar serve [flags]        run the caching reverse proxy (cellar serve -h for flags)
  cellar demo-origin [flags]  run the demo origin alone
  cellar purge url|prefix|tag|all VALUE... [-soft] [-admin URL] [-token T]
                              purge through the admin API
  cellar inspect URL... [-admin URL] [-token T] [-json]
                              show what is stored for each URL
  cellar bench sim [flags]    hit ratios of cache policies on traces, in process
  cellar bench http [flags]   load a running proxy over HTTP
  cellar version              print the version
`

// run dispatches a subcommand.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return errors.New("no subcommand given")
	}
	switch args[0] {
	case "serve":
		return serve(ctx, args[1:], stderr, nil)
	case "demo-origin":
		return demoOrigin(ctx, args[1:], stdout, stderr)
	case "purge":
		return purge.RunCLI(ctx, args[1:], stdout, stderr, defaultDataDir())
	case "inspect":
		return inspect(ctx, args[1:], stdout, stderr)
	case "bench":
		if len(args) < 2 {
			return errors.New("bench: want a mode: sim or http")
		}
		switch args[1] {
		case "sim":
			return bench.RunSim(ctx, args[2:], stdout, stderr)
		case "http":
			return bench.RunHTTP(ctx, args[2:], stdout, stderr)
		}
		return fmt.Errorf("bench: unknown mode %q: want sim or http", args[1])
	case "version":
		fmt.Fprintln(stdout, "cellar", version())
		return nil
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprint(stderr, usage)
	return fmt.Errorf("unknown subcommand %q", args[0])
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

// demoOrigin serves the demo origin until ctx ends.
func demoOrigin(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("demo-origin", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "127.0.0.1:9000", "address to listen on")
	delay := fs.Duration("delay", 300*time.Millisecond, "how long each page takes")
	if err := fs.Parse(args); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *listen)
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
