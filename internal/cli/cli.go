// Package cli holds the conventions every cellar subcommand follows: -h
// prints a one-line description, the synopsis and the flags to stdout and
// succeeds; a flag error is returned for the caller to print on stderr;
// an address is accepted as host:port or as a URL wherever one is asked
// for.
package cli

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"strings"
)

// Parse parses args into fs. -h, -help and --help print usage and then
// fs's flags to stdout and return flag.ErrHelp, which the command treats
// as success. Any other error is returned unprinted.
func Parse(fs *flag.FlagSet, args []string, stdout io.Writer, usage string) error {
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	err := fs.Parse(args)
	if errors.Is(err, flag.ErrHelp) {
		PrintUsage(stdout, fs, usage)
	}
	return err
}

// PrintUsage writes usage and then fs's flags and defaults to w.
func PrintUsage(w io.Writer, fs *flag.FlagSet, usage string) {
	fmt.Fprint(w, usage)
	fs.SetOutput(w)
	fs.PrintDefaults()
	fs.SetOutput(io.Discard)
}

// IsHelp reports whether arg asks for help.
func IsHelp(arg string) bool {
	switch arg {
	case "-h", "-help", "--help", "help":
		return true
	}
	return false
}

// URL turns an address given as host:port, :port or an http(s) URL into
// a URL: "127.0.0.1:9000" and ":9000" become "http://127.0.0.1:9000" and
// "http://localhost:9000"; "https://example.com" is kept. A path is kept
// only when keepPath is set; otherwise a URL with a path other than "/"
// is an error.
func URL(addr string, keepPath bool) (string, error) {
	s := strings.TrimSpace(addr)
	if s == "" {
		return "", errors.New("empty address: want host:port or http://host:port")
	}
	if !strings.Contains(s, "://") {
		host, port, err := net.SplitHostPort(s)
		if err != nil {
			return "", fmt.Errorf("%q: want host:port or http://host:port", addr)
		}
		if host == "" {
			host = "localhost"
		}
		s = "http://" + net.JoinHostPort(host, port)
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil {
		return "", fmt.Errorf("%q: want host:port or http://host:port", addr)
	}
	if !keepPath && u.Path != "" && u.Path != "/" {
		return "", fmt.Errorf("%q: want no path, only http://host:port", addr)
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return "", fmt.Errorf("%q: want no query or fragment", addr)
	}
	if !keepPath {
		u.Path = ""
	}
	return u.String(), nil
}

// HostPort turns an address to listen on, given as host:port, :port or an
// http URL with a port, into host:port.
func HostPort(addr string) (string, error) {
	s := strings.TrimSpace(addr)
	if strings.Contains(s, "://") {
		u, err := url.Parse(s)
		if err != nil || u.Host == "" || u.Port() == "" || (u.Path != "" && u.Path != "/") {
			return "", fmt.Errorf("%q: want host:port, :port or http://host:port", addr)
		}
		s = u.Host
	}
	if _, _, err := net.SplitHostPort(s); err != nil {
		return "", fmt.Errorf("%q: want host:port, :port or http://host:port", addr)
	}
	return s, nil
}
