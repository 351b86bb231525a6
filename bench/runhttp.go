package bench

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"math/bits"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/cellar-cache/cellar/internal/cli"
)

// Replayer sends a workload over HTTP, through a proxy, with bounded
// concurrency and an optional rate, and measures what comes back.
type Replayer struct {
	// BaseURL is where requests go: the proxy's URL (or the origin's, for
	// a baseline). Required. Each request is BaseURL + PathPrefix + key.
	BaseURL string
	// PathPrefix is the path before the key. Default "/o/".
	PathPrefix string
	// Next returns the next request to send; ok false ends the run.
	// Called from one goroutine. Required.
	Next func() (req Request, ok bool)
	// Concurrency is the number of requests in flight. Default 8.
	Concurrency int
	// Rate caps requests per second across all workers; zero means as fast
	// as the workers go.
	Rate float64
	// Requests bounds the number of requests; zero means until Next ends
	// or Duration passes.
	Requests int64
	// Duration bounds the run's wall time; zero means no bound.
	Duration time.Duration
	// Client sends the requests. Default: a client with keep-alive
	// connections for Concurrency workers and a 30 s timeout.
	Client *http.Client
	// Origin, if set, is the Origin behind the proxy: its counters give
	// the origin offload.
	Origin *Origin
	// Progress, if set, is called about every 100 ms with the requests
	// done so far; and with done = -1 at the end.
	Progress func(done int64, elapsed time.Duration)
	// now is time.Now unless a test replaces it.
	now func() time.Time
}

// HTTPReport is the outcome of a Replayer run. Its JSON form is what
// `cellar bench http -json` prints.
type HTTPReport struct {
	// Label names the target in tables and plots (-label; by default the
	// proxy's host:port, or "origin").
	Label    string `json:"label,omitempty"`
	Requests int64  `json:"requests"`
	// Errors counts transport errors and responses other than 200 and 304;
	// ErrorKinds breaks them down ("connection refused", "timeout",
	// "connection reset", "status 503", "other: ..."; see errorKind).
	Errors     int64            `json:"errors"`
	ErrorKinds map[string]int64 `json:"error_kinds,omitempty"`
	Bytes      int64            `json:"bytes"`
	Secs       float64          `json:"seconds"`
	// Throughput is completed requests per second.
	Throughput float64 `json:"requests_per_second"`
	// OriginRequests is what the origin counted (only with an own Origin;
	// -1 otherwise), and Offload the share of the successful requests it
	// did not see (zero when none succeeded).
	OriginRequests int64   `json:"origin_requests"`
	Offload        float64 `json:"origin_offload"`
	// CacheStatusSeen counts responses that said whether they were hits,
	// in a Cache-Status field (RFC 9211) or X-Cache / X-Cache-Status.
	CacheStatusSeen int64   `json:"cache_status_responses"`
	CacheHits       int64   `json:"cache_status_hits"`
	HitRatio        float64 `json:"hit_ratio"`
	// Latency percentiles in milliseconds (about 1.6% resolution).
	P50  float64 `json:"p50_ms"`
	P99  float64 `json:"p99_ms"`
	P999 float64 `json:"p999_ms"`
	Max  float64 `json:"max_ms"`
	// Latency is the distribution at LatencyQuantiles, for plots.
	Latency []Percentile `json:"latency_percentiles,omitempty"`
}

// ErrNoRequests is returned by Replayer.Run when nothing was sent.
var ErrNoRequests = errors.New("bench: no requests were sent")

// Run sends the workload and waits for every request it started.
func (p *Replayer) Run(ctx context.Context) (HTTPReport, error) {
	if p.BaseURL == "" || p.Next == nil {
		return HTTPReport{}, fmt.Errorf("%w: Replayer needs BaseURL and Next", ErrOptions)
	}
	base, err := url.Parse(strings.TrimSuffix(p.BaseURL, "/"))
	if err != nil || (base.Scheme != "http" && base.Scheme != "https") || base.Host == "" {
		return HTTPReport{}, fmt.Errorf("%w: base URL %q: want http://host[:port]", ErrOptions, p.BaseURL)
	}
	prefix := orDefault(p.PathPrefix, "/o/")
	conc := max(p.Concurrency, 1)
	if p.Concurrency == 0 {
		conc = 8
	}
	now := p.now
	if now == nil {
		now = time.Now
	}
	client := p.Client
	if client == nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.MaxIdleConnsPerHost = conc
		tr.MaxConnsPerHost = conc
		defer tr.CloseIdleConnections()
		client = &http.Client{Transport: tr, Timeout: 30 * time.Second}
	}
	if p.Duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, p.Duration)
		defer cancel()
	}
	var origin0 OriginCounts
	if p.Origin != nil {
		origin0 = p.Origin.Counts()
	}

	var (
		hist                                 latencyHist
		errKinds                             = map[string]int64{}
		histMu                               sync.Mutex // protects hist and errKinds
		done, errs, nbytes, seen, hits, sent atomic.Int64
	)
	work := make(chan Request, conc)
	var wg sync.WaitGroup
	for range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 32<<10)
			var local latencyHist
			localKinds := map[string]int64{}
			defer func() {
				histMu.Lock()
				hist.merge(&local)
				for k, n := range localKinds {
					errKinds[k] += n
				}
				histMu.Unlock()
			}()
			for r := range work {
				u := base.String() + prefix + strconv.FormatUint(r.Key, 10)
				t0 := now()
				n, status, cs, err := fetch(ctx, client, u, buf)
				if err != nil && ctx.Err() != nil {
					continue // cut short by the end of the run: not counted
				}
				local.add(now().Sub(t0))
				done.Add(1)
				nbytes.Add(n)
				if err != nil || (status != http.StatusOK && status != http.StatusNotModified) {
					errs.Add(1)
					localKinds[errorKind(err, status)]++
				}
				if cs != cacheUnknown {
					seen.Add(1)
					if cs == cacheHit {
						hits.Add(1)
					}
				}
			}
		}()
	}

	start := now()
	progressDone := make(chan struct{})
	var progressWG sync.WaitGroup
	if p.Progress != nil {
		progressWG.Add(1)
		go func() {
			defer progressWG.Done()
			t := time.NewTicker(100 * time.Millisecond)
			defer t.Stop()
			for {
				select {
				case <-progressDone:
					return
				case <-t.C:
					p.Progress(done.Load(), now().Sub(start))
				}
			}
		}()
	}

	// Produce, pacing by the rate: request i leaves at start + i/rate.
	var pace *time.Timer
produce:
	for i := int64(0); p.Requests == 0 || i < p.Requests; i++ {
		req, ok := p.Next()
		if !ok {
			break
		}
		if p.Rate > 0 {
			due := start.Add(time.Duration(float64(i) / p.Rate * float64(time.Second)))
			if wait := due.Sub(now()); wait > 0 {
				if pace == nil {
					pace = time.NewTimer(wait)
				} else {
					pace.Reset(wait)
				}
				select {
				case <-ctx.Done():
					break produce
				case <-pace.C:
				}
			}
		}
		select {
		case <-ctx.Done():
			break produce
		case work <- req:
			sent.Add(1)
		}
	}
	if pace != nil {
		pace.Stop()
	}
	close(work)
	wg.Wait()
	close(progressDone)
	progressWG.Wait()
	if p.Progress != nil {
		p.Progress(-1, now().Sub(start))
	}
	elapsed := now().Sub(start)

	rep := HTTPReport{
		Requests:        done.Load(),
		Errors:          errs.Load(),
		Bytes:           nbytes.Load(),
		Secs:            elapsed.Seconds(),
		OriginRequests:  -1,
		CacheStatusSeen: seen.Load(),
		CacheHits:       hits.Load(),
		P50:             hist.quantile(0.50).Seconds() * 1e3,
		P99:             hist.quantile(0.99).Seconds() * 1e3,
		P999:            hist.quantile(0.999).Seconds() * 1e3,
		Max:             hist.max.Seconds() * 1e3,
	}
	for _, q := range LatencyQuantiles {
		rep.Latency = append(rep.Latency, Percentile{Q: q, Ms: hist.quantile(q).Seconds() * 1e3})
	}
	if elapsed > 0 {
		rep.Throughput = float64(rep.Requests) / elapsed.Seconds()
	}
	if rep.CacheStatusSeen > 0 {
		rep.HitRatio = float64(rep.CacheHits) / float64(rep.CacheStatusSeen)
	}
	if len(errKinds) > 0 {
		rep.ErrorKinds = errKinds
	}
	if p.Origin != nil {
		rep.OriginRequests = p.Origin.Counts().Requests - origin0.Requests
		if ok := rep.Requests - rep.Errors; ok > 0 {
			rep.Offload = max(0, 1-float64(rep.OriginRequests)/float64(ok))
		}
	}
	if rep.Requests == 0 {
		if err := ctx.Err(); err != nil && !errors.Is(err, context.DeadlineExceeded) {
			return rep, err
		}
		return rep, ErrNoRequests
	}
	return rep, nil
}

// errorKind names a failed request's cause for HTTPReport.ErrorKinds.
func errorKind(err error, status int) string {
	var ne net.Error
	switch {
	case err == nil:
		return "status " + strconv.Itoa(status)
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "connection reset"
	case errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	}
	msg := err.Error()
	if i := strings.LastIndex(msg, ": "); i >= 0 {
		msg = msg[i+2:] // the cause, without the URL
	}
	return "other: " + msg
}

// ErrRequestsFailed is returned by RunHTTP when more requests failed than
// -max-errors allows; the report is printed first.
var ErrRequestsFailed = errors.New("bench: requests failed")

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

type cacheOutcome int

const (
	cacheUnknown cacheOutcome = iota
	cacheHit
	cacheMiss
)

// fetch GETs u, reads the body into buf (discarding it) and reports what
// the response said about caching.
func fetch(ctx context.Context, c *http.Client, u string, buf []byte) (int64, int, cacheOutcome, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return 0, 0, cacheUnknown, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, 0, cacheUnknown, err
	}
	defer resp.Body.Close()
	n, err := io.CopyBuffer(io.Discard, resp.Body, buf)
	return n, resp.StatusCode, parseCacheOutcome(resp.Header), err
}

// parseCacheOutcome reads Cache-Status (RFC 9211 §2): the last member is
// the cache nearest the client, the proxy under test; "hit" marks a hit
// (§2.1) and "fwd" a request forwarded to the next hop (§2.2). Without it,
// X-Cache and X-Cache-Status (Varnish, nginx $upstream_cache_status) are
// read: HIT, STALE, UPDATING and REVALIDATED count as hits.
func parseCacheOutcome(h http.Header) cacheOutcome {
	if vs := h.Values("Cache-Status"); len(vs) > 0 {
		members := strings.Split(strings.Join(vs, ","), ",")
		last := strings.TrimSpace(members[len(members)-1])
		params := strings.Split(last, ";")
		outcome := cacheUnknown
		for _, p := range params[1:] {
			name, _, _ := strings.Cut(strings.TrimSpace(p), "=")
			switch strings.ToLower(name) {
			case "hit":
				return cacheHit
			case "fwd":
				outcome = cacheMiss
			}
		}
		if outcome != cacheUnknown {
			return outcome
		}
	}
	for _, name := range []string{"X-Cache", "X-Cache-Status"} {
		v := strings.ToUpper(h.Get(name))
		if v == "" {
			continue
		}
		first, _, _ := strings.Cut(v, ",")
		for _, word := range []string{"HIT", "STALE", "UPDATING", "REVALIDATED"} {
			if strings.Contains(first, word) {
				return cacheHit
			}
		}
		return cacheMiss
	}
	return cacheUnknown
}

// latencyHist is a log-linear histogram of durations: 64 linear
// sub-buckets per power of two of nanoseconds, so quantiles are within
// about 1.6%, in fixed memory.
type latencyHist struct {
	counts [64][64]int64
	n      int64
	max    time.Duration
}

func (h *latencyHist) add(d time.Duration) {
	v := uint64(max(d, 0))
	e, s := histBucket(v)
	h.counts[e][s]++
	h.n++
	h.max = max(h.max, d)
}

func histBucket(v uint64) (e, s int) {
	if v < 64 {
		return 0, int(v)
	}
	e = bits.Len64(v) - 6 // v >> e is in [32, 64)
	return e, int(v >> e)
}

func (h *latencyHist) merge(o *latencyHist) {
	for e := range h.counts {
		for s := range h.counts[e] {
			h.counts[e][s] += o.counts[e][s]
		}
	}
	h.n += o.n
	h.max = max(h.max, o.max)
}

// quantile returns the upper edge of the bucket holding the q-quantile.
func (h *latencyHist) quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	rank := int64(math.Ceil(q * float64(h.n)))
	var seen int64
	for e := range h.counts {
		for s := range h.counts[e] {
			seen += h.counts[e][s]
			if seen >= rank && h.counts[e][s] > 0 {
				upper := time.Duration((uint64(s)+1)<<e - 1)
				if e == 0 {
					upper = time.Duration(s)
				}
				return min(upper, h.max)
			}
		}
	}
	return h.max
}

const httpUsage = `cellar bench http: load a running proxy over HTTP and report offload, hit ratio and latency

Usage: cellar bench http [-proxy ADDR] [flags]

-proxy and -origin take host:port or a URL.

Flags:
`

// RunHTTP implements `cellar bench http`: it starts an origin (unless
// -origin names one), replays a trace or a Zipf workload through -proxy
// and reports offload, hit ratio, throughput and latency. Run it with -h.
func RunHTTP(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("cellar bench http", flag.ContinueOnError)
	var (
		proxyURL     = fs.String("proxy", "", "`URL` of the proxy under test, configured with the origin as its upstream; empty sends straight to the origin (a baseline)")
		originURL    = fs.String("origin", "", "use this origin `URL` instead of starting one (offload is then not measured)")
		originListen = fs.String("origin-listen", "127.0.0.1:0", "address of the origin this command starts")
		cacheControl = fs.String("cache-control", "public, max-age=3600", `Cache-Control of the started origin's responses ("-": none)`)
		delay        = fs.Duration("delay", 0, "delay the started origin adds to every response")
		prefix       = fs.String("path-prefix", "/o/", "path before the object key")
		traceFile    = fs.String("trace", "", "trace `file` to replay; without it a Zipf workload is generated")
		format       = fs.String("format", "", "trace format (default: guessed from the file name)")
		zipfS        = fs.Float64("zipf", 0.9, "Zipf exponent of the generated workload")
		objects      = fs.Int("objects", 10_000, "distinct objects of the generated workload")
		seed         = fs.Uint64("seed", 1, "random seed of the generated workload")
		sizeMedian   = fs.String("size-median", "8KiB", "median object size (for generated workloads and traces without sizes)")
		sizeSigma    = fs.Float64("size-sigma", 0, "standard deviation of the log of object sizes")
		concurrency  = fs.Int("concurrency", 8, "requests in flight")
		rate         = fs.Float64("rate", 0, "requests per second (0: as fast as possible)")
		requests     = fs.Int64("requests", 0, "stop after this many requests (0: at the end of the trace, or 100000 for Zipf)")
		duration     = fs.Duration("duration", 0, "stop after this long (0: no limit)")
		jsonOut      = fs.Bool("json", false, "print the report as JSON")
		label        = fs.String("label", "", "`name` of the target in the report and the plot (default: the proxy's host:port, or \"origin\")")
		plotFile     = fs.String("plot", "", "draw latency against percentile into `file`.svg or .png, one line per target")
		plotWith     = fs.String("plot-with", "", "comma-separated `files` of earlier -json reports to draw beside this run (e.g. other proxies on the same workload)")
		maxErrors    = fs.Float64("max-errors", 0, "`fraction` of requests that may fail before the command exits with status 1 (0: none)")
	)
	if err := cli.Parse(fs, args, stdout, httpUsage); err != nil {
		return fmt.Errorf("%w: %w", ErrUsage, err)
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: unexpected arguments %q", ErrUsage, fs.Args())
	}
	var problems []string
	median, err := ParseBytes(*sizeMedian)
	if err != nil || median < 1 {
		problems = append(problems, fmt.Sprintf("-size-median %q: want a positive size", *sizeMedian))
	}
	if *concurrency < 1 || *concurrency > 10_000 {
		problems = append(problems, fmt.Sprintf("-concurrency %d: want 1 to 10000", *concurrency))
	}
	if *maxErrors < 0 || *maxErrors > 1 {
		problems = append(problems, fmt.Sprintf("-max-errors %v: want a fraction from 0 to 1", *maxErrors))
	}
	if *rate < 0 || *requests < 0 || *duration < 0 {
		problems = append(problems, "-rate, -requests and -duration must not be negative")
	}
	for _, u := range []struct {
		flag string
		v    *string
	}{{"-proxy", proxyURL}, {"-origin", originURL}} {
		if *u.v == "" {
			continue
		}
		norm, err := cli.URL(*u.v, false)
		if err != nil {
			problems = append(problems, fmt.Sprintf("%s %v", u.flag, err))
			continue
		}
		*u.v = norm
	}
	if ext := strings.ToLower(filepath.Ext(*plotFile)); *plotFile != "" && ext != ".svg" && ext != ".png" {
		problems = append(problems, fmt.Sprintf("-plot %q: want a .svg or .png file", *plotFile))
	}
	if *plotWith != "" && *plotFile == "" {
		problems = append(problems, "-plot-with needs -plot")
	}
	if len(problems) > 0 {
		return fmt.Errorf("%w: %s", ErrUsage, strings.Join(problems, "; "))
	}
	// Read earlier reports first, so that a bad file fails before the run.
	var earlier []HTTPReport
	for _, name := range splitList(*plotWith) {
		rs, err := ReadHTTPReports(name)
		if err != nil {
			return fmt.Errorf("%w: -plot-with: %w", ErrUsage, err)
		}
		earlier = append(earlier, rs...)
	}
	dist := SizeDist{Median: median, Sigma: *sizeSigma}

	// The workload.
	var next func() (Request, bool)
	var sizeOf func(uint64) int64
	if *traceFile != "" {
		f := Format("")
		if *format != "" {
			if f, err = ParseFormat(*format); err != nil {
				return fmt.Errorf("%w: -format: %w", ErrUsage, err)
			}
		}
		tr, err := Load(*traceFile, f)
		if err != nil {
			return err
		}
		st := tr.Stats()
		sizes := make(map[uint64]int64, st.Objects)
		for _, r := range tr.Requests {
			if _, ok := sizes[r.Key]; !ok {
				sizes[r.Key] = r.Size
			}
		}
		sized := st.Bytes != st.Requests
		sizeOf = func(k uint64) int64 {
			if s, ok := sizes[k]; ok && sized {
				return s
			}
			return dist.SizeOf(k, *seed)
		}
		i := 0
		next = func() (Request, bool) {
			if i >= len(tr.Requests) {
				return Request{}, false
			}
			i++
			return tr.Requests[i-1], true
		}
	} else {
		z, err := NewZipf(ZipfOptions{Objects: *objects, Exponent: *zipfS, Seed: *seed, Size: dist})
		if err != nil {
			return fmt.Errorf("%w: %w", ErrUsage, err)
		}
		sizeOf = z.SizeOf
		next = func() (Request, bool) { return z.Next(), true }
		if *requests == 0 && *duration == 0 {
			*requests = 100_000
		}
	}

	// The origin.
	var origin *Origin
	target := *originURL
	if target == "" {
		origin = NewOrigin(OriginOptions{SizeOf: sizeOf, CacheControl: *cacheControl, Delay: *delay, PathPrefix: *prefix})
		ln, err := net.Listen("tcp", *originListen)
		if err != nil {
			return fmt.Errorf("starting the origin: %w", err)
		}
		srv := &http.Server{Handler: origin, ReadHeaderTimeout: 10 * time.Second}
		served := make(chan error, 1)
		go func() { served <- srv.Serve(ln) }()
		defer func() {
			shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			srv.Shutdown(shutdownCtx)
			<-served
		}()
		target = "http://" + ln.Addr().String()
		fmt.Fprintf(stderr, "origin listening on %s\n", target)
	}
	base := *proxyURL
	if base == "" {
		base = target
	}

	rp := &Replayer{
		BaseURL:     base,
		PathPrefix:  *prefix,
		Next:        next,
		Concurrency: *concurrency,
		Rate:        *rate,
		Requests:    *requests,
		Duration:    *duration,
		Origin:      origin,
	}
	if isTerminal(stderr) {
		total := *requests
		rp.Progress = func(done int64, elapsed time.Duration) {
			if done < 0 {
				fmt.Fprint(stderr, "\r\033[K")
				return
			}
			if elapsed < time.Second {
				return
			}
			if total > 0 {
				fmt.Fprintf(stderr, "\r\033[K%d/%d requests, %.0f/s", done, total, float64(done)/elapsed.Seconds())
			} else {
				fmt.Fprintf(stderr, "\r\033[K%d requests, %.0f/s", done, float64(done)/elapsed.Seconds())
			}
		}
	}
	rep, err := rp.Run(ctx)
	if err != nil {
		return err
	}
	rep.Label = *label
	if rep.Label == "" {
		rep.Label = labelFor(*proxyURL)
	}
	if *jsonOut {
		err = json.NewEncoder(stdout).Encode(rep)
	} else {
		err = WriteHTTPReport(stdout, rep)
	}
	if err != nil {
		return err
	}
	if *plotFile != "" {
		title := fmt.Sprintf("Latency, %d requests at concurrency %d", rep.Requests, *concurrency)
		if err := WritePlotFile(*plotFile, PlotLatency(title, append(earlier, rep))); err != nil {
			return err
		}
	}
	if float64(rep.Errors) > *maxErrors*float64(rep.Requests) {
		return fmt.Errorf("%w: %d of %d (%s); is %s serving?", ErrRequestsFailed, rep.Errors, rep.Requests, formatKinds(rep.ErrorKinds), base)
	}
	return nil
}

// formatKinds lists error kinds, most frequent first.
func formatKinds(kinds map[string]int64) string {
	names := make([]string, 0, len(kinds))
	for k := range kinds {
		names = append(names, k)
	}
	sort.Slice(names, func(i, j int) bool {
		if kinds[names[i]] != kinds[names[j]] {
			return kinds[names[i]] > kinds[names[j]]
		}
		return names[i] < names[j]
	})
	parts := make([]string, len(names))
	for i, k := range names {
		parts[i] = fmt.Sprintf("%d %s", kinds[k], k)
	}
	return strings.Join(parts, ", ")
}

// WriteHTTPReport prints a report as a two-column table.
func WriteHTTPReport(w io.Writer, r HTTPReport) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	if r.Label != "" {
		fmt.Fprintf(tw, "target\t%s\n", r.Label)
	}
	fmt.Fprintf(tw, "requests\t%d (%d errors)\n", r.Requests, r.Errors)
	if r.Errors > 0 {
		fmt.Fprintf(tw, "errors\t%s\n", formatKinds(r.ErrorKinds))
	}
	fmt.Fprintf(tw, "throughput\t%.0f requests/s, %s/s\n", r.Throughput, FormatCapacity(int64(float64(r.Bytes)/max(r.Secs, 1e-9)), true))
	switch {
	case r.OriginRequests >= 0 && r.Errors >= r.Requests:
		fmt.Fprintf(tw, "origin offload\tn/a (every request failed)\n")
	case r.OriginRequests >= 0:
		fmt.Fprintf(tw, "origin offload\t%.2f%% of successful requests (%d origin requests)\n", 100*r.Offload, r.OriginRequests)
	default:
		fmt.Fprintf(tw, "origin offload\tn/a (origin not started by this command)\n")
	}
	if r.CacheStatusSeen > 0 {
		fmt.Fprintf(tw, "hit ratio (Cache-Status)\t%.2f%% of %d responses\n", 100*r.HitRatio, r.CacheStatusSeen)
	} else {
		fmt.Fprintf(tw, "hit ratio (Cache-Status)\tn/a (no Cache-Status, X-Cache or X-Cache-Status)\n")
	}
	fmt.Fprintf(tw, "latency p50 / p99 / p99.9 / max\t%.3f / %.3f / %.3f / %.3f ms\n", r.P50, r.P99, r.P999, r.Max)
	return tw.Flush()
}
