package wtinylfu

import (
	"fmt"
	"testing"

	"github.com/cespare/xxhash/v2"
)

// BenchmarkAccessHeld is a hit on a held key, the disk tier's work per
// memory hit: keys held of the expected (so that the shadows sample one
// key in expected/4096), requested round robin.
func BenchmarkAccessHeld(b *testing.B) {
	for _, c := range []struct{ held, expected int }{{1000, 1000}, {1000, 16384}, {100000, 131072}} {
		b.Run(fmt.Sprintf("held=%d/expected=%d", c.held, c.expected), func(b *testing.B) {
			p := NewShadowed(int64(c.expected), int64(c.expected), xxhash.Sum64String)
			keys := make([]string, c.held)
			for i := range keys {
				keys[i] = fmt.Sprintf("http://example.com/objects/%d", i)
				p.Access(keys[i])
				p.Add(keys[i], 1, func(string) {})
			}
			b.ResetTimer()
			for i := range b.N {
				p.Access(keys[i%len(keys)])
			}
		})
	}
}
