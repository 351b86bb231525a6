package bench

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"iter"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
)

// ErrFormat is returned (wrapped, with the line number) when a trace line or
// record does not follow its format. Test for it with errors.Is.
var ErrFormat = errors.New("bench: malformed trace")

// ErrUnknownFormat is returned when a format name is not one of Formats, or
// cannot be guessed from a file name.
var ErrUnknownFormat = errors.New("bench: unknown trace format")

// Request is one access of a trace: an object key and the object's size in
// bytes. Size is 1 for traces that carry no sizes, so that byte capacities
// and object capacities agree on them.
type Request struct {
	// Key identifies the object. Traces with string keys (csv) hash them
	// with 64-bit FNV-1a; integer keys are used as they are.
	Key uint64
	// Size is the object's size in bytes, at least 1.
	Size int64
}

// Format names a trace file format.
type Format string

// The trace formats that Reader understands.
const (
	// FormatARC is the ARC paper's format: lines "start count ignored reqno",
	// each standing for count consecutive keys from start.
	FormatARC Format = "arc"
	// FormatLIRS is one integer key per line (LIRS paper traces); blank
	// lines and lines starting with '#' are skipped.
	FormatLIRS Format = "lirs"
	// FormatCache2k is big-endian int32 keys, 4 bytes each.
	FormatCache2k Format = "cache2k"
	// FormatAdaptSize is lines "time id size" (AdaptSize sample traces).
	FormatAdaptSize Format = "adaptsize"
	// FormatCSV is lines "key,size" or just "key" (size 1). A first line whose
	// size field is not a number is taken as a header and skipped.
	FormatCSV Format = "csv"
)

// Formats lists every supported format, in the order GuessFormat tries them.
var Formats = []Format{FormatARC, FormatLIRS, FormatCache2k, FormatAdaptSize, FormatCSV}

// ParseFormat checks a format name.
func ParseFormat(s string) (Format, error) {
	for _, f := range Formats {
		if string(f) == strings.ToLower(s) {
			return f, nil
		}
	}
	return "", fmt.Errorf("%w: %q (want one of arc, lirs, cache2k, adaptsize, csv)", ErrUnknownFormat, s)
}

// GuessFormat picks a format from a file name: the name (ignoring the
// directory and compression suffixes) starts with the format's name, like the
// shipped "arc-OLTP.lis.zst", or ends in ".csv" or ".lis" (arc).
func GuessFormat(name string) (Format, error) {
	base := strings.ToLower(filepath.Base(name))
	for _, ext := range []string{".gz", ".xz", ".zst", ".zstd"} {
		base = strings.TrimSuffix(base, ext)
	}
	for _, f := range Formats {
		if strings.HasPrefix(base, string(f)) {
			return f, nil
		}
	}
	switch {
	case strings.HasSuffix(base, ".csv"):
		return FormatCSV, nil
	case strings.HasSuffix(base, ".lis"):
		return FormatARC, nil
	}
	return "", fmt.Errorf("%w: cannot guess from file name %q; pass -format", ErrUnknownFormat, name)
}

// Decompress returns a reader of r's content, unwrapped from gzip, xz or zstd
// when its first bytes are that format's magic number; other content is
// returned as is. Close the returned closer to release the decoder.
func Decompress(r io.Reader) (io.Reader, io.Closer, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	magic, err := br.Peek(6)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, nil, fmt.Errorf("reading magic: %w", err)
	}
	switch {
	case bytes.HasPrefix(magic, []byte{0x1f, 0x8b}):
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, nil, fmt.Errorf("gzip: %w", err)
		}
		return zr, zr, nil
	case bytes.HasPrefix(magic, []byte{0xfd, '7', 'z', 'X', 'Z', 0x00}):
		zr, err := xz.NewReader(br)
		if err != nil {
			return nil, nil, fmt.Errorf("xz: %w", err)
		}
		return zr, io.NopCloser(nil), nil
	case bytes.HasPrefix(magic, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		zr, err := zstd.NewReader(br, zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true))
		if err != nil {
			return nil, nil, fmt.Errorf("zstd: %w", err)
		}
		return zr, closerFunc(func() error { zr.Close(); return nil }), nil
	}
	return br, io.NopCloser(nil), nil
}

type closerFunc func() error

func (f closerFunc) Close() error { return f() }

// Reader reads the requests of one trace, one at a time, in bounded memory
// (an ARC run of count keys is expanded lazily). It is not safe for
// concurrent use.
type Reader struct {
	format Format
	br     *bufio.Reader
	line   int
	header bool // csv: a header line is still allowed

	runNext, runLeft uint64 // arc: the rest of the current run
}

// NewReader reads requests in format f from r, which must already be
// decompressed (see Decompress and Open).
func NewReader(r io.Reader, f Format) (*Reader, error) {
	if _, err := ParseFormat(string(f)); err != nil {
		return nil, err
	}
	return &Reader{format: f, br: bufio.NewReaderSize(r, 64<<10), header: true}, nil
}

// Next returns the next request, or io.EOF after the last one.
func (r *Reader) Next() (Request, error) {
	if r.format == FormatCache2k {
		var b [4]byte
		n, err := io.ReadFull(r.br, b[:])
		switch {
		case errors.Is(err, io.EOF):
			return Request{}, io.EOF
		case errors.Is(err, io.ErrUnexpectedEOF):
			return Request{}, fmt.Errorf("%w: cache2k: %d trailing bytes, want a multiple of 4", ErrFormat, n)
		case err != nil:
			return Request{}, err
		}
		// The keys are signed int32; keep negative ones distinct from large
		// positive ones by sign-extending.
		return Request{Key: uint64(int64(int32(binary.BigEndian.Uint32(b[:])))), Size: 1}, nil
	}
	if r.runLeft > 0 {
		r.runLeft--
		k := r.runNext
		r.runNext++
		return Request{Key: k, Size: 1}, nil
	}
	for {
		line, err := r.br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			return Request{}, fmt.Errorf("%w: line %d longer than 64 KiB", ErrFormat, r.line+1)
		}
		if len(line) == 0 && err != nil {
			return Request{}, err // io.EOF at the end
		}
		r.line++
		text := strings.TrimSpace(string(line))
		if text == "" || text[0] == '#' {
			if err != nil {
				return Request{}, err
			}
			continue
		}
		req, ok, perr := r.parseLine(text)
		if perr != nil {
			return Request{}, fmt.Errorf("%w: %s line %d: %q: %v", ErrFormat, r.format, r.line, text, perr)
		}
		if ok {
			return req, nil
		}
		if err != nil {
			return Request{}, err
		}
	}
}

// parseLine parses one non-empty line; ok is false for lines that yield no
// request (a csv header, an arc run of zero keys).
func (r *Reader) parseLine(text string) (req Request, ok bool, err error) {
	switch r.format {
	case FormatLIRS:
		k, err := strconv.ParseUint(text, 10, 64)
		if err != nil {
			return req, false, errors.New("want one unsigned integer key")
		}
		return Request{Key: k, Size: 1}, true, nil
	case FormatARC:
		f := strings.Fields(text)
		if len(f) < 2 {
			return req, false, errors.New(`want "start count ignored reqno"`)
		}
		start, err1 := strconv.ParseUint(f[0], 10, 64)
		count, err2 := strconv.ParseUint(f[1], 10, 64)
		if err1 != nil || err2 != nil {
			return req, false, errors.New("start and count must be unsigned integers")
		}
		if count == 0 {
			return req, false, nil
		}
		r.runNext, r.runLeft = start+1, count-1
		return Request{Key: start, Size: 1}, true, nil
	case FormatAdaptSize:
		f := strings.Fields(text)
		if len(f) != 3 {
			return req, false, errors.New(`want "time id size"`)
		}
		k, err1 := strconv.ParseUint(f[1], 10, 64)
		size, err2 := strconv.ParseInt(f[2], 10, 64)
		if err1 != nil || err2 != nil || size < 0 {
			return req, false, errors.New("id and size must be unsigned integers")
		}
		return Request{Key: k, Size: max(size, 1)}, true, nil
	case FormatCSV:
		header := r.header
		r.header = false
		key, sizeText, hasSize := strings.Cut(text, ",")
		key = strings.TrimSpace(key)
		size := int64(1)
		if hasSize {
			sizeText, _, _ = strings.Cut(sizeText, ",")
			s, err := strconv.ParseInt(strings.TrimSpace(sizeText), 10, 64)
			if err != nil || s < 0 {
				if header {
					return req, false, nil
				}
				return req, false, errors.New("size must be an unsigned integer")
			}
			size = max(s, 1)
		}
		return Request{Key: csvKey(key), Size: size}, true, nil
	}
	return req, false, fmt.Errorf("format %q has no line parser", r.format)
}

// csvKey uses an integer key as it is and hashes any other string with
// 64-bit FNV-1a (the chance of a collision among a million keys is about
// 3e-8).
func csvKey(s string) uint64 {
	if k, err := strconv.ParseUint(s, 10, 64); err == nil {
		return k
	}
	h := fnv.New64a()
	h.Write([]byte(s))
	return h.Sum64()
}

// All iterates over the remaining requests. It stops after the first error,
// which it yields with a zero Request; io.EOF is not yielded.
func (r *Reader) All() iter.Seq2[Request, error] {
	return func(yield func(Request, error) bool) {
		for {
			req, err := r.Next()
			if errors.Is(err, io.EOF) {
				return
			}
			if !yield(req, err) || err != nil {
				return
			}
		}
	}
}

// Trace is a whole trace in memory: what the simulator replays, since
// Belady's optimum needs to see the future. It takes 16 bytes per request.
type Trace struct {
	// Name labels the trace in reports, usually the file's base name.
	Name     string
	Requests []Request
}

// Load reads a whole trace file, decompressing it by its magic bytes. An
// empty format is guessed from the file name.
func Load(path string, f Format) (*Trace, error) {
	if f == "" {
		var err error
		if f, err = GuessFormat(path); err != nil {
			return nil, err
		}
	}
	file, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer file.Close()
	reqs, err := ReadAll(file, f)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	return &Trace{Name: filepath.Base(path), Requests: reqs}, nil
}

// ReadAll decompresses r if needed and reads all of its requests.
func ReadAll(r io.Reader, f Format) ([]Request, error) {
	dr, closer, err := Decompress(r)
	if err != nil {
		return nil, err
	}
	defer closer.Close()
	tr, err := NewReader(dr, f)
	if err != nil {
		return nil, err
	}
	var reqs []Request
	for req, err := range tr.All() {
		if err != nil {
			return nil, err
		}
		reqs = append(reqs, req)
	}
	return reqs, nil
}

// Stats summarises a trace.
type Stats struct {
	Requests, Objects int64
	// Bytes is the sum of request sizes; UniqueBytes the sum of the sizes
	// of distinct objects (first size seen).
	Bytes, UniqueBytes int64
	// MaxHitRatio is the hit ratio of an infinite cache: every request but
	// the first to each object hits.
	MaxHitRatio float64
}

// SetObjectSize gives every request the size n. It refuses a trace whose
// requests carry sizes of their own.
func (t *Trace) SetObjectSize(n int64) error {
	for _, r := range t.Requests {
		if r.Size != 1 {
			return fmt.Errorf("trace %s has object sizes of its own", t.Name)
		}
	}
	for i := range t.Requests {
		t.Requests[i].Size = n
	}
	return nil
}

// Stats counts requests, distinct objects and bytes.
func (t *Trace) Stats() Stats {
	seen := make(map[uint64]struct{})
	var s Stats
	for _, r := range t.Requests {
		s.Requests++
		s.Bytes += r.Size
		if _, ok := seen[r.Key]; !ok {
			seen[r.Key] = struct{}{}
			s.UniqueBytes += r.Size
		}
	}
	s.Objects = int64(len(seen))
	if s.Requests > 0 {
		s.MaxHitRatio = float64(s.Requests-s.Objects) / float64(s.Requests)
	}
	return s
}
