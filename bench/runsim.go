package bench

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/cellar-cache/cellar/internal/cli"
)

// ErrUsage is returned by RunSim and RunHTTP for bad command-line arguments;
// the message says which flag and why.
var ErrUsage = errors.New("bench: usage")

// PolicyNames lists the policies RunSim knows, in the order of its help.
var PolicyNames = []string{"lru", "arc", "wtinylfu", "opt", "ristretto", "ristretto-wait", "cellar"}

// RunSim implements `cellar bench sim`: it replays a trace file or a Zipf
// workload through the chosen policies at each capacity and prints a table,
// or JSON with -json, and draws -plot. Run it with -h for the flags.
const simUsage = `cellar bench sim: hit ratios of cache policies on a trace or a Zipf workload, in process

Usage: cellar bench sim [flags]

Flags:
`

func RunSim(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("cellar bench sim", flag.ContinueOnError)
	var (
		traceFile  = fs.String("trace", "", "trace `file` (gzip, xz or zstd compressed files are read directly); without it a Zipf workload is generated")
		format     = fs.String("format", "", "trace format: arc, lirs, cache2k, adaptsize or csv (default: guessed from the file name)")
		zipfS      = fs.Float64("zipf", 0.9, "Zipf exponent of the generated workload")
		objects    = fs.Int("objects", 100_000, "distinct objects of the generated workload")
		requests   = fs.Int("requests", 1_000_000, "requests of the generated workload; with -trace, replay at most this many if set explicitly")
		seed       = fs.Uint64("seed", 1, "random seed of the generated workload and of the cellar policy's hashes (the same seed replays the same decisions)")
		sizeMedian = fs.String("size-median", "1", "median object size of the generated workload (e.g. 16KiB)")
		sizeSigma  = fs.Float64("size-sigma", 0, "standard deviation of the log of object sizes (0: all objects the median size)")
		scanEvery  = fs.Int("scan-every", 0, "insert a scan burst after every N generated requests (0: none)")
		scanLength = fs.Int("scan-length", 1000, "requests per scan burst")
		policies   = fs.String("policy", "lru,opt,ristretto-wait", "comma-separated policies: "+strings.Join(PolicyNames, ", "))
		capacities = fs.String("capacity", "", "comma-separated capacities in objects (default: 1,2,5,10,20% of the distinct objects)")
		byteCaps   = fs.String("bytes", "", "comma-separated capacities in bytes, e.g. 64MiB,128MiB (instead of -capacity)")
		objSize    = fs.String("object-size", "", "give every object of a trace without sizes (arc, lirs, cache2k) this size, e.g. 4KiB, so that -bytes budgets and the cellar policy apply")
		memFrac    = fs.Float64("cellar-memory", 0.1, "cellar policy: the memory tier's budget as a share of each capacity, in front of a disk tier whose budget for objects is the whole capacity (memory holds copies of disk objects)")
		jsonOut    = fs.Bool("json", false, "print JSON, one object per policy and capacity, instead of a table")
		plotFile   = fs.String("plot", "", "draw hit ratio against capacity into `file`.svg or .png")
	)
	if err := cli.Parse(fs, args, stdout, simUsage); err != nil {
		return fmt.Errorf("%w: %w", ErrUsage, err)
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: unexpected arguments %q", ErrUsage, fs.Args())
	}
	requestsSet := false
	fs.Visit(func(f *flag.Flag) { requestsSet = requestsSet || f.Name == "requests" })

	var problems []string
	names := splitList(*policies)
	for _, n := range names {
		if !validPolicy(n) {
			problems = append(problems, fmt.Sprintf("-policy %q: want one of %s", n, strings.Join(PolicyNames, ", ")))
		}
	}
	if *capacities != "" && *byteCaps != "" {
		problems = append(problems, "-capacity and -bytes: give one of them")
	}
	var caps []int64
	bytesMode := *byteCaps != ""
	for _, c := range splitList(*capacities + *byteCaps) {
		v, err := ParseBytes(c)
		if err != nil || v <= 0 {
			problems = append(problems, fmt.Sprintf("capacity %q: want a positive number, with a unit such as MiB for -bytes", c))
			continue
		}
		caps = append(caps, v)
	}
	var fixedSize int64
	if *objSize != "" {
		v, err := ParseBytes(*objSize)
		if err != nil || v <= 0 {
			problems = append(problems, fmt.Sprintf("-object-size %q: want a positive size such as 4KiB", *objSize))
		}
		fixedSize = v
	}
	median, err := ParseBytes(*sizeMedian)
	if err != nil {
		problems = append(problems, fmt.Sprintf("-size-median %q: %v", *sizeMedian, err))
	}
	if *memFrac < 0 || *memFrac > 1 {
		problems = append(problems, fmt.Sprintf("-cellar-memory %v: want a share in [0, 1]", *memFrac))
	}
	if ext := strings.ToLower(filepath.Ext(*plotFile)); *plotFile != "" && ext != ".svg" && ext != ".png" {
		problems = append(problems, fmt.Sprintf("-plot %q: want a .svg or .png file", *plotFile))
	}
	if len(problems) > 0 {
		return fmt.Errorf("%w: %s", ErrUsage, strings.Join(problems, "; "))
	}

	var tr *Trace
	if *traceFile != "" {
		f, err := Format(""), error(nil)
		if *format != "" {
			if f, err = ParseFormat(*format); err != nil {
				return fmt.Errorf("%w: -format: %w", ErrUsage, err)
			}
		}
		if tr, err = Load(*traceFile, f); err != nil {
			return err
		}
		if requestsSet && *requests < len(tr.Requests) {
			tr.Requests = tr.Requests[:*requests]
		}
		if fixedSize > 0 {
			if err := tr.SetObjectSize(fixedSize); err != nil {
				return fmt.Errorf("%w: -object-size: %w", ErrUsage, err)
			}
		}
	} else {
		z, err := NewZipf(ZipfOptions{
			Objects: *objects, Exponent: *zipfS, Requests: *requests, Seed: *seed,
			Size:      SizeDist{Median: median, Sigma: *sizeSigma},
			ScanEvery: *scanEvery, ScanLength: *scanLength,
		})
		if err != nil {
			return fmt.Errorf("%w: %w", ErrUsage, err)
		}
		tr = z.Trace()
	}
	stats := tr.Stats()
	if len(caps) == 0 {
		for _, pct := range []int64{1, 2, 5, 10, 20} {
			caps = append(caps, max(1, stats.Objects*pct/100))
		}
	}

	sim := &Simulation{
		Trace:          tr,
		Policies:       names,
		Capacities:     caps,
		Bytes:          bytesMode,
		CellarMemShare: *memFrac,
		Seed:           *seed,
	}
	if isTerminal(stderr) {
		sim.Progress = newProgressBar(stderr, time.Now)
	} else {
		sim.Progress = newProgressLines(stderr, time.Now, 5*time.Second)
	}
	results, err := sim.Run(ctx)
	if err != nil {
		return err
	}
	if *jsonOut {
		enc := json.NewEncoder(stdout)
		for _, r := range results {
			if err := enc.Encode(r); err != nil {
				return err
			}
		}
	} else if err := WriteTable(stdout, results, stats); err != nil {
		return err
	}
	if *plotFile != "" {
		if err := WritePlotFile(*plotFile, PlotFromResults(tr.Name, results)); err != nil {
			return err
		}
	}
	return nil
}

// Simulation replays one trace through several policies at several
// capacities, one run after the other (the machine is shared; a run is
// single-threaded and deterministic except for "ristretto").
type Simulation struct {
	Trace      *Trace
	Policies   []string
	Capacities []int64
	// Bytes makes Capacities byte budgets.
	Bytes bool
	// CellarMemShare is the share of a capacity given to the cellar
	// policy's memory tier, in front of a disk tier whose budget for
	// objects is the whole capacity (the memory tier holds copies of disk
	// objects: newCellarPolicy). Zero means 0.1.
	CellarMemShare float64
	// Seed seeds the cellar policy's hashes (CellarOptions.Seed).
	Seed uint64
	// Progress, if not nil, is told about each run's progress.
	Progress func(label string, done, total int)
}

// Run runs every policy at every capacity.
func (s *Simulation) Run(ctx context.Context) ([]Result, error) {
	stats := s.Trace.Stats()
	meanSize := int64(1)
	if stats.Requests > 0 {
		meanSize = max(1, stats.Bytes/stats.Requests)
	}
	var results []Result
	for _, name := range s.Policies {
		for _, c := range s.Capacities {
			p, err := s.newPolicy(ctx, name, c, meanSize)
			if err != nil {
				return nil, err
			}
			label := fmt.Sprintf("%s %s", name, FormatCapacity(c, s.Bytes))
			var progress func(int)
			if s.Progress != nil {
				progress = func(done int) { s.Progress(label, done, len(s.Trace.Requests)) }
			}
			start := time.Now()
			res, err := Replay(ctx, p, s.Trace.Requests, progress)
			res.Trace, res.Capacity, res.Bytes = s.Trace.Name, c, s.Bytes
			res.TraceObjects, res.TraceMaxHitRatio = stats.Objects, stats.MaxHitRatio
			res.ElapsedSeconds = time.Since(start).Seconds()
			if r, ok := p.(residentReporter); ok {
				res.Resident = r.resident()
			}
			if cl, ok := p.(io.Closer); ok {
				err = errors.Join(err, cl.Close())
			}
			if err != nil {
				return nil, fmt.Errorf("%s: %w", label, err)
			}
			results = append(results, res)
		}
	}
	return results, nil
}

func validPolicy(name string) bool {
	for _, n := range PolicyNames {
		if n == name {
			return true
		}
	}
	return false
}

func (s *Simulation) newPolicy(ctx context.Context, name string, capacity, meanSize int64) (Policy, error) {
	switch name {
	case "lru":
		if s.Bytes {
			return NewLRUBytes(capacity), nil
		}
		return NewLRU(capacity), nil
	case "arc":
		if s.Bytes {
			return NewARCBytes(capacity), nil
		}
		return NewARC(capacity), nil
	case "wtinylfu":
		if s.Bytes {
			return NewWTinyLFUBytes(capacity, meanSize), nil
		}
		return NewWTinyLFU(capacity), nil
	case "opt":
		if s.Bytes {
			return NewOPTBytes(s.Trace.Requests, capacity), nil
		}
		return NewOPT(s.Trace.Requests, capacity), nil
	case "ristretto", "ristretto-wait":
		return NewRistretto(RistrettoOptions{Capacity: capacity, Bytes: s.Bytes, MeanSize: meanSize, Wait: name == "ristretto-wait"})
	case "cellar":
		share := s.CellarMemShare
		if share == 0 {
			share = 0.1
		}
		return newCellarPolicy(ctx, capacity, s.Bytes, share, meanSize, s.Seed)
	}
	return nil, fmt.Errorf("%w: unknown policy %q", ErrUsage, name)
}

// WriteTable prints results as an aligned table, after a line describing
// the trace.
func WriteTable(w io.Writer, results []Result, st Stats) error {
	fmt.Fprintf(w, "%d requests, %d objects", st.Requests, st.Objects)
	if st.Bytes != st.Requests { // the trace has sizes
		fmt.Fprintf(w, ", %s requested, %s distinct", FormatCapacity(st.Bytes, true), FormatCapacity(st.UniqueBytes, true))
	}
	fmt.Fprintf(w, "; largest possible hit ratio %.2f%%\n", 100*st.MaxHitRatio)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "policy\tcapacity\trequests\thits\thit ratio\tbyte hit ratio\t")
	for _, r := range results {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%.2f%%\t%.2f%%\t\n",
			r.Policy, FormatCapacity(r.Capacity, r.Bytes), r.Requests, r.Hits, 100*r.HitRatio, 100*r.ByteHitRatio)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, r := range results {
		if res := r.Resident; res != nil {
			fmt.Fprintf(w, "%s %s at the end: memory %d objects, %s of %s (%.1f%%); disk %d objects, %s of %s for objects (%.1f%%)\n",
				r.Policy, FormatCapacity(r.Capacity, r.Bytes),
				res.MemoryObjects, FormatCapacity(res.MemoryBytes, true), FormatCapacity(res.MemoryBudget, true), pct(res.MemoryBytes, res.MemoryBudget),
				res.DiskObjects, FormatCapacity(res.DiskBytes, true), FormatCapacity(res.DiskBudget, true), pct(res.DiskBytes, res.DiskBudget))
		}
	}
	return nil
}

var byteUnits = []struct {
	suffix string
	mult   int64
}{
	{"kib", 1 << 10}, {"mib", 1 << 20}, {"gib", 1 << 30}, {"tib", 1 << 40},
	{"kb", 1e3}, {"mb", 1e6}, {"gb", 1e9}, {"tb", 1e12},
	{"k", 1 << 10}, {"m", 1 << 20}, {"g", 1 << 30}, {"t", 1 << 40},
	{"b", 1}, {"", 1},
}

// ParseBytes parses a count with an optional unit: 1000, 64MiB, 1.5GB. The
// short units k, m, g and t are binary, like KiB, MiB, GiB and TiB.
func ParseBytes(s string) (int64, error) {
	t := strings.ToLower(strings.TrimSpace(s))
	for _, u := range byteUnits {
		num, ok := strings.CutSuffix(t, u.suffix)
		if !ok {
			continue
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(num), 64)
		if err != nil {
			continue
		}
		b := v * float64(u.mult)
		if b < 0 || b > math.MaxInt64/2 || math.IsNaN(b) {
			return 0, fmt.Errorf("%q out of range", s)
		}
		return int64(math.Round(b)), nil
	}
	return 0, fmt.Errorf("%q is not a number with an optional unit (KiB, MiB, GiB, KB, MB, GB)", s)
}

// FormatCapacity prints a byte capacity with a binary unit, and an object
// capacity as a plain number.
func FormatCapacity(c int64, bytes bool) string {
	if !bytes {
		return strconv.FormatInt(c, 10)
	}
	for _, u := range []struct {
		name string
		mult int64
	}{{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if c >= u.mult {
			return fmt.Sprintf("%.4g%s", float64(c)/float64(u.mult), u.name)
		}
	}
	return strconv.FormatInt(c, 10) + "B"
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// isTerminal reports whether w is a character device, where a progress bar
// makes sense.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

func pct(a, b int64) float64 {
	if b <= 0 {
		return 0
	}
	return 100 * float64(a) / float64(b)
}

// newProgressLines returns a Simulation.Progress for a stderr that is not a
// terminal (CI, nohup): a line with the run, its progress and its rate at
// most every interval, and one when a run that printed ends.
func newProgressLines(w io.Writer, now func() time.Time, interval time.Duration) func(label string, done, total int) {
	var (
		current     string
		start, last time.Time
		printed     bool
	)
	return func(label string, done, total int) {
		t := now()
		if label != current {
			current, start, last, printed = label, t, t, false
		}
		end := done >= total
		if !(end && printed) && t.Sub(last) < interval {
			return
		}
		last, printed = t, true
		rate := float64(done) / max(t.Sub(start).Seconds(), 1e-9)
		fmt.Fprintf(w, "%s: %d of %d requests (%d%%), %.0f requests/s\n", label, done, total, 100*done/max(total, 1), rate)
	}
}

// newProgressBar returns a Simulation.Progress that draws a bar on w once a
// run has taken more than a second, and clears it when the run ends.
func newProgressBar(w io.Writer, now func() time.Time) func(label string, done, total int) {
	var (
		current string
		start   time.Time
		drawn   bool
		last    time.Time
	)
	return func(label string, done, total int) {
		t := now()
		if label != current {
			current, start, drawn = label, t, false
		}
		if done >= total {
			if drawn {
				fmt.Fprintf(w, "\r\033[K")
			}
			return
		}
		if t.Sub(start) < time.Second || t.Sub(last) < 100*time.Millisecond {
			return
		}
		last, drawn = t, true
		const width = 30
		filled := width * done / max(total, 1)
		fmt.Fprintf(w, "\r\033[K%-24s [%s%s] %3d%%", label, strings.Repeat("#", filled), strings.Repeat(" ", width-filled), 100*done/max(total, 1))
	}
}
