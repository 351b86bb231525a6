package bench

import (
	"context"
	"fmt"
	"math"
	"testing"
)

// replayRatio replays a shipped trace through p and returns the hit ratio
// in percent.
func replayRatio(t *testing.T, file string, p Policy) float64 {
	t.Helper()
	tr := sharedTrace(t, file)
	res, err := Replay(context.Background(), p, tr.Requests, nil)
	if err != nil {
		t.Fatal(err)
	}
	return 100 * res.HitRatio
}

// TestARCReproducesThePaper checks ARC against Table III (OLTP) of Megiddo
// and Modha, "ARC: A Self-Tuning, Low Overhead Replacement Cache", FAST
// 2003, whose LRU column our LRU reproduces exactly (32.83, 42.47, 53.65,
// 60.70, 64.63). We match four of its five ARC figures to the printed
// digit and the fifth (38.93 at 1000) within 0.02.
func TestARCReproducesThePaper(t *testing.T) {
	for _, tt := range []struct {
		capacity int64
		want     float64
	}{{1000, 38.93}, {2000, 46.08}, {5000, 55.25}, {10000, 61.87}, {15000, 65.40}} {
		t.Run(fmt.Sprint(tt.capacity), func(t *testing.T) {
			if got := replayRatio(t, "arc-OLTP.lis.zst", NewARC(tt.capacity)); math.Abs(got-tt.want) > 0.025 {
				t.Errorf("ARC hit ratio on OLTP at %d = %.3f%%, the paper has %.2f%%", tt.capacity, got, tt.want)
			}
		})
	}
}

// TestWTinyLFUNearPublishedFigures checks adaptive W-TinyLFU against
// published results of Caffeine's policy:
//
//   - OLTP: BitFaster.Caching's port of Caffeine's W-TinyLFU with hill
//     climbing (github.com/bitfaster/BitFaster.Caching pull request 191,
//     "hill climbing", ARC OLTP table) has 39.95/42.33/43.71/45.01/46.07%
//     at 1000 to 2000 entries. We are within half a point there. At 250
//     to 750 (24.73/33.70/37.11%) the climber's path differs and we are up
//     to 3 points below, still well above LRU.
//   - loop (LIRS): Caffeine's efficiency page shows W-TinyLFU close to the
//     optimum on this looping trace where LRU and ARC get nothing; we
//     require within 1.5 points of OPT.
func TestWTinyLFUNearPublishedFigures(t *testing.T) {
	for _, tt := range []struct {
		capacity  int64
		published float64
	}{{1000, 39.95}, {1250, 42.33}, {1500, 43.71}, {1750, 45.01}, {2000, 46.07}} {
		t.Run(fmt.Sprint("OLTP/", tt.capacity), func(t *testing.T) {
			if got := replayRatio(t, "arc-OLTP.lis.zst", NewWTinyLFU(tt.capacity)); math.Abs(got-tt.published) > 0.5 {
				t.Errorf("W-TinyLFU on OLTP at %d = %.2f%%, published %.2f%%", tt.capacity, got, tt.published)
			}
		})
	}
	for _, c := range []int64{250, 500, 750} {
		t.Run(fmt.Sprint("OLTP/", c), func(t *testing.T) {
			lru := replayRatio(t, "arc-OLTP.lis.zst", NewLRU(c))
			if got := replayRatio(t, "arc-OLTP.lis.zst", NewWTinyLFU(c)); got < lru+5 {
				t.Errorf("W-TinyLFU on OLTP at %d = %.2f%%, want at least LRU (%.2f%%) + 5", c, got, lru)
			}
		})
	}
	for _, c := range []int64{500, 1000} {
		t.Run(fmt.Sprint("loop/", c), func(t *testing.T) {
			tr := sharedTrace(t, "lirs-loop.trace.gz")
			opt := replayRatio(t, "lirs-loop.trace.gz", NewOPT(tr.Requests, c))
			if got := replayRatio(t, "lirs-loop.trace.gz", NewWTinyLFU(c)); got < opt-1.5 {
				t.Errorf("W-TinyLFU on loop at %d = %.2f%%, OPT %.2f%%", c, got, opt)
			}
		})
	}
}

func TestARCHitsAGhostAndAdaptsToFrequency(t *testing.T) {
	// Capacity 2: 1 and 2 are seen twice (T2). The scan 3, 4, 5 takes
	// one slot: 1 goes to the ghost list B2 and 3, 4 to B1, while 2 stays.
	// 1 is then a ghost hit (a miss that moves it back into T2) and 2 a hit.
	a := NewARC(2)
	got := hits(a, keys(1, 2, 1, 2, 3, 4, 5, 1, 2))
	if want := "001100001"; got != want {
		t.Errorf("hits = %s, want %s", got, want)
	}
}

func TestARCBytesFitsObjectsBySize(t *testing.T) {
	a := NewARCBytes(10)
	reqs := []Request{{1, 6}, {2, 6}, {1, 6}, {3, 11}, {2, 6}}
	// 2 evicts 1 (12 > 10); 1 misses again; 3 is larger than the cache
	// and not admitted; 2 was evicted by 1.
	if got, want := hits(a, reqs), "00000"; got != want {
		t.Errorf("hits = %s, want %s", got, want)
	}
	if used := a.used(arcT1) + a.used(arcT2); used > 10 {
		t.Errorf("resident bytes = %d, over the capacity of 10", used)
	}
}
