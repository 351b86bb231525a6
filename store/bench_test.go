package store

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
)

var sizes = []struct {
	name string
	n    int
}{{"1KiB", 1 << 10}, {"100KiB", 100 << 10}, {"1MiB", 1 << 20}}

func benchOptions(b *testing.B, memory bool) Options {
	opts := Options{Dir: b.TempDir(), DiskBytes: 1 << 30, MemoryBytes: 256 << 20, NoSync: true}
	if !memory {
		opts.MemoryBytes = -1
	}
	return opts
}

// BenchmarkGetMemory is the hit path: Get plus the resident body.
func BenchmarkGetMemory(b *testing.B) {
	for _, sz := range sizes {
		b.Run(sz.name, func(b *testing.B) {
			s := openTest(b, benchOptions(b, true))
			put(b, s, "http://h/k", body(sz.n, 1), CreateOptions{SizeHint: int64(sz.n)})
			s.mem.c.Wait()
			ctx := context.Background()
			if o, err := s.Get(ctx, "http://h/k"); err != nil {
				b.Fatal(err)
			} else if _, ok := o.Body(); !ok {
				b.Fatal("object not resident in memory")
			}
			b.SetBytes(int64(sz.n))
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					o, err := s.Get(ctx, "http://h/k")
					if err != nil {
						b.Fatal(err)
					}
					if body, ok := o.Body(); !ok || len(body) != sz.n {
						b.Fatal("not resident")
					}
				}
			})
		})
	}
}

// BenchmarkGetDisk is a disk-only hit: Get plus streaming the body.
func BenchmarkGetDisk(b *testing.B) {
	for _, sz := range sizes {
		b.Run(sz.name, func(b *testing.B) {
			s := openTest(b, benchOptions(b, false))
			put(b, s, "http://h/k", body(sz.n, 1), CreateOptions{SizeHint: int64(sz.n)})
			ctx := context.Background()
			b.SetBytes(int64(sz.n))
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				o, err := s.Get(ctx, "http://h/k")
				if err != nil {
					b.Fatal(err)
				}
				r, err := s.NewReader(ctx, o, 0, -1)
				if err != nil {
					b.Fatal(err)
				}
				if n, err := io.Copy(io.Discard, r); err != nil || n != int64(sz.n) {
					b.Fatal(n, err)
				}
				r.Close()
			}
		})
	}
}

// BenchmarkGetDiskCold is a disk-only hit that mostly misses pebble's
// block cache (1 MiB against 32 MiB of incompressible bodies, flushed and
// compacted into tables), for pebble block sizes around dataBlockSize: a
// larger block makes small objects share its cost on disk but makes a cold
// hit read and checksum the whole block. Files stay in the OS page cache,
// so ns/op is the CPU and copying of the larger read, not a device's
// latency; KiB-read/hit is what a hit read from pebble's files.
func BenchmarkGetDiskCold(b *testing.B) {
	for _, size := range []int{1 << 10, 4 << 10} {
		for _, bs := range []int{4 << 10, 16 << 10, 32 << 10} {
			b.Run(fmt.Sprintf("object=%dKiB/block=%dKiB", size>>10, bs>>10), func(b *testing.B) {
				opts := benchOptions(b, false)
				opts.BlockCacheBytes = 1 << 20
				opts.blockSize = bs
				read := &readCounter{FS: vfs.Default}
				opts.FS = read
				s := openTest(b, opts)
				n := (32 << 20) / size
				rng := rand.New(rand.NewPCG(1, 2))
				for i := range n {
					put(b, s, "http://h/"+strconv.Itoa(i), randomBody(rng, size), CreateOptions{SizeHint: int64(size)})
				}
				d := s.acquire()
				defer d.release()
				if err := d.db.Flush(); err != nil {
					b.Fatal(err)
				}
				if err := d.db.Compact(context.Background(), []byte{0}, []byte{0xff}, true); err != nil {
					b.Fatal(err)
				}
				ctx := context.Background()
				buf := make([]byte, size)
				read.n.Store(0)
				b.SetBytes(int64(size))
				b.ReportAllocs()
				b.ResetTimer()
				for b.Loop() {
					k := "http://h/" + strconv.Itoa(rng.IntN(n))
					o, err := s.Get(ctx, k)
					if err != nil {
						b.Fatal(k, err)
					}
					r, err := s.NewReader(ctx, o, 0, -1)
					if err != nil {
						b.Fatal(err)
					}
					if m, err := io.ReadFull(r, buf); err != nil || m != size {
						b.Fatal(m, err)
					}
					r.Close()
				}
				b.StopTimer()
				b.ReportMetric(float64(read.n.Load())/1024/float64(b.N), "KiB-read/hit")
			})
		}
	}
}

// BenchmarkCompact reports the CPU time of the whole process (user and
// system) per MiB of bodies for storing 32 MiB of objects with random bodies
// (flushes and the compactions that run meanwhile included) and for then
// compacting everything into pebble's bottom level. Every compaction tries
// to compress each block of bodies (tableCompression), though random bytes
// do not compress.
func BenchmarkCompact(b *testing.B) {
	for _, size := range []int{4 << 10, 100 << 10} {
		b.Run(fmt.Sprintf("object=%dKiB", size>>10), func(b *testing.B) {
			const total = 32 << 20
			rng := rand.New(rand.NewPCG(1, 2))
			bodies := make([][]byte, 64)
			for i := range bodies {
				bodies[i] = randomBody(rng, size)
			}
			var store, compact time.Duration
			for b.Loop() {
				s := openTest(b, benchOptions(b, false))
				c0 := processCPU(b)
				for i := range total / size {
					put(b, s, "http://h/"+strconv.Itoa(i), bodies[i%len(bodies)], CreateOptions{SizeHint: int64(size)})
				}
				d := s.acquire()
				if err := d.db.Flush(); err != nil {
					b.Fatal(err)
				}
				c1 := processCPU(b)
				if err := d.db.Compact(context.Background(), []byte{0}, []byte{0xff}, true); err != nil {
					b.Fatal(err)
				}
				c2 := processCPU(b)
				d.release()
				s.Close()
				store += c1 - c0
				compact += c2 - c1
			}
			mib := float64(b.N) * total / (1 << 20)
			b.ReportMetric(float64(store.Microseconds())/mib, "cpu-us-store/MiB")
			b.ReportMetric(float64(compact.Microseconds())/mib, "cpu-us-compact/MiB")
		})
	}
}

// processCPU is the CPU time the process has used, user and system.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// readCounter counts the bytes read from the files it opens.
type readCounter struct {
	vfs.FS
	n atomic.Int64
}

func (fs *readCounter) Open(name string, opts ...vfs.OpenOption) (vfs.File, error) {
	f, err := fs.FS.Open(name, opts...)
	if err != nil {
		return nil, err
	}
	return countedFile{File: f, n: &fs.n}, nil
}

type countedFile struct {
	vfs.File
	n *atomic.Int64
}

func (f countedFile) ReadAt(p []byte, off int64) (int, error) {
	n, err := f.File.ReadAt(p, off)
	f.n.Add(int64(n))
	return n, err
}

// BenchmarkFill measures fill throughput (MB/s) of 1 MiB objects written in
// 32 KiB pieces, with fsync on commit, for several chunk sizes.
func BenchmarkFill(b *testing.B) {
	const obj = 1 << 20
	piece := body(32<<10, 7)
	for _, cs := range []int{16 << 10, 64 << 10, 256 << 10} {
		b.Run(fmt.Sprintf("chunk=%dKiB", cs>>10), func(b *testing.B) {
			opts := benchOptions(b, false)
			opts.ChunkSize = cs
			opts.NoSync = false
			s := openTest(b, opts)
			ctx := context.Background()
			b.SetBytes(obj)
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				w, err := s.Create(ctx, fmt.Sprintf("http://h/%d", i), testMeta(), CreateOptions{SizeHint: obj})
				if err != nil {
					b.Fatal(err)
				}
				for range obj / len(piece) {
					if _, err := w.Write(piece); err != nil {
						b.Fatal(err)
					}
				}
				if _, err := w.Commit(ctx); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
	}
}

// fillMany stores n objects of size bytes, from 16 goroutines.
func fillMany(b *testing.B, s *Store, n, size int) {
	var wg sync.WaitGroup
	data := body(size, 3)
	for g := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := g; i < n; i += 16 {
				put(b, s, fmt.Sprintf("http://host.example/path/%d", i), data, CreateOptions{Tags: []string{"t"}, SizeHint: int64(size)})
			}
		}()
	}
	wg.Wait()
}

// BenchmarkOpen reports the time to open a disk tier holding 100k objects
// (and 1M with CELLAR_BENCH_1M=1: its setup takes minutes).
func BenchmarkOpen(b *testing.B) {
	counts := []int{100_000}
	if os.Getenv("CELLAR_BENCH_1M") != "" {
		counts = append(counts, 1_000_000)
	}
	for _, n := range counts {
		b.Run(fmt.Sprintf("objects=%d", n), func(b *testing.B) {
			opts := benchOptions(b, false)
			opts.DiskBytes = 8 << 30 // no eviction during setup
			s, err := Open(opts)
			if err != nil {
				b.Fatal(err)
			}
			fillMany(b, s, n, 1<<10)
			s.Close()
			var total time.Duration
			for b.Loop() {
				start := time.Now()
				s, err := Open(opts)
				if err != nil {
					b.Fatal(err)
				}
				total += time.Since(start)
				if st := s.Stats(); st.DiskObjects != int64(n) {
					b.Fatalf("%d objects after open, want %d", st.DiskObjects, n)
				}
				s.Close()
			}
			b.ReportMetric(float64(total.Milliseconds())/float64(b.N), "ms/open")
		})
	}
}

// BenchmarkHeapPerObject reports the heap bytes per cached 1 KiB object:
// its memory-tier copy and its disk index entry.
func BenchmarkHeapPerObject(b *testing.B) {
	const n = 20_000
	for b.Loop() {
		s := openTest(b, benchOptions(b, true))
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		rssBefore := residentBytes(b)
		fillMany(b, s, n, 1<<10)
		s.mem.c.Wait()
		runtime.GC()
		runtime.ReadMemStats(&after)
		rssAfter := residentBytes(b)
		_, resident := s.mem.usage()
		b.ReportMetric(float64(int64(after.HeapAlloc)-int64(before.HeapAlloc))/n, "heap-B/object")
		// RSS also counts what pebble's memtables and block cache touched
		// (bounded by Options), so it is an upper bound per object.
		b.ReportMetric(float64(rssAfter-rssBefore)/n, "rss-B/object")
		b.ReportMetric(float64(resident)/n, "resident-ratio")
		s.Close()
	}
}

// residentBytes is the process's resident set size, from /proc/self/statm.
func residentBytes(b *testing.B) int64 {
	data, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		b.Skipf("no /proc/self/statm: %v", err)
	}
	fields := strings.Fields(string(data))
	if len(fields) < 2 {
		b.Fatalf("statm %q", data)
	}
	pages, err := strconv.ParseInt(fields[1], 10, 64)
	if err != nil {
		b.Fatal(err)
	}
	return pages * int64(os.Getpagesize())
}
