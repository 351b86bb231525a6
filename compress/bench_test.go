package compress

import (
	"bytes"
	"fmt"
	"io"
	"testing"
)

// BenchmarkLevels measures every level of every coding on the corpus in
// testdata/corpus, each file compressed on its own as it would be served:
// MB/s of input (from SetBytes) and ratio = input bytes / output bytes.
// The defaults in DefaultLevels and DefaultBestLevels come from this (the
// table is in DefaultLevels' doc comment); run
//
//	go test -run '^$' -bench 'BenchmarkLevels/^(gzip|br|zstd)$/^([0-9])$' -benchtime 1s -count 3 ./compress/
//	go test -run '^$' -bench 'BenchmarkLevels/^br$/^(10|11)$' -benchtime 3x -count 2 ./compress/
func BenchmarkLevels(b *testing.B) {
	files := loadCorpus(b)
	var total int64
	for _, f := range files {
		total += int64(len(f.data))
	}
	for _, coding := range []string{Gzip, Brotli, Zstd} {
		r := levelRange[coding]
		for level := r[0]; level <= r[1]; level++ {
			b.Run(fmt.Sprintf("%s/%d", coding, level), func(b *testing.B) {
				o := Options{Levels: map[string]int{coding: level}}
				o.EnsureDefaults()
				var out countWriter
				b.SetBytes(total)
				b.ReportAllocs()
				for b.Loop() {
					out = 0
					for _, f := range files {
						w, err := o.NewWriter(&out, coding)
						if err != nil {
							b.Fatal(err)
						}
						w.Write(f.data)
						if err := w.Close(); err != nil {
							b.Fatal(err)
						}
					}
				}
				b.ReportMetric(float64(total)/float64(out), "ratio")
			})
		}
	}
}

// BenchmarkDecode measures decoding speed per coding (default fast level),
// in MB/s of decoded output.
func BenchmarkDecode(b *testing.B) {
	files := loadCorpus(b)
	o := Options{}
	o.EnsureDefaults()
	for _, coding := range []string{Gzip, Brotli, Zstd} {
		var encoded [][]byte
		var total int64
		for _, f := range files {
			encoded = append(encoded, encode(b, &o, false, coding, f.data))
			total += int64(len(f.data))
		}
		b.Run(coding, func(b *testing.B) {
			b.SetBytes(total)
			b.ReportAllocs()
			for b.Loop() {
				for _, enc := range encoded {
					r, err := NewReader(bytes.NewReader(enc), coding)
					if err != nil {
						b.Fatal(err)
					}
					if _, err := io.Copy(io.Discard, r); err != nil {
						b.Fatal(err)
					}
					r.Close()
				}
			}
		})
	}
}

// BenchmarkNewWriterSmallBody shows what the encoder pools save: one 2 KiB
// body per iteration, pooled (EnsureDefaults called) and fresh (not called).
func BenchmarkNewWriterSmallBody(b *testing.B) {
	body := loadCorpus(b)[2].data[:2048]
	for _, coding := range []string{Gzip, Brotli, Zstd} {
		for _, pooled := range []bool{true, false} {
			b.Run(fmt.Sprintf("%s/pooled=%v", coding, pooled), func(b *testing.B) {
				var o Options
				if pooled {
					o.EnsureDefaults()
				}
				b.SetBytes(int64(len(body)))
				b.ReportAllocs()
				for b.Loop() {
					w, _ := o.NewWriter(io.Discard, coding)
					w.Write(body)
					w.Close()
				}
			})
		}
	}
}

func BenchmarkNegotiate(b *testing.B) {
	accept := []string{"gzip, deflate, br, zstd"}
	b.ReportAllocs()
	for b.Loop() {
		Negotiate(accept, allCodings, nil)
	}
}

// countWriter counts the bytes written to it.
type countWriter int64

func (c *countWriter) Write(p []byte) (int, error) {
	*c += countWriter(len(p))
	return len(p), nil
}
