// Command soak runs a bounded soak test of a cellar binary: it starts an
// origin of its own and cellar in front of it, then drives a mix of hits,
// misses, uncacheable requests and purges over many client connections for
// a fixed time, checks every body byte for byte, and reports cellar's
// resident memory, goroutines and open descriptors before, during (the
// peak) and after the load. It exits 1 when any request failed or a body
// was wrong. `make soak` runs it; it is not part of `make test`. With
// -mode memory it checks cellar's resident memory instead (memory.go,
// `make soak-memory`).
package main

import (
	"bufio"
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

func main() {
	bin := flag.String("bin", "bin/cellar", "cellar binary")
	conns := flag.Int("conns", 500, "concurrent client connections")
	dur := flag.Duration("duration", 60*time.Second, "how long the load runs")
	hot := flag.Int("hot", 300, "objects in the hit set")
	mode := flag.String("mode", "mixed", "mixed: hits, misses, uncacheable requests and purges, every body checked; memory: peak RSS against issue 14's bounds (memory.go)")
	flag.Parse()
	run := run
	switch *mode {
	case "mixed":
	case "memory":
		run = runMemory
	default:
		fmt.Fprintf(os.Stderr, "soak: -mode %q: want mixed or memory\n", *mode)
		os.Exit(2)
	}
	if err := run(*bin, *conns, *dur, *hot); err != nil {
		fmt.Fprintln(os.Stderr, "soak:", err)
		os.Exit(1)
	}
}

// body is the deterministic body of path: the client can check every byte.
func body(path string) []byte {
	h := 0
	for _, c := range path {
		h = h*31 + int(c)
	}
	size := 512 + (h&0x7fffffff)%(128<<10) // 512 B to 128 KiB
	line := []byte(path + "\n")
	return bytes.Repeat(line, size/len(line)+1)[:size]
}

func origin() (*http.Server, string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, "", err
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case strings.HasPrefix(r.URL.Path, "/nostore/"):
			w.Header().Set("Cache-Control", "no-store")
		default:
			w.Header().Set("Cache-Control", "max-age=3600")
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Write(body(r.URL.Path))
	}), ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	return srv, "http://" + ln.Addr().String(), nil
}

func freeAddr() string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// figures are cellar's process figures from its /metrics.
type figures struct{ rss, goroutines, fds float64 }

func (f figures) String() string {
	return fmt.Sprintf("RSS %6.1f MiB  goroutines %6.0f  fds %5.0f", f.rss/(1<<20), f.goroutines, f.fds)
}

func scrape(admin string) (figures, error) {
	resp, err := http.Get("http://" + admin + "/metrics")
	if err != nil {
		return figures{}, err
	}
	defer resp.Body.Close()
	var f figures
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		name, v, ok := strings.Cut(sc.Text(), " ")
		if !ok {
			continue
		}
		x, _ := strconv.ParseFloat(v, 64)
		switch name {
		case "process_resident_memory_bytes":
			f.rss = x
		case "go_goroutines":
			f.goroutines = x
		case "process_open_fds":
			f.fds = x
		}
	}
	return f, sc.Err()
}

func run(bin string, conns int, dur time.Duration, hot int) error {
	osrv, originURL, err := origin()
	if err != nil {
		return err
	}
	defer osrv.Close()
	dir, err := os.MkdirTemp("", "cellar-soak-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	listen, admin := freeAddr(), freeAddr()
	cmd := exec.Command(bin, "serve", "-origin", originURL, "-listen", listen, "-admin", admin,
		"-data-dir", dir, "-memory", "64MiB", "-disk", "512MiB", "-access-log=false")
	logf, err := os.Create(dir + "/cellar.log")
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd.Stderr = logf // purges log a line each; shown only when something failed
	if err := cmd.Start(); err != nil {
		return err
	}
	defer func() {
		cmd.Process.Signal(os.Interrupt)
		cmd.Wait()
	}()
	var before figures
	for deadline := time.Now().Add(30 * time.Second); ; {
		if before, err = scrape(admin); err == nil {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("cellar did not start: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	fmt.Printf("soak: %d connections for %v against %s (origin %s)\n", conns, dur, listen, originURL)
	fmt.Printf("before: %v\n", before)

	tr := &http.Transport{MaxIdleConns: conns, MaxIdleConnsPerHost: conns, MaxConnsPerHost: conns, DisableCompression: true}
	client := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	base := "http://" + listen
	var (
		counts                [4]atomic.Int64 // hit, miss, nostore, purge
		failures, wrongBodies atomic.Int64
		firstErr              atomic.Value
		missID                atomic.Int64
	)
	fail := func(err error) {
		failures.Add(1)
		firstErr.CompareAndSwap(nil, err.Error())
	}
	ctx, cancel := context.WithTimeout(context.Background(), dur)
	defer cancel()
	var peak figures
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // sample during the load
		defer wg.Done()
		t := time.NewTicker(2 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				if f, err := scrape(admin); err == nil {
					peak.rss, peak.goroutines, peak.fds = max(peak.rss, f.rss), max(peak.goroutines, f.goroutines), max(peak.fds, f.fds)
				}
			}
		}
	}()
	start := time.Now()
	for range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				var path, method = "", http.MethodGet
				kind := 0
				switch x := rand.IntN(100); {
				case x < 60:
					path = fmt.Sprintf("/hit/%d", rand.IntN(hot))
				case x < 80:
					kind, path = 1, fmt.Sprintf("/miss/%d", missID.Add(1))
				case x < 97:
					kind, path = 2, fmt.Sprintf("/nostore/%d", rand.IntN(1000))
				default:
					kind, path, method = 3, fmt.Sprintf("/hit/%d", rand.IntN(hot)), "PURGE"
				}
				req, _ := http.NewRequestWithContext(ctx, method, base+path, nil)
				resp, err := client.Do(req)
				if err != nil {
					if ctx.Err() == nil {
						fail(fmt.Errorf("%s %s: %w", method, path, err))
					}
					continue
				}
				got, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				if err != nil {
					if ctx.Err() == nil {
						fail(fmt.Errorf("%s %s: body: %w", method, path, err))
					}
					continue
				}
				counts[kind].Add(1)
				if method == "PURGE" {
					if resp.StatusCode != 200 && resp.StatusCode != 404 {
						fail(fmt.Errorf("PURGE %s: %d", path, resp.StatusCode))
					}
					continue
				}
				if resp.StatusCode != 200 || !bytes.Equal(got, body(path)) {
					wrongBodies.Add(1)
					firstErr.CompareAndSwap(nil, fmt.Sprintf("GET %s: status %d, %d bytes, want the %d-byte body", path, resp.StatusCode, len(got), len(body(path))))
				}
			}
		}()
	}
	wg.Wait()
	took := time.Since(start)
	during, _ := scrape(admin)
	peak.rss, peak.goroutines, peak.fds = max(peak.rss, during.rss), max(peak.goroutines, during.goroutines), max(peak.fds, during.fds)
	tr.CloseIdleConnections()
	time.Sleep(3 * time.Second) // let cellar notice the closed connections
	after, err := scrape(admin)
	if err != nil {
		return err
	}
	total := counts[0].Load() + counts[1].Load() + counts[2].Load() + counts[3].Load()
	fmt.Printf("peak:   %v\n", peak)
	fmt.Printf("after:  %v  (client connections closed, 3 s later)\n", after)
	fmt.Printf("requests: %d in %v (%.0f/s): %d hot, %d misses, %d uncacheable, %d purges; %d failed, %d wrong bodies\n",
		total, took.Round(time.Millisecond), float64(total)/took.Seconds(), counts[0].Load(), counts[1].Load(), counts[2].Load(), counts[3].Load(), failures.Load(), wrongBodies.Load())
	if failures.Load() > 0 || wrongBodies.Load() > 0 {
		if b, err := os.ReadFile(logf.Name()); err == nil {
			os.Stderr.Write(b[max(0, len(b)-8<<10):])
		}
		return fmt.Errorf("first problem: %v", firstErr.Load())
	}
	return nil
}
