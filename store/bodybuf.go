package store

import "sync"

// bodyBuf collects the body a fill may keep in the memory tier. A body of
// known size goes into one slice of that size. A body of unknown size (no
// Content-Length, a variant being encoded) goes into pooled pieces and is
// copied once, at the end, into a slice of its size: appending to one
// slice would allocate about five times the body on the way (Go grows a
// large slice by a quarter) and leave up to a quarter of it spare.
type bodyBuf struct {
	pieces [][]byte // full pooled pieces, in order
	last   []byte   // the tail: a pooled piece, or the whole preallocated body
	pooled bool     // last is a pooled piece
	n      int64
}

// bodyPiece is the size of a pooled piece.
const bodyPiece = 64 << 10

var bodyPieces = sync.Pool{New: func() any { b := make([]byte, bodyPiece); return &b }}

// preallocate makes room for a body of n bytes in one slice.
func (b *bodyBuf) preallocate(n int64) {
	b.last = make([]byte, 0, n)
}

// set makes s the whole body, as it is (Options.Simulate).
func (b *bodyBuf) set(s []byte) {
	b.reset()
	b.last, b.n = s, int64(len(s))
}

func (b *bodyBuf) len() int64 { return b.n }

// write appends a copy of p.
func (b *bodyBuf) write(p []byte) {
	b.n += int64(len(p))
	for len(p) > 0 {
		if len(b.last) == cap(b.last) {
			if cap(b.last) > 0 { // a full piece, or a preallocated body that was too short
				b.pieces = append(b.pieces, b.last)
			}
			b.last, b.pooled = (*bodyPieces.Get().(*[]byte))[:0], true
		}
		k := copy(b.last[len(b.last):cap(b.last)], p)
		b.last, p = b.last[:len(b.last)+k], p[k:]
	}
}

// bytes returns the body in a slice of its size and empties b.
func (b *bodyBuf) bytes() []byte {
	if len(b.pieces) == 0 && !b.pooled {
		body := b.last
		b.last, b.n = nil, 0
		return body
	}
	body := make([]byte, 0, b.n)
	for _, p := range b.pieces {
		body = append(body, p...)
	}
	body = append(body, b.last...)
	b.reset()
	return body
}

// reset empties b, giving its pieces back to the pool.
func (b *bodyBuf) reset() {
	for _, p := range b.pieces {
		if cap(p) == bodyPiece {
			p = p[:bodyPiece]
			bodyPieces.Put(&p)
		}
	}
	if b.pooled {
		p := b.last[:bodyPiece]
		bodyPieces.Put(&p)
	}
	clear(b.pieces)
	*b = bodyBuf{pieces: b.pieces[:0]}
}
