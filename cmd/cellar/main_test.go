package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cellar-cache/cellar/internal/proxytest"
)

// TestMain lets a test run this test binary as the cellar command itself
// (see cellarCmd), so that exit statuses, signals and the split between
// stdout and stderr are tested as a user meets them.
func TestMain(m *testing.M) {
	if os.Getenv("CELLAR_TEST_AS_MAIN") == "1" {
		os.Args = append([]string{"cellar"}, os.Args[1:]...)
		main()
		os.Exit(0)
	}
	code := m.Run()
	removeCellarBin()
	os.Exit(code)
}

// cellarCmd returns a command running cellar with args.
func cellarCmd(t *testing.T, args ...string) *exec.Cmd {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, args...)
	cmd.Env = append(os.Environ(), "CELLAR_TEST_AS_MAIN=1")
	return cmd
}

// runCellar runs cellar with args to the end.
func runCellar(t *testing.T, args ...string) (stdout, stderr string, status int) {
	t.Helper()
	cmd := cellarCmd(t, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		status = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return out.String(), errb.String(), status
}

// TestEveryCommandHelpsOnStdout checks the CLI conventions: -h, -help and
// --help of cellar and of every command print a one-line description and
// the usage to stdout and exit 0; --version and -version print the
// version; an unknown flag is an error on stderr with status 1.
func TestEveryCommandHelpsOnStdout(t *testing.T) {
	cmds := [][]string{{"bench", "sim"}, {"bench", "http"}}
	for _, c := range commands() {
		cmds = append(cmds, []string{c.name})
	}
	for _, c := range cmds {
		for _, h := range []string{"-h"} {
			args := append(append([]string{}, c...), h)
			out, errOut, status := runCellar(t, args...)
			first, _, _ := strings.Cut(out, "\n")
			want := "cellar " + strings.Join(c, " ") + ": "
			if status != 0 || !strings.HasPrefix(first, want) || len(first) <= len(want) || errOut != "" {
				t.Errorf("cellar %s: status %d, stdout first line %q, stderr %q; want 0, %q and a description, nothing on stderr", strings.Join(args, " "), status, first, errOut, want+"...")
			}
		}
	}
	if out, _, status := runCellar(t, "serve", "--help"); status != 0 || !strings.HasPrefix(out, "cellar serve: ") {
		t.Errorf("cellar serve --help: status %d, %q", status, out)
	}
	out, _, status := runCellar(t, "-h")
	for _, c := range commands() {
		if !strings.Contains(out, "cellar "+c.name) {
			t.Errorf("cellar -h does not list %s:\n%s", c.name, out)
		}
	}
	if status != 0 {
		t.Errorf("cellar -h: status %d", status)
	}
	for _, v := range []string{"--version", "-version", "version"} {
		if out, _, status := runCellar(t, v); status != 0 || !strings.HasPrefix(out, "cellar ") {
			t.Errorf("cellar %s: %q, status %d", v, out, status)
		}
	}
	for _, bad := range [][]string{{"serve", "-nope"}, {"bench", "-x"}, {"bench"}, {"frobnicate"}, {}} {
		out, errOut, status := runCellar(t, bad...)
		if status != 1 || out != "" || !strings.Contains(errOut, "cellar: ") {
			t.Errorf("cellar %v: status %d, stdout %q, stderr %q; want 1, nothing, an error", bad, status, out, errOut)
		}
	}
}

// TestCompletionScripts checks that both scripts name every command and
// that bash accepts the script.
func TestCompletionScripts(t *testing.T) {
	for _, sh := range []string{"bash", "zsh"} {
		out, errOut, status := runCellar(t, "completion", sh)
		if status != 0 || !strings.Contains(out, "complete -F _cellar cellar") {
			t.Fatalf("completion %s: status %d, stderr %q", sh, status, errOut)
		}
		for _, c := range commands() {
			if !strings.Contains(out, c.name) {
				t.Errorf("completion %s lacks %s", sh, c.name)
			}
		}
	}
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("bash is not installed")
	}
	script, _, _ := runCellar(t, "completion", "bash")
	check := exec.Command(bash, "-n")
	check.Stdin = strings.NewReader(script)
	if out, err := check.CombinedOutput(); err != nil {
		t.Errorf("bash -n: %v\n%s", err, out)
	}
}

// TestSignals runs cellar serve as a process: SIGHUP reloads the config
// (the process lives on and says so), SIGTERM shuts it down gracefully
// with a shutdown line and status 0.
func TestSignals(t *testing.T) {
	cfg := writeConfig(t, "origin: 127.0.0.1:1\n")
	cmd := cellarCmd(t, "serve", "-config", cfg, "-listen", "127.0.0.1:0", "-admin", "127.0.0.1:0", "-data-dir", t.TempDir())
	var logs proxytest.SyncBuffer
	cmd.Stderr = &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	waitLog := func(what string) {
		t.Helper()
		deadline := time.After(30 * time.Second)
		for !strings.Contains(logs.String(), what) {
			select {
			case err := <-exited:
				t.Fatalf("cellar exited (%v) before logging %q:\n%s", err, what, logs.String())
			case <-deadline:
				cmd.Process.Kill()
				t.Fatalf("no %q in 30s:\n%s", what, logs.String())
			case <-time.After(10 * time.Millisecond):
			}
		}
	}
	waitLog("cellar started")
	cmd.Process.Signal(syscall.SIGHUP)
	waitLog("config reloaded")
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("exit after SIGTERM: %v\n%s", err, logs.String())
		}
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		t.Fatal("cellar did not exit within 30s of SIGTERM")
	}
	if !strings.Contains(logs.String(), "shutting down") {
		t.Errorf("no shutdown line:\n%s", logs.String())
	}
}

// TestSystemdUnit checks contrib/cellar.service against the command: its
// ExecStart parses as cellar serve flags, and ExecReload sends SIGHUP,
// which reloads.
func TestSystemdUnit(t *testing.T) {
	unit, err := os.ReadFile("../../contrib/cellar.service")
	if err != nil {
		t.Fatal(err)
	}
	var execStart, execReload string
	for _, line := range strings.Split(string(unit), "\n") {
		if v, ok := strings.CutPrefix(line, "ExecStart="); ok {
			execStart = v
		}
		if v, ok := strings.CutPrefix(line, "ExecReload="); ok {
			execReload = v
		}
	}
	fields := strings.Fields(execStart)
	if len(fields) < 2 || !strings.HasSuffix(fields[0], "/cellar") || fields[1] != "serve" {
		t.Fatalf("ExecStart=%q does not run cellar serve", execStart)
	}
	f := newServeFlags()
	if err := f.fs.Parse(fields[2:]); err != nil || f.fs.NArg() != 0 {
		t.Errorf("ExecStart flags %q: %v", fields[2:], err)
	}
	if !strings.Contains(execReload, "-HUP $MAINPID") {
		t.Errorf("ExecReload=%q does not send SIGHUP", execReload)
	}
}
