package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"errors"
	"image/png"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cellar-cache/cellar/store"
)

func TestRunSimPrintsOneJSONObjectPerPolicyAndCapacity(t *testing.T) {
	var out bytes.Buffer
	args := []string{"-zipf", "0.8", "-objects", "500", "-requests", "20000", "-policy", "lru,opt,ristretto-wait", "-capacity", "20,100", "-json"}
	if err := RunSim(context.Background(), args, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	byKey := map[string]Result{}
	dec := json.NewDecoder(&out)
	for dec.More() {
		var r Result
		if err := dec.Decode(&r); err != nil {
			t.Fatal(err)
		}
		if r.Requests != 20000 || r.HitRatio != float64(r.Hits)/float64(r.Requests) {
			t.Errorf("%s/%d: requests %d, hits %d, hit ratio %v", r.Policy, r.Capacity, r.Requests, r.Hits, r.HitRatio)
		}
		byKey[r.Policy+"/"+FormatCapacity(r.Capacity, false)] = r
	}
	if len(byKey) != 6 {
		t.Fatalf("got %d results, want 6: %v", len(byKey), byKey)
	}
	for _, c := range []string{"20", "100"} {
		lru, opt, ris := byKey["lru/"+c], byKey["opt/"+c], byKey["ristretto-wait/"+c]
		if opt.Hits < lru.Hits || opt.Hits < ris.Hits {
			t.Errorf("capacity %s: OPT %d hits below LRU %d or ristretto %d", c, opt.Hits, lru.Hits, ris.Hits)
		}
	}
	if byKey["lru/100"].Hits <= byKey["lru/20"].Hits {
		t.Errorf("LRU did not gain from 5x the capacity")
	}
}

func TestRunSimTableAndPlots(t *testing.T) {
	dir := t.TempDir()
	for _, ext := range []string{"svg", "png"} {
		var out bytes.Buffer
		plot := filepath.Join(dir, "curve."+ext)
		args := []string{"-objects", "300", "-requests", "5000", "-size-median", "4KiB", "-size-sigma", "1",
			"-policy", "lru,opt", "-bytes", "64KiB,256KiB,1MiB", "-plot", plot}
		if err := RunSim(context.Background(), args, &out, io.Discard); err != nil {
			t.Fatal(err)
		}
		table := out.String()
		for _, want := range []string{"5000 requests", "byte hit ratio", "lru", "opt", "256KiB", "1MiB"} {
			if !strings.Contains(table, want) {
				t.Errorf("table lacks %q:\n%s", want, table)
			}
		}
		f, err := os.Open(plot)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if ext == "png" {
			img, err := png.Decode(f)
			if err != nil {
				t.Fatal(err)
			}
			if b := img.Bounds(); b.Dx() != plotW || b.Dy() != plotH {
				t.Errorf("png is %v", b)
			}
			continue
		}
		data, _ := io.ReadAll(f)
		// Well-formed XML with the legend, the axis labels and a line per
		// capacity step of each policy.
		dec := xml.NewDecoder(bytes.NewReader(data))
		for {
			if _, err := dec.Token(); err == io.EOF {
				break
			} else if err != nil {
				t.Fatalf("svg is not well-formed: %v", err)
			}
		}
		for _, want := range []string{">lru</text>", ">opt</text>", ">hit ratio, dashed: byte hit ratio (%)</text>", ">lru (bytes)</text>", ">cache size (bytes)</text>", ">1MiB</text>"} {
			if !bytes.Contains(data, []byte(want)) {
				t.Errorf("svg lacks %s", want)
			}
		}
	}
}

func TestRunSimCellarPolicyUsesTheRealStore(t *testing.T) {
	if testing.Short() {
		t.Skip("writes to pebble")
	}
	var out bytes.Buffer
	args := []string{"-objects", "200", "-requests", "3000", "-size-median", "4KiB",
		"-policy", "cellar,lru", "-bytes", "4MiB", "-json"}
	if err := RunSim(context.Background(), args, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(&out)
	res := map[string]Result{}
	for dec.More() {
		var r Result
		if err := dec.Decode(&r); err != nil {
			t.Fatal(err)
		}
		res[r.Policy] = r
	}
	// 200 objects of 4 KiB fit in the budget many times over: both caches
	// miss each object about once.
	for _, p := range []string{"cellar", "lru"} {
		if r := res[p]; r.Requests != 3000 || r.Hits < 3000-2*200 {
			t.Errorf("%s: %d hits of %d requests, want at least %d", p, r.Hits, r.Requests, 3000-2*200)
		}
		if r := res[p]; r.TraceObjects == 0 || r.TraceObjects > 200 || r.TraceMaxHitRatio <= 0 || r.ElapsedSeconds <= 0 {
			t.Errorf("%s: trace objects %d, largest hit ratio %v, elapsed %v", p, r.TraceObjects, r.TraceMaxHitRatio, r.ElapsedSeconds)
		}
	}
	// The store reports what it holds: every object on disk, within the
	// budgets.
	rc := res["cellar"].Resident
	if rc == nil || rc.DiskObjects != res["cellar"].TraceObjects || rc.DiskBytes > rc.DiskBudget || rc.MemoryBytes > rc.MemoryBudget || rc.MemoryObjects == 0 {
		t.Errorf("cellar resident = %+v, want all %d objects on disk within the budgets", rc, res["cellar"].TraceObjects)
	}
	if res["lru"].Resident != nil {
		t.Errorf("lru reports resident counts")
	}
}

func TestRunSimGivesSizelessTracesAnObjectSize(t *testing.T) {
	var out bytes.Buffer
	args := []string{"-trace", "../testdata/traces/lirs-gli.trace.gz", "-object-size", "4KiB", "-bytes", "2000KiB", "-policy", "lru", "-json"}
	if err := RunSim(context.Background(), args, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	var r Result
	if err := json.NewDecoder(&out).Decode(&r); err != nil {
		t.Fatal(err)
	}
	// 500 objects of 4 KiB: the same hit ratio as LRU at 500 objects.
	if got := roundTo(r.HitRatio, 2); got != 0.95 || r.RequestBytes != 4096*r.Requests {
		t.Errorf("hit ratio %.2f%%, %d bytes for %d requests; want 0.95%% (LRU at 500 objects) and 4 KiB each", got, r.RequestBytes, r.Requests)
	}
	err := RunSim(context.Background(), []string{"-trace", "../testdata/traces/adaptsize-request.trace.xz", "-object-size", "4KiB", "-bytes", "4MiB"}, io.Discard, io.Discard)
	if !errors.Is(err, ErrUsage) {
		t.Errorf("-object-size on a trace with sizes: err = %v, want ErrUsage", err)
	}
}

func TestProgressLinesWhenNotATerminal(t *testing.T) {
	var buf bytes.Buffer
	now := time.Unix(0, 0)
	lines := newProgressLines(&buf, func() time.Time { return now }, 5*time.Second)
	lines("cellar 4MiB", 0, 1000)
	now = now.Add(4 * time.Second)
	lines("cellar 4MiB", 400, 1000)
	if buf.Len() != 0 {
		t.Fatalf("printed %q within the interval", buf.String())
	}
	now = now.Add(time.Second)
	lines("cellar 4MiB", 500, 1000)
	if want := "cellar 4MiB: 500 of 1000 requests (50%), 100 requests/s\n"; buf.String() != want {
		t.Fatalf("printed %q, want %q", buf.String(), want)
	}
	now = now.Add(time.Second)
	lines("cellar 4MiB", 1000, 1000)
	if !strings.HasSuffix(buf.String(), "1000 of 1000 requests (100%), 167 requests/s\n") {
		t.Errorf("the end of a run that printed is not reported: %q", buf.String())
	}
	buf.Reset()
	lines("lru 4MiB", 1000, 1000) // a short run prints nothing
	if buf.Len() != 0 {
		t.Errorf("a run shorter than the interval printed %q", buf.String())
	}
}

func TestRunSimReportsEveryBadFlag(t *testing.T) {
	err := RunSim(context.Background(), []string{"-policy", "lru,fifo", "-capacity", "10", "-bytes", "1MiB", "-plot", "x.gif"}, io.Discard, io.Discard)
	if !errors.Is(err, ErrUsage) {
		t.Fatalf("err = %v, want ErrUsage", err)
	}
	for _, want := range []string{`"fifo"`, "-capacity and -bytes", "x.gif"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %s", err, want)
		}
	}
	if err := RunSim(context.Background(), []string{"-policy", "cellar", "-capacity", "10", "-requests", "10"}, io.Discard, io.Discard); !errors.Is(err, ErrUsage) {
		t.Errorf("cellar with object capacity: err = %v, want ErrUsage", err)
	}
}

func TestParseBytesUnits(t *testing.T) {
	tests := map[string]int64{"1000": 1000, "64MiB": 64 << 20, "1.5GB": 1_500_000_000, "4k": 4096, "2 KiB": 2048, "7b": 7}
	for in, want := range tests {
		if got, err := ParseBytes(in); err != nil || got != want {
			t.Errorf("ParseBytes(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "MiB", "-1", "ten"} {
		if _, err := ParseBytes(bad); err == nil {
			t.Errorf("ParseBytes(%q) succeeded", bad)
		}
	}
}

func TestProgressBarAppearsOnlyAfterASecond(t *testing.T) {
	var buf bytes.Buffer
	now := time.Unix(0, 0)
	bar := newProgressBar(&buf, func() time.Time { return now })
	bar("lru 100", 10, 100)
	now = now.Add(500 * time.Millisecond)
	bar("lru 100", 50, 100)
	if buf.Len() != 0 {
		t.Fatalf("drew %q before a second passed", buf.String())
	}
	now = now.Add(600 * time.Millisecond)
	bar("lru 100", 60, 100)
	if !strings.Contains(buf.String(), " 60%") {
		t.Fatalf("no bar after a second: %q", buf.String())
	}
	buf.Reset()
	bar("lru 100", 100, 100)
	if buf.String() != "\r\033[K" {
		t.Errorf("end of run wrote %q, want the line cleared", buf.String())
	}
}

func TestCellarPolicyHitsAfterAFillAndCleansUp(t *testing.T) {
	dir := t.TempDir()
	c, err := NewCellar(context.Background(), CellarOptions{MemoryBytes: 1 << 20, DiskBytes: 4 << 20, MeanObjectSize: 4096, TempDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	got := []bool{c.Access(1, 5000), c.Access(1, 5000), c.Access(2, 70_000), c.Access(2, 70_000)}
	if want := []bool{false, true, false, true}; !slices.Equal(got, want) {
		t.Errorf("hits %v, want %v", got, want)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if left, _ := os.ReadDir(dir); len(left) != 0 {
		t.Errorf("Close left %d entries in the temp dir", len(left))
	}
}

// TestCellarPolicyEvictsBeforeTheNextRequest: the simulated store removes
// what its policy evicts within the request that filled past the target,
// so a replay never serves a victim that production's background loop
// would have removed by the next request (the replay runs far faster).
func TestCellarPolicyEvictsBeforeTheNextRequest(t *testing.T) {
	c, err := NewCellar(context.Background(), CellarOptions{MemoryBytes: -1, DiskBytes: 4 << 20, MeanObjectSize: 4096, TempDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var o store.Options
	o.EnsureDefaults()
	evicted := false
	for i := range 3000 {
		c.Access(uint64(i%1500), 4096)
		st := c.Stats()
		if target := int64(o.EvictTarget * float64(st.DiskObjectBudget)); st.DiskBytes > target {
			t.Fatalf("request %d: %d bytes charged after it, past the policy's %d", i, st.DiskBytes, target)
		}
		evicted = evicted || st.Evictions > 0
	}
	if !evicted {
		t.Fatal("no evictions: the test wants a full budget")
	}
}
