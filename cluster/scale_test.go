package cluster

import (
	"fmt"
	"math"
	"testing"
	"time"
)

// members returns n member addresses.
func members(n int) []string {
	ms := make([]string, n)
	for i := range ms {
		ms[i] = fmt.Sprintf("http://10.0.%d.%d:8080", i/250, i%250+1)
	}
	return ms
}

// TestRingBalanceAtScale measures how evenly rendezvous hashing spreads
// 100,000 keys over 10, 100 and 1,000 members (the figures in DESIGN.md's
// scale section): the largest and smallest share against the mean, and
// the coefficient of variation, which for independent scores is about
// sqrt(N/keys). It fails only on a gross imbalance.
func TestRingBalanceAtScale(t *testing.T) {
	ks := keys(100000)
	for _, n := range []int{10, 100, 1000} {
		r := NewRing(members(n))
		counts := make([]int, n)
		for _, k := range ks {
			counts[r.Owner(k, nil)]++
		}
		mean := float64(len(ks)) / float64(n)
		lo, hi, ss := counts[0], counts[0], 0.0
		for _, c := range counts {
			lo, hi = min(lo, c), max(hi, c)
			ss += (float64(c) - mean) * (float64(c) - mean)
		}
		cv := math.Sqrt(ss/float64(n)) / mean
		t.Logf("%4d members: mean %.0f keys, smallest %.2f×, largest %.2f× the mean, coefficient of variation %.3f (sqrt(N/keys) = %.3f)",
			n, mean, float64(lo)/mean, float64(hi)/mean, cv, math.Sqrt(float64(n)/float64(len(ks))))
		if cv > 3*math.Sqrt(float64(n)/float64(len(ks))) {
			t.Errorf("%d members: coefficient of variation %.3f, far above sqrt(N/keys)", n, cv)
		}
	}
}

// BenchmarkOwner is the cost of finding a key's owner (one per miss) at
// 10, 100 and 1,000 members: one hash of the key and N mixes.
func BenchmarkOwner(b *testing.B) {
	for _, n := range []int{10, 100, 1000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			c, err := New(Config{Self: "http://10.9.9.9:8080", Peers: members(n - 1)})
			if err != nil {
				b.Fatal(err)
			}
			now := time.Now()
			ks := keys(1024)
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				c.Owner(ks[i%len(ks)], now)
			}
		})
	}
}
