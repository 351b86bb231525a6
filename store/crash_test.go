package store

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
)

const crashDirEnv = "CELLAR_STORE_CRASH_DIR"

// TestCrashHelper is the child process of TestKillNineKeepsCommittedDropsPartial:
// it stores, purges, starts a fill, says "ready" and waits to be killed.
func TestCrashHelper(t *testing.T) {
	dir := os.Getenv(crashDirEnv)
	if dir == "" {
		t.Skip("child process of TestKillNineKeepsCommittedDropsPartial")
	}
	opts := Options{Dir: dir, DiskBytes: 64 << 20, ChunkSize: 4 << 10}
	s, err := Open(opts)
	if err != nil {
		fmt.Println("open:", err)
		os.Exit(1)
	}
	put(t, s, "committed", body(50_000, 1), CreateOptions{Tags: []string{"t"}, SizeHint: -1})
	put(t, s, "purged", body(50_000, 2), CreateOptions{SizeHint: -1})
	if _, err := s.Purge(context.Background(), Selector{URL: "purged"}, false); err != nil {
		fmt.Println("purge:", err)
		os.Exit(1)
	}
	w, err := s.Create(context.Background(), "partial", testMeta(), CreateOptions{SizeHint: -1})
	if err != nil {
		fmt.Println("create:", err)
		os.Exit(1)
	}
	w.Write(body(100_000, 3))
	fmt.Println("ready")
	select {} // killed here
}

func TestKillNineKeepsCommittedDropsPartial(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a child process")
	}
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashHelper$")
	cmd.Env = append(os.Environ(), crashDirEnv+"="+dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(out)
	var lines []string
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if strings.TrimSpace(sc.Text()) == "ready" {
			break
		}
	}
	cmd.Process.Kill() // SIGKILL: no Close, no deferred work
	cmd.Wait()
	if len(lines) == 0 || lines[len(lines)-1] != "ready" {
		t.Fatalf("child did not get ready: %q", lines)
	}

	opts := testOptions(t)
	opts.Dir = dir
	s := openTest(t, opts)
	ctx := context.Background()
	o, err := s.Get(ctx, "committed")
	if err != nil || !bytes.Equal(readAll(t, s, o), body(50_000, 1)) {
		t.Fatalf("committed object after kill -9: %v", err)
	}
	for _, k := range []string{"purged", "partial"} {
		if _, err := s.Get(ctx, k); !errors.Is(err, ErrNotFound) {
			t.Fatalf("%s after kill -9: %v, want ErrNotFound", k, err)
		}
	}
	if n, err := s.Purge(ctx, Selector{Tag: "t"}, false); n != 1 || err != nil {
		t.Fatalf("tag index after kill -9: purged %d, %v", n, err)
	}
	s.Close()
	if n := rawKeys(t, dir, prefixChunk); n != 0 {
		t.Fatalf("%d chunk records survive, want 0", n)
	}
}
