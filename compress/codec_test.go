package compress

import (
	"bytes"
	stdflate "compress/flate"
	stdgzip "compress/gzip"
	stdzlib "compress/zlib"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"sync"
	"testing"

	"github.com/klauspost/compress/zstd"

	"github.com/cellar-cache/cellar/internal/leaktest"
)

// TestMain fails the run if a test leaves goroutines behind: the zstd
// encoder and decoder start workers unless configured not to.
func TestMain(m *testing.M) { os.Exit(leaktest.Main(m)) }

func newOptions(t testing.TB, o Options) *Options {
	t.Helper()
	o.EnsureDefaults()
	if err := o.Validate(); err != nil {
		t.Fatal(err)
	}
	return &o
}

func encode(t testing.TB, o *Options, best bool, coding string, data []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	newW := o.NewWriter
	if best {
		newW = o.NewBestWriter
	}
	w, err := newW(&buf, coding)
	if err != nil {
		t.Fatalf("NewWriter(%q): %v", coding, err)
	}
	// Write in uneven pieces, as a body arrives from the network.
	for p := data; len(p) > 0; {
		n := min(len(p), 7919)
		if _, err := w.Write(p[:n]); err != nil {
			t.Fatalf("%s Write: %v", coding, err)
		}
		p = p[n:]
	}
	if err := w.Close(); err != nil {
		t.Fatalf("%s Close: %v", coding, err)
	}
	return buf.Bytes()
}

func decode(t testing.TB, coding string, enc []byte) []byte {
	t.Helper()
	r, err := NewReader(bytes.NewReader(enc), coding)
	if err != nil {
		t.Fatalf("NewReader(%q): %v", coding, err)
	}
	got, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("%s decode: %v", coding, err)
	}
	if err := r.Close(); err != nil {
		t.Fatalf("%s reader Close: %v", coding, err)
	}
	return got
}

func TestEveryCodingRoundTripsTheCorpus(t *testing.T) {
	o := newOptions(t, Options{})
	inputs := []corpusFile{{name: "empty"}, {name: "one byte", data: []byte("x")}}
	inputs = append(inputs, loadCorpus(t)...)
	for _, coding := range allCodings {
		for _, best := range []bool{false, true} {
			for _, in := range inputs {
				t.Run(fmt.Sprintf("%s/best=%v/%s", coding, best, in.name), func(t *testing.T) {
					data := in.data
					if best {
						// The dense levels are slow under -race (brotli 11
						// runs at about 10 KB/s there); a prefix exercises
						// the same code.
						data = data[:min(len(data), 12<<10)]
					}
					enc := encode(t, o, best, coding, data)
					if len(data) > 10<<10 && len(enc) >= len(data)/2 {
						t.Errorf("%s compressed %d bytes to %d, want under half", coding, len(data), len(enc))
					}
					if got := decode(t, coding, enc); !bytes.Equal(got, data) {
						t.Errorf("%s round trip changed the data: got %d bytes, want %d", coding, len(got), len(data))
					}
				})
			}
		}
	}
}

// TestGzipOutputDecodesWithTheStandardLibrary checks interoperability with
// another implementation than the one that wrote it.
func TestGzipOutputDecodesWithTheStandardLibrary(t *testing.T) {
	o := newOptions(t, Options{})
	data := loadCorpus(t)[0].data
	zr, err := stdgzip.NewReader(bytes.NewReader(encode(t, o, false, Gzip, data)))
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(zr)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("standard gzip decoded %d bytes, err %v; want %d bytes", len(got), err, len(data))
	}
}

func TestNewReaderDecodesOtherImplementationsAndAliases(t *testing.T) {
	data := bytes.Repeat([]byte("cellar caches; "), 500)
	var gz, zl, raw bytes.Buffer
	gw := stdgzip.NewWriter(&gz)
	gw.Write(data)
	gw.Close()
	zw := stdzlib.NewWriter(&zl)
	zw.Write(data)
	zw.Close()
	fw, _ := stdflate.NewWriter(&raw, stdflate.BestCompression)
	fw.Write(data)
	fw.Close()
	tests := []struct {
		coding string
		enc    []byte
	}{
		{"gzip", gz.Bytes()},
		{"x-gzip", gz.Bytes()},
		{"GZIP", gz.Bytes()},
		{"deflate", zl.Bytes()},  // RFC 9110 §8.4.1.2: zlib
		{"deflate", raw.Bytes()}, // what some servers send instead
		{"identity", data},
		{" Identity ", data},
	}
	for _, tt := range tests {
		if got := decode(t, tt.coding, tt.enc); !bytes.Equal(got, data) {
			t.Errorf("NewReader(%q) decoded %d bytes, want %d", tt.coding, len(got), len(data))
		}
	}
}

func TestUnsupportedCodingsReturnErrUnsupported(t *testing.T) {
	o := newOptions(t, Options{})
	for _, c := range []string{"compress", "x-compress", "lz4", "", "gzip, br"} {
		if _, err := NewReader(bytes.NewReader(nil), c); !errors.Is(err, ErrUnsupported) {
			t.Errorf("NewReader(%q) error = %v, want ErrUnsupported", c, err)
		}
	}
	for _, c := range []string{"compress", "identity", "deflate", "", "lz4"} {
		if _, err := o.NewWriter(io.Discard, c); !errors.Is(err, ErrUnsupported) {
			t.Errorf("NewWriter(%q) error = %v, want ErrUnsupported", c, err)
		}
	}
}

func TestTruncatedOrCorruptStreamsFailToDecode(t *testing.T) {
	o := newOptions(t, Options{})
	data := loadCorpus(t)[0].data
	for _, coding := range allCodings {
		enc := encode(t, o, false, coding, data)
		for name, bad := range map[string][]byte{
			"truncated": enc[:len(enc)/2],
			"corrupt":   append(append([]byte{}, enc[:len(enc)/2]...), bytes.Repeat([]byte{0xA5}, len(enc)/2)...),
		} {
			t.Run(coding+"/"+name, func(t *testing.T) {
				r, err := NewReader(bytes.NewReader(bad), coding)
				if err == nil {
					_, err = io.ReadAll(r)
					r.Close()
				}
				if err == nil {
					t.Errorf("decoding a %s %s stream succeeded, want an error", name, coding)
				}
			})
		}
	}
}

func TestZstdReaderRejectsWindowsOverRFC9659Limit(t *testing.T) {
	data := bytes.Repeat([]byte("0123456789abcdef"), 1<<20) // 16 MiB
	var buf bytes.Buffer
	e, err := zstd.NewWriter(&buf, zstd.WithWindowSize(32<<20), zstd.WithEncoderConcurrency(1))
	if err != nil {
		t.Fatal(err)
	}
	e.Write(data)
	e.Close()
	r, err := NewReader(bytes.NewReader(buf.Bytes()), Zstd)
	if err == nil {
		_, err = io.Copy(io.Discard, r)
		r.Close()
	}
	if err == nil {
		t.Fatal("decoding a zstd frame with a 32 MiB window succeeded, want an error")
	}
}

func TestClosedWriterRejectsWritesAndIsReusedSafely(t *testing.T) {
	o := newOptions(t, Options{})
	for _, coding := range allCodings {
		var first bytes.Buffer
		w, err := o.NewWriter(&first, coding)
		if err != nil {
			t.Fatal(err)
		}
		w.Write([]byte("first body, first body, first body"))
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		firstLen := first.Len()
		if _, err := w.Write([]byte("late")); err == nil {
			t.Errorf("%s: Write after Close succeeded", coding)
		}
		if err := w.Close(); err == nil {
			t.Errorf("%s: second Close succeeded", coding)
		}
		// The next writer may get the same encoder from the pool: it must
		// start a fresh stream and leave the first output alone.
		second := encode(t, o, false, coding, []byte("second"))
		if got := decode(t, coding, second); string(got) != "second" {
			t.Errorf("%s: reused encoder produced %q, want %q", coding, got, "second")
		}
		if first.Len() != firstLen {
			t.Errorf("%s: reuse wrote %d more bytes to the first destination", coding, first.Len()-firstLen)
		}
	}
}

func TestWritersAreSafeForConcurrentUse(t *testing.T) {
	o := newOptions(t, Options{})
	files := loadCorpus(t)
	var wg sync.WaitGroup
	errs := make(chan error, 2*len(allCodings)*len(files))
	for g := 0; g < 2; g++ {
		for _, coding := range allCodings {
			for _, f := range files {
				wg.Go(func() {
					var buf bytes.Buffer
					w, err := o.NewWriter(&buf, coding)
					if err != nil {
						errs <- err
						return
					}
					w.Write(f.data)
					if err := w.Close(); err != nil {
						errs <- err
						return
					}
					r, err := NewReader(&buf, coding)
					if err != nil {
						errs <- err
						return
					}
					defer r.Close()
					got, err := io.ReadAll(r)
					if err != nil || !bytes.Equal(got, f.data) {
						errs <- fmt.Errorf("%s %s: round trip failed: %v", coding, f.name, err)
					}
				})
			}
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestWritersUseConfiguredLevels(t *testing.T) {
	data := loadCorpus(t)[1].data
	data = data[:min(len(data), 24<<10)] // brotli 11 is slow under -race
	for _, coding := range allCodings {
		r := levelRange[coding]
		lo := newOptions(t, Options{Levels: map[string]int{coding: r[0]}})
		hi := newOptions(t, Options{Levels: map[string]int{coding: r[1]}})
		nLo, nHi := len(encode(t, lo, false, coding, data)), len(encode(t, hi, false, coding, data))
		if nHi >= nLo {
			t.Errorf("%s: level %d gave %d bytes, level %d gave %d; want the higher level smaller", coding, r[1], nHi, r[0], nLo)
		}
	}
}

func TestOptionsWithoutEnsureDefaultsStillEncode(t *testing.T) {
	var o Options // no pools, no levels: defaults, no reuse
	for _, coding := range allCodings {
		if got := decode(t, coding, encode(t, &o, false, coding, []byte("hello"))); string(got) != "hello" {
			t.Errorf("%s: got %q", coding, got)
		}
	}
}

func TestPooledZstdDecoderIsReusedSafely(t *testing.T) {
	o := newOptions(t, Options{})
	a := encode(t, o, false, Zstd, []byte("first stream"))
	// A reader closed halfway must not leak its stream into the next one.
	r, err := NewReader(bytes.NewReader(a), Zstd)
	if err != nil {
		t.Fatal(err)
	}
	r.Read(make([]byte, 3))
	r.Close()
	if _, err := r.Read(make([]byte, 1)); err == nil {
		t.Error("Read after Close succeeded")
	}
	// A bad stream returns its decoder to the pool in a usable state.
	if r, err := NewReader(bytes.NewReader([]byte("not zstd at all")), Zstd); err == nil {
		if _, err := io.ReadAll(r); err == nil {
			t.Error("decoding garbage as zstd succeeded")
		}
		r.Close()
	}
	b := encode(t, o, false, Zstd, []byte("second stream"))
	if got := decode(t, Zstd, b); string(got) != "second stream" {
		t.Errorf("reused decoder gave %q, want %q", got, "second stream")
	}
}

// TestDecodersStreamSoCallersCanBoundOutput checks the decode-bomb contract of
// the package documentation: reading a little of a huge decoded body, even
// from a *bytes.Buffer, costs little memory.
func TestDecodersStreamSoCallersCanBoundOutput(t *testing.T) {
	// The fastest levels: building the bomb is not what is tested.
	o := newOptions(t, Options{Levels: map[string]int{Gzip: 1, Brotli: 0, Zstd: 1}})
	const size = 24 << 20
	for _, coding := range allCodings {
		var enc bytes.Buffer
		w, err := o.NewWriter(&enc, coding)
		if err != nil {
			t.Fatal(err)
		}
		zeros := make([]byte, 1<<20)
		for i := 0; i < size/len(zeros); i++ {
			w.Write(zeros)
		}
		w.Close()
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		r, err := NewReader(&enc, coding)
		if err != nil {
			t.Fatal(err)
		}
		n, err := io.Copy(io.Discard, io.LimitReader(r, 1<<20))
		r.Close()
		runtime.ReadMemStats(&after)
		if err != nil || n != 1<<20 {
			t.Fatalf("%s: read %d bytes, err %v", coding, n, err)
		}
		if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 12<<20 {
			t.Errorf("%s: reading 1 MiB of a %d MiB bomb allocated %d MiB", coding, size>>20, alloc>>20)
		}
	}
}
