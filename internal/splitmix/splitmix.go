// Package splitmix holds the SplitMix64 finalizer, the bijective 64-bit
// mix that rendezvous hashing (the cluster's ring, origin balancing) and
// the bench's key hashes and the store's replacement policy use to make
// derived hashes independent.
package splitmix

// Mix64 is the SplitMix64 finalizer: a bijection of x whose output bits
// each depend on every input bit.
func Mix64(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}
