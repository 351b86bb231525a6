// Package wtinylfu is a weighted, adaptive W-TinyLFU replacement policy:
// which keys a cache of bounded total weight keeps and which it evicts. It
// holds keys and weights only, never values, and has no locks.
//
// The design follows Einziger, Eytan, Friedman and Manes, "Adaptive
// Software Cache Management" (Middleware 2018) and "TinyLFU: A Highly
// Efficient Cache Admission Policy" (ACM ToS 2017), as Caffeine uses it:
//
//   - A new key enters a small LRU window (initially 1% of the capacity).
//   - A key leaving the window is a candidate for the main space, a
//     segmented LRU (probation, and protected with 80% of the main space).
//     When the main space is full the candidate is admitted only if its
//     estimated frequency (a count-min sketch of every access, halved every
//     ten accesses per counter) is higher than that of the main space's
//     victim, the least recently used probation key; otherwise it is
//     evicted.
//   - A hit in probation promotes the key to protected; protected overflow
//     is demoted to probation.
//   - Hill climbing resizes the window: after every sample of ten accesses
//     per counter it compares the hit ratio with the previous sample's and
//     keeps moving the window size the same way if the ratio rose, the
//     other way if it fell, in steps of 6.25% of the capacity that decay by
//     2% a sample and restart when the ratio moves by 5 points or more.
//     Recency-heavy workloads thus get a large window (LRU-like), frequency-
//     heavy ones a small one. AdaptByShadows replaces the climber with
//     shadow policies of fixed window shares (shadow.go), which adapt more
//     reliably at the price of more work per request.
//
// Weights generalise the policy to byte budgets: each key has a weight
// (its size), the segments' limits are in weight, and a candidate heavier
// than the victim must beat each victim it displaces in turn (or, with
// SetAdmitByBytes, all of them at once on average by weight).
package wtinylfu

// Policy is the replacement policy over keys of type K. Its zero value is
// not usable; call New. It is not safe for concurrent use: the caller locks.
type Policy[K comparable] struct {
	hash     func(K) uint64
	capacity int64
	nodes    map[K]ref
	arena    []node[K] // the nodes, and the lists' sentinels (arena.go)
	free     ref       // first free node in arena, linked by next; none: none
	sketch   *sketch

	window, probation, protected list
	windowMax, protectedMax      int64
	keepNewest                   bool
	warmMargin                   bool
	admitByBytes                 bool
	expectedKeys                 int64
	// filled is whether the policy has evicted or refused a key: it has
	// been full, so window sizes can differ in what they keep.
	filled bool

	// shadows, if set, adapt the window instead of hill climbing.
	shadows *shadowSet

	// Hill climbing.
	sampleHits, sampleMisses int
	sampleSize               int
	prevHitRatio             float64
	step                     float64 // signed, in weight units
}

type segment uint8

const (
	inWindow segment = iota
	inProbation
	inProtected
)

const (
	initialWindow    = 0.01
	protectedShare   = 0.80
	stepShare        = 0.0625
	stepDecay        = 0.98
	restartThreshold = 0.05
)

// New returns a policy holding keys of total weight at most capacity.
// expectedKeys sizes the frequency sketch and the hill climber's sample
// (the number of keys expected to fit; at least 1). hash must spread keys
// over 64 bits.
func New[K comparable](capacity, expectedKeys int64, hash func(K) uint64) *Policy[K] {
	p := &Policy[K]{
		hash:     hash,
		capacity: max(capacity, 1),
		nodes:    make(map[K]ref),
		sketch:   newSketch(max(expectedKeys, 1), 4),

		expectedKeys: max(expectedKeys, 1),
	}
	p.initLists()
	p.sampleSize = p.sketch.sampleSize
	p.setWindowMax(int64(initialWindow * float64(p.capacity)))
	p.step = -stepShare * float64(p.capacity)
	return p
}

// SetKeepNewest makes the window keep the newest key even when it alone is
// heavier than the window (or the window is empty), so that a key is never
// refused the moment it is added: it would miss on its next request
// however soon. The main space's least recent probation keys make room
// for it instead, and it faces admission when the next key arrives (the
// main space counts as smaller by its weight meanwhile, so that admission,
// not free room, decides).
// Caffeine does not do this (an entry heavier than the window goes
// straight to admission); cellar's disk tier does, since a response just
// stored is often requested again at once.
func (p *Policy[K]) SetKeepNewest(keep bool) { p.keepNewest = keep }

// SetWarmMargin makes a warm victim (estimated frequency at least
// warmFrequency) stay unless the candidate is at least two more frequent.
// Equally frequent keys get estimates one apart from the sketch's noise
// (counters shared with other keys, the halving's rounding and its timing
// against each key's last access), and plain TinyLFU then lets them
// displace each other: on a loop longer than the cache (every key equally
// frequent) that churns the main space, and whether it does depends on the
// hash seed (the LIRS loop trace at 800 keys: 69.7% for one seed in ten,
// 77.7-78.2% for the others; with the margin 78.2% for every seed). A
// cold victim (seen once) still gives way to a candidate seen twice.
// Caffeine does not do this; cellar's disk tier does.
func (p *Policy[K]) SetWarmMargin(on bool) { p.warmMargin = on }

// warmFrequency is the estimate from which SetWarmMargin's margin applies.
const warmFrequency = 2

// SetAdmitByBytes makes a candidate heavier than the main space's victim
// compete with all the victims it would displace at once: it is admitted
// if its estimated frequency is higher than theirs averaged over their
// weight (a unit of its weight against a unit of theirs), and they are
// then evicted; otherwise it is refused and they stay. Caffeine (and New's
// default) makes the candidate beat each victim in turn, evicting them as
// it goes: the more victims a heavy key displaces, the likelier one of
// them is at least as frequent, so heavy keys were refused at equal
// frequency and the victims already evicted were lost with them. With
// weights in bytes that cost the byte hit ratio (the disk tier's policy
// on the adaptsize trace at 64 MiB, seeds 1-3: 39.1% of the bytes, one
// seed below LRU's 38.85%; with this 40.0%, and 42.0% of the requests
// instead of 41.1%). With equal weights it decides as before. Call it
// before AdaptByShadows.
func (p *Policy[K]) SetAdmitByBytes(on bool) { p.admitByBytes = on }

// WidenSketch gives the frequency sketch twice as many counters: eight
// per expected key in each row instead of Caffeine's four, 32 bytes per
// expected key. Fewer keys then share counters, so a one-time key is less
// often taken for a frequent one and admitted (the LIRS gli trace, which
// has 2.5 times more keys than a 1000-key cache: 46.7% at 910 keys for one
// seed in ten, 47.9-48.9% for the others; wider, 48.9% for every seed).
// Call it before the first request and before AdaptByShadows.
func (p *Policy[K]) WidenSketch() {
	p.sketch = newSketch(p.expectedKeys, 8)
	p.sampleSize = p.sketch.sampleSize
}

// SetClimbSample sets the number of requests per hill-climbing sample
// (default: ten per expected key, as Caffeine). A shorter sample adapts
// the window sooner, on short traces or after a shift, at the price of
// noisier steps.
func (p *Policy[K]) SetClimbSample(n int) {
	p.sampleSize = max(n, 100)
}

// Capacity returns the weight limit.
func (p *Policy[K]) Capacity() int64 { return p.capacity }

// SetCapacity changes the weight limit to c (at least 1), keeping the
// window's share of it, and evicts until the total weight fits, calling
// evict for each key removed (the main space's least recent keys first,
// as Victim names them). The shadows (AdaptByShadows) keep the capacity
// they were made with: they compare window shares, which a small change
// of capacity hardly moves.
func (p *Policy[K]) SetCapacity(c int64, evict func(K)) {
	c = max(c, 1)
	if c == p.capacity {
		return
	}
	share := float64(p.windowMax) / float64(p.capacity)
	p.capacity = c
	p.resizeWindow(int64(share*float64(c)) - p.windowMax)
	p.trim(evict)
}

// Weight returns the total weight of the keys held.
func (p *Policy[K]) Weight() int64 {
	return p.window.weight + p.probation.weight + p.protected.weight
}

// Len returns the number of keys held.
func (p *Policy[K]) Len() int { return len(p.nodes) }

// Contains reports whether k is held, without counting an access.
func (p *Policy[K]) Contains(k K) bool {
	_, ok := p.nodes[k]
	return ok
}

// WindowShare returns the window's current share of the capacity.
func (p *Policy[K]) WindowShare() float64 {
	return float64(p.windowMax) / float64(p.capacity)
}

func (p *Policy[K]) setWindowMax(w int64) {
	p.windowMax = max(0, min(w, p.capacity))
	p.protectedMax = int64(protectedShare * float64(p.capacity-p.windowMax))
}

// Access records a request for k: it counts k in the frequency sketch and
// in the hill climber's sample and, if k is held, makes it most recently
// used in its segment. It reports whether k is held (a hit).
func (p *Policy[K]) Access(k K) bool {
	n, ok := p.nodes[k]
	var h uint64
	if ok {
		h = p.arena[n].hash
	} else {
		h = p.hash(k)
	}
	p.sketch.increment(h)
	if s := p.shadows; s != nil {
		var w int64
		if ok {
			w = p.arena[n].weight
			p.onHit(n)
		}
		s.access(h, ok, w, p.filled)
		if want := int64(shadowShares[s.best] * float64(p.capacity)); want != p.windowMax {
			p.resizeWindow(want - p.windowMax)
		}
		return ok
	}
	if ok {
		p.sampleHits++
		p.onHit(n)
	} else {
		p.sampleMisses++
	}
	if p.sampleHits+p.sampleMisses >= p.sampleSize {
		p.climb()
	}
	return ok
}

func (p *Policy[K]) onHit(n ref) {
	switch p.arena[n].seg {
	case inWindow:
		p.remove(&p.window, n)
		p.pushFront(&p.window, n)
	case inProbation:
		p.remove(&p.probation, n)
		p.arena[n].seg = inProtected
		p.pushFront(&p.protected, n)
		p.demoteProtected()
	case inProtected:
		p.remove(&p.protected, n)
		p.pushFront(&p.protected, n)
	}
}

// demoteProtected moves protected overflow to the front of probation.
func (p *Policy[K]) demoteProtected() {
	for p.protected.weight > p.protectedMax {
		v := p.back(&p.protected)
		p.remove(&p.protected, v)
		p.arena[v].seg = inProbation
		p.pushFront(&p.probation, v)
	}
}

// Add inserts k with weight w (or updates the weight of a held k) without
// counting an access, and evicts until the total weight fits the capacity,
// calling evict for each key removed. k itself may be evicted at once: it
// is then refused (too heavy, or less frequent than what it would
// displace). Call Access(k) first for a request that missed.
func (p *Policy[K]) Add(k K, w int64, evict func(K)) {
	w = max(w, 0)
	n, ok := p.nodes[k]
	var h uint64 // read before trimming, which may free k's node
	if ok {
		h = p.arena[n].hash
		p.reweigh(n, w)
		p.trim(evict)
	} else {
		h = p.hash(k)
		p.insert(k, h, w, evict)
	}
	if p.shadows != nil {
		p.shadows.add(h, w)
	}
}

// insert adds k, of hash h and weight w, to the window and trims.
func (p *Policy[K]) insert(k K, h uint64, w int64, evict func(K)) {
	n := p.newNode(node[K]{key: k, hash: h, weight: w, seg: inWindow})
	p.nodes[k] = n
	p.pushFront(&p.window, n)
	p.trim(evict)
}

// Remove forgets k (a deletion that is not an eviction). It reports
// whether k was held.
func (p *Policy[K]) Remove(k K) bool {
	n, ok := p.nodes[k]
	if !ok {
		return false
	}
	p.unlink(n)
	delete(p.nodes, k)
	p.freeNode(n)
	return true
}

func (p *Policy[K]) unlink(n ref) {
	switch p.arena[n].seg {
	case inWindow:
		p.remove(&p.window, n)
	case inProbation:
		p.remove(&p.probation, n)
	case inProtected:
		p.remove(&p.protected, n)
	}
}

func (p *Policy[K]) reweigh(n ref, w int64) {
	p.unlink(n)
	p.arena[n].weight = w
	switch p.arena[n].seg {
	case inWindow:
		p.pushFront(&p.window, n)
	case inProbation:
		p.pushFront(&p.probation, n)
	case inProtected:
		p.pushFront(&p.protected, n)
		p.demoteProtected()
	}
}

// Victim returns the key the policy would evict next (the main space's
// least recently used probation key, else protected, else the window's),
// or false when empty. It does not remove it.
func (p *Policy[K]) Victim() (K, bool) {
	if v := p.victim(); v != none {
		return p.arena[v].key, true
	}
	var zero K
	return zero, false
}

// victim is Victim's node, or none.
func (p *Policy[K]) victim() ref {
	for _, l := range []*list{&p.probation, &p.protected, &p.window} {
		if v := p.back(l); v != none {
			return v
		}
	}
	return none
}

// trim moves window overflow into the main space through admission, then
// evicts until the total fits. With keepNewest the window keeps its most
// recent key even when that key alone is heavier than the window.
func (p *Policy[K]) trim(evict func(K)) {
	for p.window.weight > p.windowMax && (!p.keepNewest || p.window.n > 1) {
		c := p.back(&p.window)
		p.remove(&p.window, c)
		p.admit(c, evict)
	}
	for p.Weight() > p.capacity {
		p.evictNode(p.victim(), evict)
	}
}

// windowLimit is the weight the window may hold now: windowMax, or with
// keepNewest the weight of the newest key when it is alone and heavier.
func (p *Policy[K]) windowLimit() int64 {
	if p.keepNewest && p.window.n == 1 {
		return max(p.windowMax, p.window.weight)
	}
	return p.windowMax
}

// admit offers candidate c, just out of the window, to the main space: while
// it does not fit, it must be more frequent than the probation (else
// protected) victim, which is then evicted; otherwise c is evicted. With
// admitByBytes it must be more frequent than all the victims that make
// room for it, on average by weight.
func (p *Policy[K]) admit(c ref, evict func(K)) {
	mainMax := p.capacity - p.windowLimit()
	cf := -1
	admitted := p.admitByBytes // decided at once; the loop evicts the victims
	if admitted && !p.admitsOverVictims(c, p.probation.weight+p.protected.weight+p.arena[c].weight-mainMax) {
		p.refuse(c, evict)
		return
	}
	for p.probation.weight+p.protected.weight+p.arena[c].weight > mainMax {
		v := p.back(&p.probation)
		if v == none {
			v = p.back(&p.protected)
		}
		if v == none { // c alone is heavier than the main space
			p.refuse(c, evict)
			return
		}
		if !admitted {
			if cf < 0 {
				cf = p.sketch.estimate(p.arena[c].hash)
			}
			if vf := p.sketch.estimate(p.arena[v].hash); cf <= vf || (p.warmMargin && vf >= warmFrequency && cf == vf+1) {
				p.refuse(c, evict)
				return
			}
		}
		p.evictNode(v, evict)
	}
	p.arena[c].seg = inProbation
	p.pushFront(&p.probation, c)
}

// admitsOverVictims reports whether candidate c beats the main space's
// least recent keys of total weight at least need (probation's, then
// protected's: the keys admit would evict), averaged over their weights
// (each counted as at least 1), as admit compares a candidate with one
// victim, warm margin included. It reports false when the main space
// holds less than need.
func (p *Policy[K]) admitsOverVictims(c ref, need int64) bool {
	if need <= 0 {
		return true
	}
	var weight, sum float64
	for _, l := range []*list{&p.probation, &p.protected} {
		for v := p.back(l); v != none && v != l.root && need > 0; v = p.arena[v].prev {
			n := &p.arena[v]
			w := float64(max(n.weight, 1))
			weight += w
			sum += w * float64(p.sketch.estimate(n.hash))
			need -= n.weight
		}
	}
	if need > 0 {
		return false
	}
	cf, vf := float64(p.sketch.estimate(p.arena[c].hash)), sum/weight
	return cf > vf && !(p.warmMargin && vf >= warmFrequency && cf < vf+2)
}

// refuse evicts candidate c, which admit unlinked from the window.
func (p *Policy[K]) refuse(c ref, evict func(K)) {
	p.filled = true
	k := p.arena[c].key
	delete(p.nodes, k)
	p.freeNode(c)
	evict(k)
}

func (p *Policy[K]) evictNode(n ref, evict func(K)) {
	p.filled = true
	p.unlink(n)
	k := p.arena[n].key
	delete(p.nodes, k)
	p.freeNode(n)
	evict(k)
}

// climb ends a sample: it moves the window size by the current step and
// computes the next step.
func (p *Policy[K]) climb() {
	ratio := float64(p.sampleHits) / float64(p.sampleHits+p.sampleMisses)
	change := ratio - p.prevHitRatio
	amount := p.step
	if change < 0 {
		amount = -p.step
	}
	if change >= restartThreshold || change <= -restartThreshold {
		p.step = stepShare * float64(p.capacity)
		if amount < 0 {
			p.step = -p.step
		}
	} else {
		p.step = stepDecay * amount
	}
	p.prevHitRatio = ratio
	p.sampleHits, p.sampleMisses = 0, 0
	p.resizeWindow(int64(amount))
}

// resizeWindow grows (delta > 0) or shrinks the window, moving keys
// between the window and the main space so that both keep to their limits.
func (p *Policy[K]) resizeWindow(delta int64) {
	p.setWindowMax(p.windowMax + delta)
	if delta > 0 {
		// The main space shrank: its least recently used keys move to the
		// window's most recent end, as if just admitted there.
		mainMax := p.capacity - p.windowMax
		for p.probation.weight+p.protected.weight > mainMax {
			v := p.back(&p.probation)
			if v == none {
				v = p.back(&p.protected)
			}
			p.unlink(v)
			p.arena[v].seg = inWindow
			p.pushFront(&p.window, v)
		}
		p.demoteProtected()
		return
	}
	// The window shrank: its oldest keys move to probation without an
	// admission test (the main space grew by as much).
	for p.window.weight > p.windowMax {
		v := p.back(&p.window)
		p.remove(&p.window, v)
		p.arena[v].seg = inProbation
		p.pushFront(&p.probation, v)
	}
	p.demoteProtected()
}
