package wtinylfu

import (
	"math"
	"slices"
)

// Adapting by shadows: instead of hill climbing, which compares the hit
// ratio of one sample with the previous one and is misled by workloads
// whose hit ratio swings from sample to sample (a loop longer than the
// sample), the policy runs shadow policies beside itself, each with a fixed
// window share, over the same requests and the same frequency sketch, and
// sets its own window to the share of the shadow with the most recent
// hits. The shadows compare window sizes on the same requests at the same
// time, so the swings of the workload cancel out. This is the idea of
// Caffeine's simulator's "MiniSim" climber (after Waldspurger et al.,
// "Cache Modeling and Optimization using Miniature Simulation", USENIX
// ATC 2017).
//
// As in that climber's current version, the periods are counted from the
// moment the policy first fills (evicts or refuses a key): before that
// every window size keeps every key, the shadows hit alike and their
// scores would only dilute the first real differences below the margin. A
// period in which every shadow hit alike (no sampled request told them
// apart) is not scored either.
//
// A shadow holds key hashes and weights only. Remove (a deletion, such as a
// purge) does not reach the shadows: a removed key stays in them until they
// evict it, which only blurs their estimates a little. Large caches sample keys: a shadow
// sees only the keys whose hash falls in a fixed 1/mod of the hash space,
// with a capacity 1/mod of the policy's, so that each holds shadowKeys to
// twice as many keys however large the cache (all of them in a smaller
// cache).

// shadowShares are the window shares the shadows try: from pure TinyLFU
// (no window) to nearly LRU.
var shadowShares = []float64{0, 0.01, 0.03, 0.1, 0.2, 0.35, 0.5, 0.7, 0.9}

const (
	// shadowKeys is the fewest keys a shadow holds once keys are sampled.
	shadowKeys = 4096
	// shadowPeriods is the number of periods per expected key's request:
	// a period is a quarter of a request per expected key. Longer periods
	// (one request per expected key) left the adaptsize trace at 128 MiB,
	// which is 3.6 such periods long and fills the cache in the first
	// half, on the initial 1% window until its last fifth: 0.6 points of
	// byte hit ratio below LRU's, where any window of 10% or more is above.
	shadowPeriods = 4
	// shadowDecay weighs the previous periods' hits in a shadow's score:
	// 0.875 per request per expected key (0.967^4).
	shadowDecay = 0.967
	// shadowMargin is how much more a shadow must score than the current
	// one to be switched to, when the switch moves shadowMarginShare of
	// the capacity or more between the window and the main space; a
	// smaller switch needs a proportionally smaller lead. A switch costs
	// hits while the moved keys settle, so what it must win scales with
	// what it moves. At 3% the policy kept its initial 1% window through
	// the whole adaptsize trace at 64 MiB (seven periods of about 9,500
	// requests), where a 10-50% window hits 0.5 points more objects and 1
	// point more bytes and the best shadow led by 1.5-2%. At a fixed 1% it
	// kept the 1% window on a loop just longer than the cache, where no
	// window hits about 1% more (0.7 points at 790 keys), and a fixed
	// margin of 0.5-0.9% moved web07 at 16000 KiB half a point down.
	shadowMargin      = 0.01
	shadowMarginShare = 0.1
)

// shadowSet is the policy's shadows and their scores. A shadow holds the
// keys' hashes rather than the keys: a lookup hashes no string and
// compares none (two keys of one 64-bit hash would share a shadow node,
// which only blurs the estimates as much as one shared sketch counter).
type shadowSet struct {
	p      []*Policy[uint64]
	hits   []int     // hits in the current period
	score  []float64 // decayed hits of past periods
	mod    uint64    // a key is sampled when its hash % mod == 0
	period int       // requests per period
	count  int       // requests in the current period
	best   int       // index of the shadow whose share the policy uses
}

// AdaptByShadows replaces hill climbing with shadow policies (see above):
// every period of a quarter request per expected key once the policy has
// filled, the window takes the share of the shadow with the most hits,
// recent periods weighing more. A request for a sampled key (every key of
// a cache expecting fewer than 2*shadowKeys) then costs about
// len(shadowShares) times more work, and the shadows hold as many sampled
// copies of the index (at most about 2*shadowKeys keys each). Call it
// before the first request and after SetKeepNewest, SetWarmMargin and
// SetAdmitByBytes; the shadows keep new keys and admit as the policy does.
func (p *Policy[K]) AdaptByShadows() {
	keys := max(p.expectedKeys, 1)
	mod := uint64(max(keys/shadowKeys, 1))
	s := &shadowSet{
		hits:   make([]int, len(shadowShares)),
		score:  make([]float64, len(shadowShares)),
		mod:    mod,
		period: int(max(keys, 100) / shadowPeriods),
		best:   1, // 1%: the policy's initial window
	}
	for _, share := range shadowShares {
		q := &Policy[uint64]{
			hash:         func(h uint64) uint64 { return h },
			capacity:     max(p.capacity/int64(mod), 1),
			nodes:        make(map[uint64]ref),
			sketch:       p.sketch,
			keepNewest:   p.keepNewest,
			warmMargin:   p.warmMargin,
			admitByBytes: p.admitByBytes,
		}
		q.initLists()
		q.setWindowMax(int64(share * float64(q.capacity)))
		s.p = append(s.p, q)
	}
	p.shadows = s
}

// NewShadowed returns New's policy with the settings cellar's disk tier
// uses (store/replace.go): SetKeepNewest, SetWarmMargin, SetAdmitByBytes,
// WidenSketch and AdaptByShadows, the window chosen by shadows rather than
// Caffeine's hill climber, which the shipped traces mislead
// (docs/DESIGN.md: on a loop it grew the window to plain LRU and stayed
// there). bench's policy-alone test replays the same settings.
func NewShadowed[K comparable](capacity, expectedKeys int64, hash func(K) uint64) *Policy[K] {
	p := New(capacity, expectedKeys, hash)
	p.SetKeepNewest(true)
	p.SetWarmMargin(true)
	p.SetAdmitByBytes(true)
	p.WidenSketch()
	p.AdaptByShadows()
	return p
}

// sampled reports whether the shadows see the key of hash h. The low bits
// are taken after a mix, so that hashes with poor low bits sample evenly.
func (s *shadowSet) sampled(h uint64) bool {
	return s.mod == 1 || (h*0x9e3779b97f4a7c15)>>32%s.mod == 0
}

// access counts a request for the key of hash h in every shadow: a hit
// moves it as in the policy; a miss adds it when the policy holds it
// (weight w), since the policy will then not call Add; otherwise add
// does, when the missed object is stored. Periods count the requests
// made once the policy has filled.
func (s *shadowSet) access(h uint64, held bool, w int64, filled bool) {
	if s.sampled(h) {
		for i, q := range s.p {
			if n, ok := q.nodes[h]; ok {
				s.hits[i]++
				q.onHit(n)
			} else if held {
				q.insert(h, h, w, discardKey)
			}
		}
	}
	if !filled {
		clear(s.hits)
		return
	}
	if s.count++; s.count >= s.period {
		s.endPeriod()
	}
}

// add adds the key of hash h (or re-weighs it) in every shadow.
func (s *shadowSet) add(h uint64, w int64) {
	if !s.sampled(h) {
		return
	}
	for _, q := range s.p {
		if n, ok := q.nodes[h]; ok {
			q.reweigh(n, w)
			q.trim(discardKey)
		} else {
			q.insert(h, h, w, discardKey)
		}
	}
}

// endPeriod scores the period and picks the best shadow; ties keep the
// current one. A period in which every shadow hit alike is dropped.
func (s *shadowSet) endPeriod() {
	s.count = 0
	if !slices.ContainsFunc(s.hits, func(h int) bool { return h != s.hits[0] }) {
		clear(s.hits)
		return
	}
	top := s.best
	for i := range s.p {
		s.score[i] = shadowDecay*s.score[i] + float64(s.hits[i])
		s.hits[i] = 0
	}
	for i := range s.p {
		if s.score[i] > s.score[top] {
			top = i
		}
	}
	moved := math.Abs(shadowShares[top] - shadowShares[s.best])
	if s.score[top] > (1+shadowMargin*min(1, moved/shadowMarginShare))*s.score[s.best] {
		s.best = top
	}
}

func discardKey(uint64) {}
