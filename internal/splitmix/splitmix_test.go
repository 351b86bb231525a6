package splitmix

import "testing"

// TestMix64 checks the finalizer against SplitMix64's published first
// outputs for seed 0: next() adds 0x9e3779b97f4a7c15 to the state and
// finalizes it.
func TestMix64(t *testing.T) {
	var state uint64
	for _, want := range []uint64{0xe220a8397b1dcdaf, 0x6e789e6aa1b965f4, 0x06c45d188009454f} {
		state += 0x9e3779b97f4a7c15
		if got := Mix64(state); got != want {
			t.Errorf("Mix64(%#x) = %#x, want %#x", state, got, want)
		}
	}
}
