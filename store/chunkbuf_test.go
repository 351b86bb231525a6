package store

import "testing"

func TestChunkBufClasses(t *testing.T) {
	for _, n := range []int64{0, 1, 1 << 10, 1<<10 + 1, 4500, 64 << 10, 128 << 10, 128<<10 + 1, 1 << 20} {
		b := getChunkBuf(n)
		if len(b) != 0 || int64(cap(b)) < n {
			t.Errorf("getChunkBuf(%d): len %d cap %d, want empty with room for %d", n, len(b), cap(b), n)
		}
		if n > 1<<10 && n <= 128<<10 && int64(cap(b)) >= 2*n {
			t.Errorf("getChunkBuf(%d): cap %d, want less than twice the size", n, cap(b))
		}
		putChunkBuf(append(b, 'x'))
	}
	// A buffer given back serves a later request of any size up to its
	// class's, never a larger one (the pool may drop it; then a new one).
	for range 100 {
		putChunkBuf(make([]byte, 3, 9000)) // class 8 KiB
		if b := getChunkBuf(8 << 10); len(b) != 0 || cap(b) < 8<<10 {
			t.Fatalf("getChunkBuf(8 KiB) after a 9000-byte buffer came back: len %d cap %d", len(b), cap(b))
		}
		putChunkBuf(make([]byte, 0, 9000))
		if b := getChunkBuf(9 << 10); cap(b) < 9<<10 {
			t.Fatalf("getChunkBuf(9 KiB): cap %d", cap(b))
		}
	}
}
