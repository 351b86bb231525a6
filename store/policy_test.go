package store

import (
	"bufio"
	"container/list"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/ulikunitz/xz"
)

type traceReq struct {
	key  string
	size int64
}

// readAdaptSize reads testdata/traces/adaptsize-request.trace.xz (time id
// size per line).
func readAdaptSize(b *testing.B) []traceReq {
	f, err := os.Open("../testdata/traces/adaptsize-request.trace.xz")
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	xr, err := xz.NewReader(f)
	if err != nil {
		b.Fatal(err)
	}
	var reqs []traceReq
	sc := bufio.NewScanner(xr)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) != 3 {
			continue
		}
		n, _ := strconv.ParseInt(f[2], 10, 64)
		reqs = append(reqs, traceReq{f[1], n})
	}
	return reqs
}

// BenchmarkEvictionPolicy compares the disk tier's sampled LRU (its real
// sampleVictim over a real index) with exact LRU on the AdaptSize CDN trace,
// by object hit ratio at byte budgets.
func BenchmarkEvictionPolicy(b *testing.B) {
	reqs := readAdaptSize(b)
	for _, mib := range []int64{4, 16, 64, 128} {
		budget := mib << 20
		b.Run(fmt.Sprintf("budget=%dMiB", mib), func(b *testing.B) {
			for b.Loop() {
				// Sampled LRU through diskTier.sampleVictim.
				d := &diskTier{index: make(map[string]*diskEntry)}
				var used int64
				hits := 0
				for i, r := range reqs {
					if e := d.index[r.key]; e != nil {
						hits++
						e.access.Store(int64(i))
						continue
					}
					if r.size > budget {
						continue
					}
					e := &diskEntry{size: r.size, charge: r.size}
					e.access.Store(int64(i))
					d.index[r.key] = e
					used += r.size
					for used > budget {
						k, v := d.sampleVictim(0)
						delete(d.index, k)
						used -= v.charge
					}
				}
				// Exact LRU.
				l := list.New()
				m := map[string]*list.Element{}
				used = 0
				lruHits := 0
				for _, r := range reqs {
					if el := m[r.key]; el != nil {
						lruHits++
						l.MoveToFront(el)
						continue
					}
					if r.size > budget {
						continue
					}
					m[r.key] = l.PushFront(r)
					used += r.size
					for used > budget {
						el := l.Back()
						v := l.Remove(el).(traceReq)
						delete(m, v.key)
						used -= v.size
					}
				}
				b.ReportMetric(100*float64(hits)/float64(len(reqs)), "sampled-hit%")
				b.ReportMetric(100*float64(lruHits)/float64(len(reqs)), "lru-hit%")
			}
		})
	}
}
