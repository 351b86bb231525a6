package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// These tests run the real cellar binary (built into a temporary
// directory) against real pebble directories that they damage, kill -9
// and fill up: whatever happens to the disk, the process must live,
// listen, and serve only correct bodies.

// cellarBin is the binary the tests run, built once (buildCellar) and
// removed by TestMain.
var cellarBin struct {
	once      sync.Once
	dir, path string
	err       error
}

// removeCellarBin removes the binary buildCellar built; TestMain
// (main_test.go) calls it after the tests.
func removeCellarBin() {
	if cellarBin.dir != "" {
		os.RemoveAll(cellarBin.dir)
	}
}

// buildCellar builds the cellar binary (once for the whole run).
func buildCellar(t *testing.T) string {
	t.Helper()
	cellarBin.once.Do(func() {
		cellarBin.dir, cellarBin.err = os.MkdirTemp("", "cellar-bin-")
		if cellarBin.err != nil {
			return
		}
		cellarBin.path = filepath.Join(cellarBin.dir, "cellar")
		args := []string{"build", "-o", cellarBin.path}
		if raceEnabled {
			args = append(args, "-race")
		}
		if out, err := exec.Command("go", append(args, ".")...).CombinedOutput(); err != nil {
			cellarBin.err = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if cellarBin.err != nil {
		t.Fatal(cellarBin.err)
	}
	return cellarBin.path
}

// objBody is the body of /obj/<i> (tens of KB) and /big/<i> (1 MiB):
// deterministic, so that any body served can be checked.
func objBody(path string) []byte {
	var i, n int
	switch {
	case strings.HasPrefix(path, "/obj/"):
		i, _ = strconv.Atoi(path[len("/obj/"):])
		n = 20_000 + i*1_500
	case strings.HasPrefix(path, "/big/"):
		i, _ = strconv.Atoi(path[len("/big/"):])
		n = 1 << 20
	default:
		return nil
	}
	rng := rand.New(rand.NewPCG(uint64(i), uint64(n)))
	b := make([]byte, n)
	for j := range b {
		b[j] = byte(rng.Uint32())
	}
	return b
}

func newBodyOrigin(t *testing.T) *httptest.Server {
	o := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b := objBody(r.URL.Path)
		if b == nil {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Cache-Control", "max-age=3600")
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Content-Length", strconv.Itoa(len(b)))
		w.Write(b)
	}))
	t.Cleanup(o.Close)
	return o
}

// cellarProc is one cellar serve process.
type cellarProc struct {
	cmd          *exec.Cmd
	proxy, admin string
	listenAfter  time.Duration // from exec to the "cellar started" line
	mu           sync.Mutex
	log          bytes.Buffer
	exited       chan struct{}
	err          error
	failed       atomic.Int64 // 502 fill-failed answers (see fetch)
}

var startedLine = regexp.MustCompile(`msg="cellar started" listen=http://(\S+) admin=(\S+)`)

// startCellar runs `cellar serve` on dir and waits (generously) until it
// listens.
func startCellar(t *testing.T, bin, dir string, args ...string) *cellarProc {
	t.Helper()
	p, err := tryStartCellar(t, bin, dir, args...)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// tryStartCellar is startCellar returning the failure to start (with the
// process's log) instead of failing the test.
func tryStartCellar(t *testing.T, bin, dir string, args ...string) (*cellarProc, error) {
	t.Helper()
	args = append([]string{"serve", "-listen", "127.0.0.1:0", "-admin", "127.0.0.1:0", "-data-dir", dir, "-access-log=false"}, args...)
	p := &cellarProc{cmd: exec.Command(bin, args...), exited: make(chan struct{})}
	stderr, err := p.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ready := make(chan [2]string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			p.mu.Lock()
			p.log.WriteString(line + "\n")
			p.mu.Unlock()
			if m := startedLine.FindStringSubmatch(line); m != nil {
				ready <- [2]string{m[1], m[2]}
			}
		}
		io.Copy(io.Discard, stderr)
		p.err = p.cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		<-p.exited
	})
	select {
	case a := <-ready:
		p.proxy, p.admin = a[0], a[1]
		p.listenAfter = time.Since(start)
	case <-p.exited:
		return nil, fmt.Errorf("cellar exited before listening: %v\n%s", p.err, p.logText())
	case <-time.After(60 * time.Second):
		return nil, fmt.Errorf("cellar did not listen in 60 s\n%s", p.logText())
	}
	return p, nil
}

func (p *cellarProc) logText() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.log.String()
}

// kill9 kills the process with SIGKILL: no shutdown, no Close.
func (p *cellarProc) kill9(t *testing.T) {
	t.Helper()
	p.cmd.Process.Kill()
	<-p.exited
}

// term sends SIGTERM and checks that the process exits cleanly.
func (p *cellarProc) term(t *testing.T) {
	t.Helper()
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
		if p.err != nil {
			t.Fatalf("cellar exited with %v after SIGTERM\n%s", p.err, p.logText())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("cellar ignored SIGTERM for 30 s\n%s", p.logText())
	}
}

// alive fails the test if the process has exited (a panic, say).
func (p *cellarProc) alive(t *testing.T) {
	t.Helper()
	select {
	case <-p.exited:
		t.Fatalf("cellar exited: %v\n%s", p.err, p.logText())
	default:
	}
	if log := p.logText(); strings.HasPrefix(log, "panic: ") || strings.Contains(log, "\npanic: ") {
		t.Fatalf("cellar logged a panic:\n%s", p.logText())
	}
}

// fetch gets path through the proxy and checks the body. It returns the
// Cache-Status.
func (p *cellarProc) fetch(t *testing.T, path string) string {
	t.Helper()
	resp, err := http.Get("http://" + p.proxy + path)
	if err != nil {
		p.alive(t)
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		// A body cut short is allowed (a corrupt chunk found mid-stream
		// ends the response with an error); a wrong byte is not.
		return "cut"
	}
	if resp.StatusCode == http.StatusBadGateway && strings.Contains(resp.Header.Get("Cache-Status"), "detail=fill-failed") {
		// A fill in flight when the disk tier failed under it may end in
		// an explicit error; never in a wrong body.
		p.failed.Add(1)
		return "failed"
	}
	if resp.StatusCode != http.StatusOK || !bytes.Equal(b, objBody(path)) {
		log := p.logText()
		t.Fatalf("GET %s: status %d, %d bytes, Cache-Status %q: not the origin's body\nlog tail:\n%s", path, resp.StatusCode, len(b), resp.Header.Get("Cache-Status"), log[max(0, len(log)-3000):])
	}
	return resp.Header.Get("Cache-Status")
}

// healthz returns the admin /healthz body, which must be a 200.
func (p *cellarProc) healthz(t *testing.T) string {
	t.Helper()
	// "cellar started" is logged just before serving begins.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		resp, err := http.Get("http://" + p.admin + "/healthz")
		if err != nil {
			t.Fatalf("healthz: %v", err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			return string(b)
		}
		if time.Now().After(deadline) {
			t.Fatalf("healthz: %d %s", resp.StatusCode, b)
		}
	}
}

// damagePebble changes the files in dir/db whose names pick selects:
// random byte flips, a truncation, or the deletion of one file.
func damagePebble(t *testing.T, dir string, pick func(string) bool, how string, rng *rand.Rand) int {
	t.Helper()
	db := filepath.Join(dir, "db")
	ents, err := os.ReadDir(db)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range ents {
		if !pick(e.Name()) {
			continue
		}
		path := filepath.Join(db, e.Name())
		b, err := os.ReadFile(path)
		if err != nil || len(b) == 0 {
			continue
		}
		n++
		switch how {
		case "delete":
			os.Remove(path)
			return n
		case "truncate":
			b = b[:rng.IntN(len(b))]
		case "flip":
			for range 1 + len(b)/4000 {
				b[rng.IntN(len(b))] ^= byte(1 + rng.IntN(255))
			}
		}
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return n
}

// TestCellarSurvivesDamagedFilesAndCrashLoops damages every kind of pebble
// file of a directory that cellar filled and was killed -9 on, then
// restarts it twice with a kill -9 between: each start must listen
// and serve only correct bodies, and SIGTERM must stop it cleanly.
func TestCellarSurvivesDamagedFilesAndCrashLoops(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the cellar binary")
	}
	bin := buildCellar(t)
	origin := newBodyOrigin(t)
	const objects = 30
	args := []string{"-origin", origin.URL, "-disk", "32MiB", "-memory", "1MiB"}
	suffix := func(s string) func(string) bool { return func(n string) bool { return strings.HasSuffix(n, s) } }
	prefix := func(s string) func(string) bool { return func(n string) bool { return strings.HasPrefix(n, s) } }
	cases := []struct {
		name string
		pick func(string) bool
		how  string
	}{
		{"sst flip", suffix(".sst"), "flip"},
		{"sst truncate", suffix(".sst"), "truncate"},
		{"sst delete", suffix(".sst"), "delete"},
		{"wal flip", suffix(".log"), "flip"},
		{"wal truncate", suffix(".log"), "truncate"},
		{"manifest flip", prefix("MANIFEST-"), "flip"},
		{"options flip", prefix("OPTIONS-"), "flip"},
	}
	for ci, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			p := startCellar(t, bin, dir, args...)
			for i := range objects {
				p.fetch(t, fmt.Sprintf("/obj/%d", i))
			}
			// Wait (generously) for the fills to commit: a second pass hits.
			for deadline := time.Now().Add(20 * time.Second); ; {
				if strings.Contains(p.fetch(t, fmt.Sprintf("/obj/%d", objects-1)), "hit") || time.Now().After(deadline) {
					break
				}
				time.Sleep(10 * time.Millisecond)
			}
			p.kill9(t)
			rng := rand.New(rand.NewPCG(uint64(ci), 7))
			if damagePebble(t, dir, tc.pick, tc.how, rng) == 0 {
				t.Fatalf("no %s file to damage", tc.name)
			}
			for round := range 2 {
				p = startCellar(t, bin, dir, args...)
				t.Logf("round %d: listening after %v; %s", round, p.listenAfter, strings.TrimSpace(strings.ReplaceAll(p.healthz(t), "\n", "; ")))
				for i := range objects {
					p.fetch(t, fmt.Sprintf("/obj/%d", i))
				}
				p.alive(t)
				if round == 0 {
					p.kill9(t)
				}
			}
			p.term(t)
		})
	}
}

// TestCellarOnAFullTmpfs is the first reproduction on a real small
// file system: cellar with the default 2 GiB budget on a 64 MiB tmpfs (of
// which 40 MiB hold another file) is filled past its size, then restarted
// on the still-full disk. It needs
// root (mount); it is skipped otherwise.
func TestCellarOnAFullTmpfs(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the cellar binary")
	}
	if os.Geteuid() != 0 {
		t.Skip("mounting a tmpfs needs root; the full disk is covered by quotafs in the store tests")
	}
	mnt := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", mnt).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs (%v: %s); the full disk is covered by quotafs in the store tests", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", mnt).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v %s", mnt, err, out)
			exec.Command("umount", "-l", mnt).Run()
		}
	})
	bin := buildCellar(t)
	origin := newBodyOrigin(t)
	dir := filepath.Join(mnt, "data")
	args := []string{"-origin", origin.URL, "-memory", "4MiB"}

	// Most of the disk is taken by someone else: 40 MiB of it.
	fillFile(t, filepath.Join(mnt, "other"), 40<<20)
	p := startCellar(t, bin, dir, args...)
	const big = 32 // 32 MiB through the 24 MiB left
	for i := range big {
		p.fetch(t, fmt.Sprintf("/big/%d", i))
	}
	p.alive(t)
	h := p.healthz(t)
	t.Logf("after filling: %d fills failed with a 502; %s", p.failed.Load(), strings.TrimSpace(h))
	if !strings.Contains(p.logText(), "no space left") && !strings.Contains(p.logText(), "ENOSPC") {
		t.Fatalf("the disk never filled up; healthz %q", h)
	}
	for i := range 8 {
		p.fetch(t, fmt.Sprintf("/big/%d", i))
	}
	p.alive(t)
	p.kill9(t)

	// Whatever room is left goes to a filler file: the disk is full.
	fillFile(t, filepath.Join(mnt, "filler"), 1<<40)
	p = startCellar(t, bin, dir, args...)
	t.Logf("restart on the full disk: listening after %v; %s", p.listenAfter, strings.TrimSpace(p.healthz(t)))
	for i := range big {
		p.fetch(t, fmt.Sprintf("/big/%d", i))
	}
	p.alive(t)
	if h := p.healthz(t); !strings.Contains(h, "disk:") {
		t.Fatalf("healthz does not show the disk tier: %q", h)
	}
	p.term(t)
}

// fillFile writes up to n bytes to a new file at path, stopping quietly
// when the disk is full.
func fillFile(t *testing.T, path string, n int64) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 1<<20)
	for n > 0 {
		k, err := f.Write(buf[:min(int64(len(buf)), n)])
		n -= int64(k)
		if err != nil {
			break
		}
	}
	for n > 0 { // the last few KiB
		if _, err := f.Write(buf[:4096]); err != nil {
			break
		}
		n -= 4096
	}
}
