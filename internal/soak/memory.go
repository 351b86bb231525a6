package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"io"
	"math"
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

	"github.com/cellar-cache/cellar/compress"
)

// The memory check (-mode memory) measures the resident memory of a
// cellar process against issue 14's two bounds, each on a fresh process
// at its defaults (access log on, to a file):
//
//   - fill: -memory 256MiB, fillObjects objects of fillSize bytes fetched
//     until every one is a memory hit, then hit for a while. The bound is
//     1.25 × the bytes of those objects + 64 MiB.
//   - mixed: -memory 64MiB for the given duration under hits on a hot set,
//     misses, uncacheable requests, and compressible bodies fetched as br,
//     gzip, zstd or identity, sizes 1 KiB to 1 MiB (log-uniform). The
//     bound is 256 MiB.
//
// The peak is the kernel's high-water mark of the process (VmHWM), so no
// spike between samples is missed. Every body is checked (decoded first
// when coded).
const (
	fillObjects = 1000
	fillSize    = 100 << 10
	mixedBound  = 256 << 20
)

// words make compressible text: a body is words picked at random (seeded
// by its path), about 3:1 under gzip.
var words = strings.Fields(`the a cache proxy object header body request response origin hit miss
	stale fresh store memory disk budget coding brotli gzip zstd identity vary etag age date
	content length type control max public private revalidate purge ban tag key value field`)

// memBody is the body of path on the memory check's origin: /f/ paths
// are fillSize random (incompressible) bytes; /t/ text and /o/ random
// bytes of a size in 1 KiB-1 MiB (log-uniform) drawn from the path.
func memBody(path string) []byte {
	h := fnv.New64a()
	io.WriteString(h, path)
	rnd := rand.New(rand.NewPCG(h.Sum64(), 14))
	size := fillSize
	if !strings.HasPrefix(path, "/f/") {
		size = int(math.Exp(math.Log(1<<10) + rnd.Float64()*math.Log(1<<10)))
	}
	b := make([]byte, 0, size+16)
	if strings.HasPrefix(path, "/t/") {
		for len(b) < size {
			b = append(append(b, words[rnd.IntN(len(words))]...), ' ')
		}
		return b[:size]
	}
	for len(b) < size {
		b = binary.LittleEndian.AppendUint64(b, rnd.Uint64())
	}
	return b[:size]
}

func memOrigin() (*http.Server, string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, "", err
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.Contains(r.URL.Path, "/nostore/") {
			w.Header().Set("Cache-Control", "no-store")
		} else {
			w.Header().Set("Cache-Control", "max-age=3600")
		}
		if strings.HasPrefix(r.URL.Path, "/t/") {
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
		} else {
			w.Header().Set("Content-Type", "application/octet-stream")
		}
		w.Write(memBody(r.URL.Path))
	}), ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	return srv, "http://" + ln.Addr().String(), nil
}

// cellarProc is a cellar serve process of the memory check.
type cellarProc struct {
	cmd           *exec.Cmd
	listen, admin string
	dir           string
	log           *os.File
}

func startCellar(bin, originURL, memory string) (*cellarProc, error) {
	dir, err := os.MkdirTemp("", "cellar-memory-")
	if err != nil {
		return nil, err
	}
	p := &cellarProc{listen: freeAddr(), admin: freeAddr(), dir: dir}
	p.cmd = exec.Command(bin, "serve", "-origin", originURL, "-listen", p.listen, "-admin", p.admin,
		"-data-dir", dir+"/data", "-memory", memory, "-access-log-path", dir+"/access.log")
	if p.log, err = os.Create(dir + "/cellar.log"); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	p.cmd.Stderr = p.log
	if err := p.cmd.Start(); err != nil {
		p.log.Close()
		os.RemoveAll(dir)
		return nil, err
	}
	for deadline := time.Now().Add(30 * time.Second); ; {
		if _, err = scrape(p.admin); err == nil {
			return p, nil
		}
		if time.Now().After(deadline) {
			p.stop()
			return nil, fmt.Errorf("cellar did not start: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (p *cellarProc) stop() {
	p.cmd.Process.Signal(os.Interrupt)
	p.cmd.Wait()
	p.log.Close()
	os.RemoveAll(p.dir)
}

// status returns a field of /proc/PID/status in bytes (VmRSS, VmHWM).
func (p *cellarProc) status(field string) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			kib, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kib << 10
		}
	}
	return 0
}

// breakdown prints what the resident memory is now: anonymous (the Go
// runtime's, and C allocations such as pebble's memtables and block
// cache) and file-backed (the binary's pages), and what the Go runtime
// holds (obtained from the system and not released).
func (p *cellarProc) breakdown(prefix string) {
	fmt.Printf("%s now RSS %.1f MiB = %.1f anonymous + %.1f file; the Go runtime holds %.1f MiB, its heap in use %.1f MiB\n",
		prefix, mib(p.status("VmRSS")), mib(p.status("RssAnon")), mib(p.status("RssFile")),
		(p.metric("go_memstats_sys_bytes")-p.metric("go_memstats_heap_released_bytes"))/(1<<20), p.metric("go_memstats_heap_inuse_bytes")/(1<<20))
}

// metric returns the first sample of a metric (with its labels, if any,
// as in the exposition: `cellar_store_bytes{tier="memory"}`).
func (p *cellarProc) metric(name string) float64 {
	resp, err := http.Get("http://" + p.admin + "/metrics")
	if err != nil {
		return math.NaN()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			x, _ := strconv.ParseFloat(strings.TrimSpace(v), 64)
			return x
		}
	}
	return math.NaN()
}

// memClient fetches and checks bodies.
type memClient struct {
	base   string
	client *http.Client
	bad    atomic.Int64
	first  atomic.Value
	served atomic.Int64
	hits   atomic.Int64
}

func newMemClient(listen string, conns int) *memClient {
	tr := &http.Transport{MaxIdleConns: conns, MaxIdleConnsPerHost: conns, MaxConnsPerHost: conns, DisableCompression: true}
	return &memClient{base: "http://" + listen, client: &http.Client{Transport: tr, Timeout: 60 * time.Second}}
}

func (c *memClient) fail(format string, args ...any) {
	c.bad.Add(1)
	c.first.CompareAndSwap(nil, fmt.Sprintf(format, args...))
}

// get fetches path accepting ae and checks the (decoded) body.
func (c *memClient) get(ctx context.Context, path, ae string) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, c.base+path, nil)
	if ae != "" {
		req.Header.Set("Accept-Encoding", ae)
	}
	resp, err := c.client.Do(req)
	if err != nil {
		if ctx.Err() == nil {
			c.fail("GET %s: %v", path, err)
		}
		return
	}
	defer resp.Body.Close()
	var r io.Reader = resp.Body
	coding := resp.Header.Get("Content-Encoding")
	if coding != "" {
		if ae == "" || !strings.Contains(ae, coding) {
			c.fail("GET %s accepting %q: coded %q", path, ae, coding)
			return
		}
		dr, err := compress.NewReader(resp.Body, coding)
		if err != nil {
			c.fail("GET %s: %v", path, err)
			return
		}
		defer dr.Close()
		r = dr
	}
	got, err := io.ReadAll(r)
	if err != nil {
		if ctx.Err() == nil {
			c.fail("GET %s (%s): body: %v", path, coding, err)
		}
		return
	}
	if resp.StatusCode != http.StatusOK || !bytes.Equal(got, memBody(path)) {
		c.fail("GET %s (%s): status %d, %d bytes, want the %d-byte body", path, coding, resp.StatusCode, len(got), len(memBody(path)))
		return
	}
	c.served.Add(1)
	if strings.Contains(resp.Header.Get("Cache-Status"), "; hit") {
		c.hits.Add(1)
	}
}

func (c *memClient) err() error {
	if c.bad.Load() > 0 {
		return fmt.Errorf("%d bad responses; first: %v", c.bad.Load(), c.first.Load())
	}
	return nil
}

func runMemory(bin string, conns int, dur time.Duration, hot int) error {
	osrv, originURL, err := memOrigin()
	if err != nil {
		return err
	}
	defer osrv.Close()
	fillErr := memFill(bin, originURL, conns)
	mixedErr := memMixed(bin, originURL, conns, dur, hot)
	if fillErr != nil || mixedErr != nil {
		return fmt.Errorf("fill: %v; mixed: %v", fillErr, mixedErr)
	}
	return nil
}

// memFill is the fill part of the memory check.
func memFill(bin, originURL string, conns int) error {
	p, err := startCellar(bin, originURL, "256MiB")
	if err != nil {
		return err
	}
	defer p.stop()
	c := newMemClient(p.listen, conns)
	ctx := context.Background()
	// Fetch every object until all are resident (the memory tier admits
	// in the background), then hit them for a few more rounds.
	var rounds int
	for rounds = 1; rounds <= 20; rounds++ {
		parallel(conns, fillObjects, func(i int) { c.get(ctx, fmt.Sprintf("/f/%d", i), "") })
		if p.metric(`cellar_store_objects{tier="memory"}`) >= fillObjects {
			break
		}
	}
	for range 5 {
		parallel(conns, fillObjects, func(i int) { c.get(ctx, fmt.Sprintf("/f/%d", i), "") })
	}
	n := int64(fillObjects * fillSize)
	bound := n + n/4 + 64<<20
	hwm, rss := p.status("VmHWM"), p.status("VmRSS")
	fmt.Printf("fill:  -memory 256MiB, %d × %d KiB (%.1f MiB) after %d rounds; %v memory objects, %.1f MiB charged; hits %d of %d\n",
		fillObjects, fillSize>>10, mib(n), rounds, p.metric(`cellar_store_objects{tier="memory"}`),
		p.metric(`cellar_store_bytes{tier="memory"}`)/(1<<20), c.hits.Load(), c.served.Load())
	fmt.Printf("fill:  RSS %.1f MiB, peak %.1f MiB; bound 1.25 × %.1f + 64 = %.1f MiB: %s; Go memory limit %.1f MiB\n",
		mib(rss), mib(hwm), mib(n), mib(bound), verdict(hwm <= bound), p.metric("go_gc_gomemlimit_bytes")/(1<<20))
	p.breakdown("fill: ")
	if err := c.err(); err != nil {
		return err
	}
	if hwm > bound {
		return fmt.Errorf("peak RSS %.1f MiB over the bound %.1f MiB", mib(hwm), mib(bound))
	}
	return nil
}

// memMixed is the mixed part of the memory check.
func memMixed(bin, originURL string, conns int, dur time.Duration, hot int) error {
	p, err := startCellar(bin, originURL, "64MiB")
	if err != nil {
		return err
	}
	defer p.stop()
	c := newMemClient(p.listen, conns)
	codings := []string{"br", "gzip", "zstd", "gzip, deflate, br, zstd", ""}
	var missID atomic.Int64
	ctx, cancel := context.WithTimeout(context.Background(), dur)
	defer cancel()
	var (
		wg    sync.WaitGroup
		limit atomic.Int64
	)
	wg.Go(func() { // the Go memory limit, at its highest during the load
		for ctx.Err() == nil {
			limit.Store(max(limit.Load(), int64(p.metric("go_gc_gomemlimit_bytes"))))
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
		}
	})
	start, gcs := time.Now(), p.metric("go_gc_duration_seconds_count")
	for range conns {
		wg.Go(func() {
			for ctx.Err() == nil {
				kind := "/t/"
				if rand.IntN(10) < 3 {
					kind = "/o/"
				}
				var path string
				switch x := rand.IntN(100); {
				case x < 65:
					path = fmt.Sprintf("%shot/%d", kind, rand.IntN(hot))
				case x < 90:
					path = fmt.Sprintf("%smiss/%d", kind, missID.Add(1))
				default:
					path = fmt.Sprintf("%snostore/%d", kind, rand.IntN(1000))
				}
				c.get(ctx, path, codings[rand.IntN(len(codings))])
			}
		})
	}
	wg.Wait()
	took := time.Since(start)
	hwm, rss := p.status("VmHWM"), p.status("VmRSS")
	fmt.Printf("mixed: -memory 64MiB, %d connections for %v: %d responses (%.0f/s), %d hits; %.1f MiB charged in memory; %.1f collections/s\n",
		conns, took.Round(time.Millisecond), c.served.Load(), float64(c.served.Load())/took.Seconds(), c.hits.Load(),
		p.metric(`cellar_store_bytes{tier="memory"}`)/(1<<20), (p.metric("go_gc_duration_seconds_count")-gcs)/took.Seconds())
	fmt.Printf("mixed: RSS %.1f MiB, peak %.1f MiB; bound %.0f MiB: %s; Go memory limit at most %.1f MiB\n",
		mib(rss), mib(hwm), mib(mixedBound), verdict(hwm <= mixedBound), mib(limit.Load()))
	p.breakdown("mixed:")
	if err := c.err(); err != nil {
		return err
	}
	if hwm > mixedBound {
		return fmt.Errorf("peak RSS %.1f MiB over the bound %.0f MiB", mib(hwm), mib(mixedBound))
	}
	return nil
}

// parallel calls f(0..n-1) from conns goroutines.
func parallel(conns, n int, f func(int)) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for range conns {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < n; i = int(next.Add(1) - 1) {
				f(i)
			}
		})
	}
	wg.Wait()
}

func mib(n int64) float64 { return float64(n) / (1 << 20) }

func verdict(ok bool) string {
	if ok {
		return "within"
	}
	return "OVER"
}
