package bench

import (
	"errors"
	"fmt"
	"iter"
	"math"
	"math/rand/v2"
	"sort"

	"github.com/cellar-cache/cellar/internal/splitmix"
)

// ErrOptions is returned (wrapped, naming every bad field) by the Validate
// methods of this package's options.
var ErrOptions = errors.New("bench: invalid options")

// ZipfOptions configures a synthetic Zipf workload. Zero values mean the
// defaults given per field.
type ZipfOptions struct {
	// Objects is the number of distinct objects drawn from (ranks 1..Objects,
	// which are also their keys). Default 100,000; at most 1<<25, since the
	// generator keeps 8 bytes of CDF per object.
	Objects int
	// Exponent is the Zipf exponent s: the object of rank r is requested
	// with probability proportional to 1/r^s. Default 0.9 (web traffic is
	// usually measured between 0.6 and 1.0). Must be positive.
	Exponent float64
	// Requests bounds All and Trace. Default 1,000,000.
	Requests int
	// Seed selects the random sequence; the same options give the same
	// requests. Zero is a valid seed.
	Seed uint64
	// Size is the distribution of object sizes. Each object has one size for
	// the whole workload.
	Size SizeDist
	// ScanEvery, if positive, inserts a scan burst after every ScanEvery
	// Zipf requests: ScanLength requests to fresh keys that are never
	// requested again (a crawler, a backup, a cache-busting client). Scan
	// requests count towards Requests. Default 0, no scans.
	ScanEvery int
	// ScanLength is the number of requests in a scan burst. Default 1,000
	// when ScanEvery is set.
	ScanLength int
}

// SizeDist is a log-normal distribution of object sizes in bytes.
type SizeDist struct {
	// Median is the median size in bytes. Default 1, which with Sigma 0
	// gives unit sizes (object capacities and byte capacities agree).
	Median int64
	// Sigma is the standard deviation of the size's natural logarithm; 0
	// makes every object Median bytes. Web objects are near 1.5-2.5.
	Sigma float64
	// Max caps sizes. Default 64 MiB.
	Max int64
}

// ScanKeyBase is the first key that scan bursts use; Zipf keys are below it.
const ScanKeyBase = 1 << 62

// EnsureDefaults fills in zero fields.
func (o *ZipfOptions) EnsureDefaults() {
	if o.Objects == 0 {
		o.Objects = 100_000
	}
	if o.Exponent == 0 {
		o.Exponent = 0.9
	}
	if o.Requests == 0 {
		o.Requests = 1_000_000
	}
	if o.ScanEvery > 0 && o.ScanLength == 0 {
		o.ScanLength = 1000
	}
	if o.Size.Median == 0 {
		o.Size.Median = 1
	}
	if o.Size.Max == 0 {
		o.Size.Max = 64 << 20
	}
}

// Validate reports every out-of-range field at once.
func (o *ZipfOptions) Validate() error {
	var errs []error
	if o.Objects < 1 || o.Objects > 1<<25 {
		errs = append(errs, fmt.Errorf("Objects %d: must be in [1, %d]", o.Objects, 1<<25))
	}
	if !(o.Exponent > 0) || math.IsInf(o.Exponent, 0) {
		errs = append(errs, fmt.Errorf("Exponent %v: must be a positive number", o.Exponent))
	}
	if o.Requests < 0 {
		errs = append(errs, fmt.Errorf("Requests %d: must not be negative", o.Requests))
	}
	if o.ScanEvery < 0 || o.ScanLength < 0 {
		errs = append(errs, fmt.Errorf("ScanEvery %d, ScanLength %d: must not be negative", o.ScanEvery, o.ScanLength))
	}
	if o.Size.Median < 1 || o.Size.Max < o.Size.Median {
		errs = append(errs, fmt.Errorf("Size.Median %d, Size.Max %d: want 1 <= Median <= Max", o.Size.Median, o.Size.Max))
	}
	if o.Size.Sigma < 0 || math.IsNaN(o.Size.Sigma) || math.IsInf(o.Size.Sigma, 0) {
		errs = append(errs, fmt.Errorf("Size.Sigma %v: must be a finite number >= 0", o.Size.Sigma))
	}
	if len(errs) > 0 {
		return fmt.Errorf("%w: zipf: %w", ErrOptions, errors.Join(errs...))
	}
	return nil
}

// Zipf generates a Zipf workload. It is not safe for concurrent use.
type Zipf struct {
	o                   ZipfOptions
	cdf                 []float64 // cdf[r-1] = P(rank <= r)
	rng                 *rand.Rand
	sinceScan, scanLeft int
	nextScanKey         uint64
}

// NewZipf checks o (after EnsureDefaults) and precomputes the distribution.
func NewZipf(o ZipfOptions) (*Zipf, error) {
	o.EnsureDefaults()
	if err := o.Validate(); err != nil {
		return nil, err
	}
	cdf := make([]float64, o.Objects)
	sum := 0.0
	for r := range cdf {
		sum += math.Pow(float64(r+1), -o.Exponent)
		cdf[r] = sum
	}
	for r := range cdf {
		cdf[r] /= sum
	}
	cdf[len(cdf)-1] = 1
	return &Zipf{
		o:           o,
		cdf:         cdf,
		rng:         rand.New(rand.NewPCG(o.Seed, 0x63656c6c6172)),
		nextScanKey: ScanKeyBase,
	}, nil
}

// Options returns the options in effect, defaults filled in.
func (z *Zipf) Options() ZipfOptions { return z.o }

// Probability returns the probability of the object of the given rank
// (1-based) on a Zipf (non-scan) request.
func (z *Zipf) Probability(rank int) float64 {
	if rank < 1 || rank > len(z.cdf) {
		return 0
	}
	if rank == 1 {
		return z.cdf[0]
	}
	return z.cdf[rank-1] - z.cdf[rank-2]
}

// Next returns the next request; the sequence never ends.
func (z *Zipf) Next() Request {
	if z.scanLeft > 0 {
		z.scanLeft--
		k := z.nextScanKey
		z.nextScanKey++
		return Request{Key: k, Size: z.SizeOf(k)}
	}
	if z.o.ScanEvery > 0 {
		z.sinceScan++
		if z.sinceScan > z.o.ScanEvery {
			z.sinceScan = 0
			z.scanLeft = z.o.ScanLength
			return z.Next()
		}
	}
	u := z.rng.Float64()
	rank := sort.SearchFloat64s(z.cdf, u) + 1 // first rank with cdf >= u
	if u == 0 {
		rank = 1
	}
	k := uint64(min(rank, len(z.cdf)))
	return Request{Key: k, Size: z.SizeOf(k)}
}

// SizeOf returns the size of the object with key k: a deterministic draw
// from the size distribution.
func (z *Zipf) SizeOf(k uint64) int64 { return z.o.Size.SizeOf(k, z.o.Seed) }

// SizeOf returns the size of the object with key k under seed: a
// deterministic draw (Box-Muller on two hashes of the key and seed), so an
// object keeps its size for the whole workload.
func (d SizeDist) SizeOf(k, seed uint64) int64 {
	if d.Sigma == 0 {
		return max(d.Median, 1)
	}
	h1 := splitmix.Mix64(k ^ seed*0x9e3779b97f4a7c15)
	h2 := splitmix.Mix64(h1 + 0x632be59bd9b4e019)
	u1 := (float64(h1>>11) + 0.5) / (1 << 53) // (0, 1)
	u2 := float64(h2>>11) / (1 << 53)
	n := math.Sqrt(-2*math.Log(u1)) * math.Cos(2*math.Pi*u2)
	s := float64(d.Median) * math.Exp(d.Sigma*n)
	hi := float64(d.Max)
	if d.Max <= 0 {
		hi = 64 << 20
	}
	return int64(min(max(math.Round(s), 1), hi))
}

// All yields Options().Requests requests.
func (z *Zipf) All() iter.Seq[Request] {
	return func(yield func(Request) bool) {
		for range z.o.Requests {
			if !yield(z.Next()) {
				return
			}
		}
	}
}

// Trace generates Options().Requests requests into a Trace.
func (z *Zipf) Trace() *Trace {
	reqs := make([]Request, 0, z.o.Requests)
	for r := range z.All() {
		reqs = append(reqs, r)
	}
	name := fmt.Sprintf("zipf-s%g-n%d", z.o.Exponent, z.o.Objects)
	if z.o.ScanEvery > 0 {
		name += fmt.Sprintf("-scan%dx%d", z.o.ScanLength, z.o.ScanEvery)
	}
	return &Trace{Name: name, Requests: reqs}
}
