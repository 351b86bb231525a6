package wtinylfu

// sketch is a count-min sketch of 4-bit counters (TinyLFU's approximate
// frequency histogram, Einziger, Friedman and Manes, "TinyLFU: A Highly
// Efficient Cache Admission Policy", ACM ToS 2017): depth rows of width
// counters, each saturating at 15. Every sampleSize increments all counters
// are halved (the paper's reset), so that old popularity fades.
type sketch struct {
	rows       [depth][]uint8
	shift      uint // 64 - log2(width)
	additions  int
	sampleSize int
}

const (
	depth      = 4
	maxCounter = 15
)

// newSketch sizes the sketch for about n distinct hot keys: each row has
// perKey*n counters rounded up to a power of two (at least 256; Caffeine's
// sketch has perKey 4), and the sample is ten accesses per key.
func newSketch(n, perKey int64) *sketch {
	w, bits := uint64(256), uint(8)
	for int64(w) < perKey*n && w < 1<<30 {
		w, bits = w<<1, bits+1
	}
	s := &sketch{shift: 64 - bits, sampleSize: 10 * int(max(n, 16))}
	for i := range s.rows {
		s.rows[i] = make([]uint8, w)
	}
	return s
}

// rowSeeds make the rows' hash functions independent.
var rowSeeds = [depth]uint64{0x97cb3127b9d8e0f1, 0xc3a5c85c97cb3127, 0xb492b66fbe98f273, 0x9ae16a3b2f90404f}

// index returns the counter of key hash h in row i: the high bits of a
// multiplicative hash of h and the row's seed.
func (s *sketch) index(h uint64, i int) uint64 {
	return ((h ^ rowSeeds[i]) * 0x9e3779b97f4a7c15) >> s.shift
}

// increment counts one occurrence of h and reports whether it reset the
// sketch.
func (s *sketch) increment(h uint64) bool {
	added := false
	for i := range s.rows {
		c := &s.rows[i][s.index(h, i)]
		if *c < maxCounter {
			*c++
			added = true
		}
	}
	if !added {
		return false
	}
	if s.additions++; s.additions >= s.sampleSize {
		s.reset()
		return true
	}
	return false
}

// estimate returns the estimated frequency of h, 0 to 15.
func (s *sketch) estimate(h uint64) int {
	m := uint8(maxCounter)
	for i := range s.rows {
		m = min(m, s.rows[i][s.index(h, i)])
	}
	return int(m)
}

// reset halves every counter.
func (s *sketch) reset() {
	for i := range s.rows {
		for j, c := range s.rows[i] {
			s.rows[i][j] = c >> 1
		}
	}
	s.additions /= 2
}
