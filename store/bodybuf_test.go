package store

import (
	"bytes"
	"math/rand/v2"
	"runtime"
	"testing"
)

// TestBodyBufKeepsTheBytes writes bodies of many sizes in writes of many
// sizes, with and without a size known up front (right or too short), and
// reads back the same bytes in a slice of their size.
func TestBodyBufKeepsTheBytes(t *testing.T) {
	rnd := rand.New(rand.NewPCG(1, 2))
	for _, size := range []int{0, 1, 1000, bodyPiece - 1, bodyPiece, bodyPiece + 1, 3*bodyPiece + 17, 1 << 20} {
		for _, hint := range []int{-1, size, size / 2} {
			want := make([]byte, size)
			for i := range want {
				want[i] = byte(rnd.Uint32())
			}
			var b bodyBuf
			if hint > 0 {
				b.preallocate(int64(hint))
			}
			for p := want; len(p) > 0; {
				k := min(len(p), 1+rnd.IntN(3*bodyPiece/2))
				b.write(p[:k])
				p = p[k:]
			}
			if b.len() != int64(size) {
				t.Fatalf("size %d hint %d: len %d", size, hint, b.len())
			}
			got := b.bytes()
			if !bytes.Equal(got, want) {
				t.Fatalf("size %d hint %d: the bytes differ", size, hint)
			}
			if cap(got) > size+size/32+8 {
				t.Errorf("size %d hint %d: capacity %d", size, hint, cap(got))
			}
			if b.len() != 0 || len(b.pieces) != 0 || b.last != nil {
				t.Errorf("size %d hint %d: not empty after bytes: %+v", size, hint, b)
			}
			b.reset()
		}
	}
}

// TestBodyBufAllocatesLittleMoreThanTheBody: a 1 MiB body of unknown size
// written in 4 KiB pieces allocates at most the body and its pieces, even
// when a collection empties the pool (appending to one slice allocated
// about five times the body).
func TestBodyBufAllocatesLittleMoreThanTheBody(t *testing.T) {
	const size = 1 << 20
	p := make([]byte, 4<<10)
	fill := func() {
		var b bodyBuf
		for n := 0; n < size; n += len(p) {
			b.write(p)
		}
		b.bytes()
	}
	fill() // fills the pool
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range 10 {
		fill()
	}
	runtime.ReadMemStats(&after)
	if per := (after.TotalAlloc - before.TotalAlloc) / 10; per > 2*size+size/4 {
		t.Errorf("%d bytes allocated per %d-byte body", per, size)
	}
}
