package bench

import (
	"bytes"
	"compress/gzip"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
)

// tracesDir holds the public traces shipped with the repository (see its
// README.md).
const tracesDir = "../testdata/traces"

var traceCache sync.Map // file name -> *Trace; traces are read once per run

// sharedTrace loads a shipped trace; a missing one fails the test.
func sharedTrace(t testing.TB, name string) *Trace {
	t.Helper()
	if tr, ok := traceCache.Load(name); ok {
		return tr.(*Trace)
	}
	tr, err := Load(filepath.Join(tracesDir, name), "")
	if err != nil {
		t.Fatal(err)
	}
	traceCache.Store(name, tr)
	return tr
}

func TestReaderCountsShippedTraces(t *testing.T) {
	// Requests and objects as listed in testdata/traces/README.md; the first
	// keys as read by hand with zstd/xz/zcat and xxd.
	tests := []struct {
		file             string
		requests         int
		objects          int64 // 0: not listed
		firstKeys        []uint64
		firstSizes       []int64
		minSize, maxSize int64
	}{
		{file: "arc-OLTP.lis.zst", requests: 914145, firstKeys: []uint64{1, 2, 3, 4, 5}, minSize: 1, maxSize: 1},
		{file: "lirs-gli.trace.gz", requests: 6015, firstKeys: []uint64{0, 1, 1}, minSize: 1, maxSize: 1},
		{file: "lirs-loop.trace.gz", requests: 505500, firstKeys: []uint64{0, 1, 2}, minSize: 1, maxSize: 1},
		{file: "cache2k-web07.trace.xz", requests: 76118, firstKeys: []uint64{0, 1, 2, 0}, minSize: 1, maxSize: 1},
		{file: "adaptsize-request.trace.xz", requests: 66987, objects: 36815, firstKeys: []uint64{0, 1, 2, 3, 4},
			firstSizes: []int64{68, 7454, 40773, 1822, 3379}, minSize: 1, maxSize: 4_200_000},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			tr := sharedTrace(t, tt.file)
			// lirs-gli: README lists 6,016, the file's line count; its
			// last line is empty, so it holds 6,015 requests.
			if got := len(tr.Requests); got != tt.requests {
				t.Errorf("requests = %d, want %d", got, tt.requests)
			}
			if tt.objects != 0 {
				if got := tr.Stats().Objects; got != tt.objects {
					t.Errorf("objects = %d, want %d", got, tt.objects)
				}
			}
			for i, k := range tt.firstKeys {
				if tr.Requests[i].Key != k {
					t.Errorf("request %d key = %d, want %d", i, tr.Requests[i].Key, k)
				}
			}
			for i, s := range tt.firstSizes {
				if tr.Requests[i].Size != s {
					t.Errorf("request %d size = %d, want %d", i, tr.Requests[i].Size, s)
				}
			}
			for i, r := range tr.Requests {
				if r.Size < tt.minSize || r.Size > tt.maxSize {
					t.Fatalf("request %d size %d outside [%d, %d]", i, r.Size, tt.minSize, tt.maxSize)
				}
			}
		})
	}
}

func TestReaderParsesEachFormat(t *testing.T) {
	tests := []struct {
		name   string
		format Format
		input  string
		want   []Request
	}{
		{"arc expands runs", FormatARC, "10 3 0 0\n# comment\n\n7 1 0 1\n5 0 0 2\n", []Request{{10, 1}, {11, 1}, {12, 1}, {7, 1}}},
		{"arc without final newline", FormatARC, "1 2 0 0", []Request{{1, 1}, {2, 1}}},
		{"lirs one key per line", FormatLIRS, "3\n 4 \r\n3", []Request{{3, 1}, {4, 1}, {3, 1}}},
		{"cache2k big-endian int32", FormatCache2k, "\x00\x00\x01\x00\xff\xff\xff\xff", []Request{{256, 1}, {^uint64(0), 1}}},
		{"adaptsize time id size", FormatAdaptSize, "1 5 100\n2 6 0\n", []Request{{5, 100}, {6, 1}}},
		{"csv with header", FormatCSV, "key,size\n/a,10\n42,7\n", []Request{{csvKey("/a"), 10}, {42, 7}}},
		{"csv keys only", FormatCSV, "a\nb\na\n", []Request{{csvKey("a"), 1}, {csvKey("b"), 1}, {csvKey("a"), 1}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ReadAll(strings.NewReader(tt.input), tt.format)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestReaderRejectsMalformedInput(t *testing.T) {
	tests := []struct {
		name   string
		format Format
		input  string
	}{
		{"arc text", FormatARC, "1 2 0 0\nx y\n"},
		{"arc one field", FormatARC, "12\n"},
		{"lirs negative", FormatLIRS, "-1\n"},
		{"cache2k partial record", FormatCache2k, "\x00\x00\x00\x01\x00\x00"},
		{"adaptsize two fields", FormatAdaptSize, "1 2\n"},
		{"adaptsize negative size", FormatAdaptSize, "1 2 -5\n"},
		{"csv bad size after first line", FormatCSV, "a,1\nb,x\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ReadAll(strings.NewReader(tt.input), tt.format)
			if !errors.Is(err, ErrFormat) {
				t.Errorf("err = %v, want ErrFormat", err)
			}
		})
	}
}

func TestDecompressDetectsMagicBytes(t *testing.T) {
	const text = "1\n2\n3\n"
	want := []Request{{1, 1}, {2, 1}, {3, 1}}
	var gz, xzb, zst bytes.Buffer
	gw := gzip.NewWriter(&gz)
	gw.Write([]byte(text))
	gw.Close()
	xw, err := xz.NewWriter(&xzb)
	if err != nil {
		t.Fatal(err)
	}
	xw.Write([]byte(text))
	xw.Close()
	zw, err := zstd.NewWriter(&zst)
	if err != nil {
		t.Fatal(err)
	}
	zw.Write([]byte(text))
	zw.Close()
	for name, data := range map[string][]byte{"plain": []byte(text), "gzip": gz.Bytes(), "xz": xzb.Bytes(), "zstd": zst.Bytes()} {
		t.Run(name, func(t *testing.T) {
			got, err := ReadAll(bytes.NewReader(data), FormatLIRS)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, want) {
				t.Errorf("got %v, want %v", got, want)
			}
		})
	}
}

func TestGuessFormatFromFileName(t *testing.T) {
	tests := []struct {
		name string
		want Format
	}{
		{"/x/arc-OLTP.lis.zst", FormatARC},
		{"P1.lis", FormatARC},
		{"lirs-gli.trace.gz", FormatLIRS},
		{"cache2k-web07.trace.xz", FormatCache2k},
		{"adaptsize-request.trace.xz", FormatAdaptSize},
		{"requests.csv.gz", FormatCSV},
	}
	for _, tt := range tests {
		got, err := GuessFormat(tt.name)
		if err != nil || got != tt.want {
			t.Errorf("GuessFormat(%q) = %q, %v; want %q", tt.name, got, err, tt.want)
		}
	}
	if _, err := GuessFormat("trace.bin"); !errors.Is(err, ErrUnknownFormat) {
		t.Errorf("GuessFormat(trace.bin) err = %v, want ErrUnknownFormat", err)
	}
}

func FuzzReader(f *testing.F) {
	f.Add("arc", "10 3 0 0\n7 1 0 1\n")
	f.Add("lirs", "3\n4\n")
	f.Add("cache2k", "\x00\x00\x01\x00")
	f.Add("adaptsize", "1 5 100\n")
	f.Add("csv", "key,size\n/a,10\n")
	f.Fuzz(func(t *testing.T, format, input string) {
		fm, err := ParseFormat(format)
		if err != nil {
			return
		}
		r, err := NewReader(strings.NewReader(input), fm)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for req, err := range r.All() {
			if err != nil {
				if !errors.Is(err, ErrFormat) {
					t.Fatalf("error %v is not ErrFormat", err)
				}
				return
			}
			if req.Size < 1 {
				t.Fatalf("size %d < 1", req.Size)
			}
			// An arc run may be long: stop early, the reader is lazy.
			if n++; n > 1e5 {
				return
			}
		}
	})
}
