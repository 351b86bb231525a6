package cli

import (
	"errors"
	"flag"
	"strings"
	"testing"
)

func TestParseHelpGoesToStdout(t *testing.T) {
	for _, h := range []string{"-h", "-help", "--help"} {
		fs := flag.NewFlagSet("x", flag.ContinueOnError)
		fs.Int("n", 3, "a `count`")
		var out strings.Builder
		err := Parse(fs, []string{h}, &out, "x: does a thing\n\nFlags:\n")
		if !errors.Is(err, flag.ErrHelp) {
			t.Errorf("%s: err %v, want flag.ErrHelp", h, err)
		}
		if got := out.String(); !strings.HasPrefix(got, "x: does a thing\n") || !strings.Contains(got, "-n count") {
			t.Errorf("%s: usage %q", h, got)
		}
	}
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	var out strings.Builder
	if err := Parse(fs, []string{"-nope"}, &out, "usage\n"); err == nil || !strings.Contains(err.Error(), "-nope") || out.Len() != 0 {
		t.Errorf("unknown flag: err %v, stdout %q; want an error naming it and nothing printed", err, out.String())
	}
}

func TestURL(t *testing.T) {
	for _, tc := range []struct {
		in, want string
		keepPath bool
	}{
		{"127.0.0.1:9000", "http://127.0.0.1:9000", false},
		{":9000", "http://localhost:9000", false},
		{"[::1]:80", "http://[::1]:80", false},
		{"http://127.0.0.1:9000", "http://127.0.0.1:9000", false},
		{"http://127.0.0.1:9000/", "http://127.0.0.1:9000", false},
		{"https://example.com", "https://example.com", false},
		{"http://peer:8081/purge", "http://peer:8081/purge", true},
		{"localhost:8081", "http://localhost:8081", false},
	} {
		got, err := URL(tc.in, tc.keepPath)
		if err != nil || got != tc.want {
			t.Errorf("URL(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
	for _, bad := range []string{"", "127.0.0.1", "ftp://x:1", "http://", "http://x:1/path", "http://u:p@x:1", "http://x:1/?q"} {
		if got, err := URL(bad, false); err == nil {
			t.Errorf("URL(%q) = %q, want an error", bad, got)
		}
	}
}

func TestHostPort(t *testing.T) {
	for in, want := range map[string]string{
		"127.0.0.1:8080":        "127.0.0.1:8080",
		":8080":                 ":8080",
		"http://127.0.0.1:8081": "127.0.0.1:8081",
		"http://[::1]:8081/":    "[::1]:8081",
	} {
		if got, err := HostPort(in); err != nil || got != want {
			t.Errorf("HostPort(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"8080", "http://x", "http://x:1/a", "x"} {
		if got, err := HostPort(bad); err == nil {
			t.Errorf("HostPort(%q) = %q, want an error", bad, got)
		}
	}
}
