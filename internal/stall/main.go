// Command stall measures the edge's memory under stalled big headers: N
// loopback connections each send ~1 MB of header fields to a
// cellar binary and stall; it reports cellar's RSS before and the peak
// (make stall; bounded: 15 s of sampling, loopback only).
package main

import (
	"bytes"
	"flag"
	"fmt"
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

func rss(pid int) float64 {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "VmRSS:") {
			f := strings.Fields(l)
			n, _ := strconv.ParseFloat(f[1], 64)
			return n / 1024
		}
	}
	return 0
}

func fds(pid int) int {
	e, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	return len(e)
}

func free() string {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	defer ln.Close()
	return ln.Addr().String()
}

func main() {
	bin := flag.String("bin", "", "cellar binary")
	n := flag.Int("n", 1500, "connections")
	size := flag.Int("size", 1<<20, "header bytes per connection")
	flag.Parse()
	dir, _ := os.MkdirTemp("", "stall-")
	defer os.RemoveAll(dir)
	listen, admin := free(), free()
	cmd := exec.Command(*bin, "serve", "-listen", listen, "-admin", admin, "-data-dir", dir, "-access-log=false")
	if err := cmd.Start(); err != nil {
		panic(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	for i := 0; ; i++ {
		if r, err := http.Get("http://" + listen + "/page/1"); err == nil {
			r.Body.Close()
			break
		}
		if i > 300 {
			panic("no start")
		}
		time.Sleep(100 * time.Millisecond)
	}
	pid := cmd.Process.Pid
	time.Sleep(time.Second)
	before := rss(pid)
	fmt.Printf("before: RSS %.0f MiB, fds %d\n", before, fds(pid))
	var pad bytes.Buffer
	pad.WriteString("GET /page/1 HTTP/1.1\r\nHost: x\r\n")
	for i := 0; pad.Len() < *size; i++ {
		fmt.Fprintf(&pad, "X-Pad-%d: %s\r\n", i, strings.Repeat("a", 1000))
	}
	payload := pad.Bytes() // no final CRLF: the header never ends
	var wg sync.WaitGroup
	var writeErrs, open atomic.Int64
	var conns sync.Map
	start := time.Now()
	sem := make(chan struct{}, 200)
	for i := range *n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			c, err := net.Dial("tcp", listen)
			if err != nil {
				writeErrs.Add(1)
				return
			}
			conns.Store(i, c)
			open.Add(1)
			if _, err := c.Write(payload); err != nil {
				writeErrs.Add(1)
			}
		}()
	}
	peak, peakFds := before, 0
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	for t := time.Now(); time.Since(t) < 15*time.Second; time.Sleep(200 * time.Millisecond) {
		peak = max(peak, rss(pid))
		peakFds = max(peakFds, fds(pid))
	}
	<-done
	fmt.Printf("%d connections x %d header bytes, stalled (sent in %v; %d writes failed: the server closed them)\n", *n, len(payload), time.Since(start).Round(time.Millisecond), writeErrs.Load())
	fmt.Printf("peak within 15 s: RSS %.0f MiB, fds %d\n", peak, peakFds)
	conns.Range(func(_, v any) bool { v.(net.Conn).Close(); return true })
}
