package bench

import (
	"errors"
	"math"
	"slices"
	"sort"
	"strings"
	"testing"
)

func TestZipfTopKeysFollowTheExponent(t *testing.T) {
	tests := []struct {
		exponent float64
		objects  int
	}{
		{0.7, 1000},
		{1.0, 1000},
		{1.2, 50_000},
	}
	const n = 200_000
	for _, tt := range tests {
		z, err := NewZipf(ZipfOptions{Objects: tt.objects, Exponent: tt.exponent, Requests: n, Seed: 7})
		if err != nil {
			t.Fatal(err)
		}
		// Theory: P(rank r) = r^-s / H(N, s).
		h := 0.0
		for r := 1; r <= tt.objects; r++ {
			h += math.Pow(float64(r), -tt.exponent)
		}
		counts := make(map[uint64]int)
		for r := range z.All() {
			counts[r.Key]++
		}
		for _, rank := range []int{1, 2, 10} {
			p := math.Pow(float64(rank), -tt.exponent) / h
			if math.Abs(z.Probability(rank)-p) > 1e-12 {
				t.Errorf("s=%v: Probability(%d) = %v, want %v", tt.exponent, rank, z.Probability(rank), p)
			}
			// Five standard deviations of a binomial count.
			want := n * p
			tol := 5 * math.Sqrt(n*p*(1-p))
			if got := float64(counts[uint64(rank)]); math.Abs(got-want) > tol {
				t.Errorf("s=%v: rank %d drawn %v times, want %.0f ± %.0f", tt.exponent, rank, got, want, tol)
			}
		}
		for k := range counts {
			if k < 1 || k > uint64(tt.objects) {
				t.Fatalf("key %d outside ranks 1..%d", k, tt.objects)
			}
		}
	}
}

func TestZipfIsDeterministicPerSeed(t *testing.T) {
	gen := func(seed uint64) []Request {
		z, err := NewZipf(ZipfOptions{Objects: 100, Requests: 1000, Seed: seed, Size: SizeDist{Median: 1000, Sigma: 1}})
		if err != nil {
			t.Fatal(err)
		}
		return z.Trace().Requests
	}
	if !slices.Equal(gen(1), gen(1)) {
		t.Error("same seed gave different requests")
	}
	if slices.Equal(gen(1), gen(2)) {
		t.Error("different seeds gave the same requests")
	}
}

func TestZipfSizesAreLogNormalPerObject(t *testing.T) {
	z, err := NewZipf(ZipfOptions{Objects: 20_000, Requests: 100_000, Seed: 3, Size: SizeDist{Median: 10_000, Sigma: 1, Max: 1 << 20}})
	if err != nil {
		t.Fatal(err)
	}
	sizes := make(map[uint64]int64)
	for r := range z.All() {
		if s, ok := sizes[r.Key]; ok && s != r.Size {
			t.Fatalf("key %d changed size %d -> %d", r.Key, s, r.Size)
		}
		sizes[r.Key] = r.Size
	}
	var logs []float64
	for k := uint64(1); k <= 20_000; k++ {
		logs = append(logs, math.Log(float64(z.SizeOf(k))))
	}
	sort.Float64s(logs)
	median := math.Exp(logs[len(logs)/2])
	if median < 9_500 || median > 10_500 {
		t.Errorf("median size %.0f, want 10000 ± 5%%", median)
	}
	// For a normal distribution, the 84th percentile is one sigma above
	// the median.
	sigma := logs[len(logs)*841/1000] - logs[len(logs)/2]
	if math.Abs(sigma-1) > 0.05 {
		t.Errorf("sigma of log size %.3f, want 1 ± 0.05", sigma)
	}
}

func TestZipfScanBurstsUseFreshKeys(t *testing.T) {
	z, err := NewZipf(ZipfOptions{Objects: 100, Requests: 10_000, ScanEvery: 900, ScanLength: 100})
	if err != nil {
		t.Fatal(err)
	}
	seen := make(map[uint64]bool)
	scans := 0
	reqs := z.Trace().Requests
	for i, r := range reqs {
		if r.Key >= ScanKeyBase {
			scans++
			if seen[r.Key] {
				t.Fatalf("scan key %d repeated", r.Key)
			}
			if i < 900 {
				t.Fatalf("scan request at %d, before the first 900 Zipf requests", i)
			}
		}
		seen[r.Key] = true
	}
	// 10,000 requests in cycles of 900 + 100: exactly 10 bursts of 100.
	if scans != 1000 {
		t.Errorf("scan requests = %d, want 1000", scans)
	}
}

func TestZipfOptionsValidateReportsEveryField(t *testing.T) {
	_, err := NewZipf(ZipfOptions{Objects: -1, Exponent: -2, Size: SizeDist{Median: 10, Max: 5}})
	if !errors.Is(err, ErrOptions) {
		t.Fatalf("err = %v, want ErrOptions", err)
	}
	for _, field := range []string{"Objects", "Exponent", "Size.Median"} {
		if !strings.Contains(err.Error(), field) {
			t.Errorf("error %q does not name %s", err, field)
		}
	}
}
