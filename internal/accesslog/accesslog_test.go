package accesslog

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

func entry() *Entry {
	return &Entry{
		Time:       time.Date(2026, 12, 1, 11, 8, 50, 123e6, time.UTC),
		Duration:   1234567 * time.Nanosecond,
		Remote:     netip.MustParseAddr("192.0.2.7"),
		Method:     "GET",
		Host:       "example.com",
		URI:        `/a b?q="x"`,
		Proto:      "HTTP/1.1",
		Status:     200,
		Bytes:      1024,
		Cache:      "cellar; hit; ttl=3599",
		UserAgent:  "curl/8.5 \xff",
		Origin:     "127.0.0.1:9000",
		OriginTime: 12 * time.Millisecond,
		RequestID:  "abc-1",
	}
}

func TestFormats(t *testing.T) {
	e := entry()
	text := string(Text.Append(nil, e))
	for _, want := range []string{
		"time=2026-12-01T11:08:50.123Z level=INFO msg=access method=GET host=example.com",
		`uri="/a b?q=\"x\"" proto=HTTP/1.1 status=200 bytes=1024 cache="cellar; hit; ttl=3599" duration_ms=1.234`,
		`remote=192.0.2.7 user_agent="curl/8.5 \xff" referer="" origin=127.0.0.1:9000 origin_ms=12.000 request_id=abc-1` + "\n",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("text line\n%s lacks\n%s", text, want)
		}
	}

	var got map[string]any
	line := JSON.Append(nil, e)
	if err := json.Unmarshal(line, &got); err != nil {
		t.Fatalf("json line %s: %v", line, err)
	}
	for k, v := range map[string]any{
		"uri": `/a b?q="x"`, "status": 200.0, "bytes": 1024.0, "cache": "cellar; hit; ttl=3599",
		"duration_ms": 1.234, "remote": "192.0.2.7", "user_agent": "curl/8.5 \ufffd", "referer": "",
		"origin": "127.0.0.1:9000", "origin_ms": 12.0, "request_id": "abc-1", "proto": "HTTP/1.1",
		"time": "2026-12-01T11:08:50.123Z",
	} {
		if got[k] != v {
			t.Errorf("json %s = %#v, want %#v", k, got[k], v)
		}
	}

	comb := string(Combined.Append(nil, e))
	want := `192.0.2.7 - - [01/Dec/2026:11:08:50 +0000] "GET /a b?q=\x22x\x22 HTTP/1.1" 200 1024 "-" "curl/8.5 \xFF"` + "\n"
	if comb != want {
		t.Errorf("combined line\n%q, want\n%q", comb, want)
	}
}

func TestMadeIDs(t *testing.T) {
	e := entry()
	e.RequestID, e.Seq = "", 0x2a
	id := ID(0x2a)
	if !ValidID(id) || !strings.HasSuffix(id, "-2a") {
		t.Fatalf("ID(42) = %q", id)
	}
	if line := string(Text.Append(nil, e)); !strings.HasSuffix(line, " request_id="+id+"\n") {
		t.Errorf("text line %q does not end with the made id %q", line, id)
	}
	if ID(1) == ID(2) {
		t.Error("ids of two sequence numbers are equal")
	}
	for _, s := range []string{"", "a b", `a"b`, strings.Repeat("x", 129), "é"} {
		if ValidID(s) {
			t.Errorf("ValidID(%q) = true", s)
		}
	}
}

func TestAppendDoesNotAllocate(t *testing.T) {
	e := entry()
	buf := make([]byte, 0, 1024)
	for _, f := range []Format{Text, JSON, Combined} {
		if n := testing.AllocsPerRun(100, func() { buf = f.Append(buf[:0], e) }); n != 0 {
			t.Errorf("%s: %v allocations per line", f, n)
		}
	}
}

func TestParseFormat(t *testing.T) {
	for _, f := range []Format{Text, JSON, Combined} {
		if g, err := ParseFormat(f.String()); err != nil || g != f {
			t.Errorf("ParseFormat(%q) = %v, %v", f, g, err)
		}
	}
	if _, err := ParseFormat("xml"); err == nil || !strings.Contains(err.Error(), "text, json or combined") {
		t.Errorf("ParseFormat(xml) error = %v", err)
	}
}

// lockedBuffer is a bytes.Buffer safe for the writer's goroutine.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func TestCloseWritesEveryLine(t *testing.T) {
	var out lockedBuffer
	w := New(&out, Options{Buffer: 1 << 20, Interval: time.Hour})
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 1000 {
				w.Write([]byte(strings.Repeat(string(rune('a'+g)), i%50+1) + "\n"))
			}
		})
	}
	wg.Wait()
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(out.String(), "\n"); n != 8000 {
		t.Errorf("%d lines written, want 8000 (dropped %d)", n, w.Dropped())
	}
	w.Write([]byte("late\n"))
	if strings.Contains(out.String(), "late") || w.Dropped() != 1 {
		t.Errorf("a write after Close was not dropped (dropped %d)", w.Dropped())
	}
}

func TestWritesWithinTheInterval(t *testing.T) {
	var out lockedBuffer
	w := New(&out, Options{Interval: time.Millisecond})
	defer w.Close()
	w.Write([]byte("one\n"))
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(out.String(), "one\n") {
		if time.Now().After(deadline) {
			t.Fatal("the line was not written without Close")
		}
		time.Sleep(time.Millisecond)
	}
}

// blockedWriter stalls until released, as a full disk or a stuck pipe.
type blockedWriter struct {
	release chan struct{}
	lockedBuffer
}

func (b *blockedWriter) Write(p []byte) (int, error) {
	<-b.release
	return b.lockedBuffer.Write(p)
}

func TestFullBufferDropsInsteadOfBlocking(t *testing.T) {
	out := &blockedWriter{release: make(chan struct{})}
	w := New(out, Options{Buffer: 100, Interval: time.Millisecond})
	line := []byte(strings.Repeat("x", 9) + "\n")
	// The output is stuck: at most two buffers' worth are held (the
	// flusher's batch and the buffer), the rest is dropped, and no Write
	// waits.
	for range 100 {
		w.Write(line)
	}
	if w.Dropped() < 100-20 {
		t.Errorf("dropped %d of 100 writes with a stuck output and room for at most 20", w.Dropped())
	}
	close(out.release)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if got, want := strings.Count(out.String(), "\n"), 100-int(w.Dropped()); got != want {
		t.Errorf("%d lines written, want the %d accepted", got, want)
	}
}

func TestReopenAfterRotation(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "access.log")
	w, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte("before\n"))
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	if err := w.Reopen(); err != nil {
		t.Fatal(err)
	}
	w.Write([]byte("after\n"))
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(path + ".1"); string(b) != "before\n" {
		t.Errorf("rotated file = %q, want the line before rotation", b)
	}
	if b, _ := os.ReadFile(path); string(b) != "after\n" {
		t.Errorf("new file = %q, want the line after rotation", b)
	}
}

func TestOpenFailsClearly(t *testing.T) {
	_, err := Open(filepath.Join(t.TempDir(), "no", "such", "dir", "access.log"), Options{})
	if err == nil || !strings.Contains(err.Error(), "access.log") {
		t.Errorf("Open in a missing directory: %v", err)
	}
}

// TestAppendTimeMatchesTheLayout checks the cached second against
// time.Format across second, day and year boundaries, out of order, in
// other zones and in years of other widths.
func TestAppendTimeMatchesTheLayout(t *testing.T) {
	base := time.Date(2026, 12, 31, 23, 59, 58, 0, time.UTC)
	east := time.FixedZone("east", 5*3600+1800)
	for i := range 4000 {
		tm := base.Add(time.Duration(i*i%7919) * 997 * time.Microsecond)
		if i%3 == 0 {
			tm = tm.In(east)
		}
		if got, want := string(appendTime(nil, tm)), tm.UTC().Format("2006-01-02T15:04:05.000Z"); got != want {
			t.Fatalf("appendTime(%v) = %s, want %s", tm, got, want)
		}
	}
	for _, tm := range []time.Time{time.Date(12345, 1, 2, 3, 4, 5, 6e6, time.UTC), time.Date(-1, 1, 2, 3, 4, 5, 0, time.UTC), {}} {
		if got, want := string(appendTime(nil, tm)), tm.UTC().Format("2006-01-02T15:04:05.000Z"); got != want {
			t.Errorf("appendTime(%v) = %s, want %s", tm, got, want)
		}
	}
}

// writeLog records each Write to the output apart.
type writeLog struct {
	mu     sync.Mutex
	writes []string
}

func (l *writeLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.writes = append(l.writes, string(p))
	return len(p), nil
}

// TestLinesStayWholeAcrossChunks writes lines shorter and longer than a
// chunk: every line comes out whole and in order, and a write to the output ends at the end of
// a line unless the line was longer than a chunk.
func TestLinesStayWholeAcrossChunks(t *testing.T) {
	var out writeLog
	w := New(&out, Options{Buffer: 4000, Interval: time.Hour}) // chunks of 2000 bytes
	if w.chunk != 2000 || w.chunks != 2 {
		t.Fatalf("chunks of %d bytes × %d, want 2000 × 2", w.chunk, w.chunks)
	}
	for i := range 300 {
		for g := range 4 {
			n := 1 + (i*37+g*101)%900
			if i%50 == 7 {
				n = 2500 // longer than a chunk
			}
			line := []byte(fmt.Sprintf("%c%04d %s\n", 'a'+g, i, strings.Repeat(string(rune('a'+g)), n)))
			// The background flusher may lag: a dropped line is written
			// again after a Flush.
			for {
				dropped := w.Dropped()
				w.Write(line)
				if w.Dropped() == dropped {
					break
				}
				w.Flush()
			}
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	next := map[byte]int{}
	for _, line := range strings.SplitAfter(strings.Join(out.writes, ""), "\n") {
		if line == "" {
			continue
		}
		g := line[0]
		var i int
		if _, err := fmt.Sscanf(line[1:5], "%04d", &i); err != nil || i != next[g] {
			t.Fatalf("line %q: want number %d of %c", line[:min(len(line), 12)], next[g], g)
		}
		if body := strings.TrimSuffix(line[6:], "\n"); strings.Trim(body, string(g)) != "" || !strings.HasSuffix(line, "\n") {
			t.Fatalf("line %c%d is not whole: %q", g, i, line[:min(len(line), 40)])
		}
		next[g]++
	}
	for g := byte('a'); g < 'a'+4; g++ {
		if next[g] != 300 {
			t.Errorf("%d lines of %c, want 300", next[g], g)
		}
	}
	for _, s := range out.writes {
		if !strings.HasSuffix(s, "\n") && len(s) != w.chunk {
			t.Errorf("a write of %d bytes ends inside a line shorter than a chunk", len(s))
		}
	}
	if w.made > w.chunks {
		t.Errorf("%d chunks made, bound %d", w.made, w.chunks)
	}
}

// TestWrittenChunksAreReused: once the chunks are made, writing and
// flushing lines allocates nothing, and the chunk filled next is the one
// written last (still in the CPU's cache). The test flushes itself (no
// background writer).
func TestWrittenChunksAreReused(t *testing.T) {
	w := newWriter(io.Discard, Options{})
	line := []byte(strings.Repeat("x", 299) + "\n")
	if n := testing.AllocsPerRun(100, func() {
		for range 1000 {
			w.Write(line)
		}
		w.Flush()
	}); n != 0 {
		t.Errorf("%.1f allocations per 1000 lines and a flush", n)
	}
	if w.made > 6 {
		t.Errorf("%d chunks made for 300 KB written in flushes of 300 KB, want at most 6", w.made)
	}
	w.Write(line)
	w.Flush()
	last := &w.free[len(w.free)-1][:1][0]
	w.Write(line)
	if &w.cur[0] != last {
		t.Error("the next line does not go to the chunk written last")
	}
}

// TestWriteEntryWritesWhatAppendFormats formats entries in place, some
// longer than the room kept for a line and some across chunk ends, in
// every format: the output is what Append gives, line for line, and a
// line of usual length allocates nothing.
func TestWriteEntryWritesWhatAppendFormats(t *testing.T) {
	for _, f := range []Format{Text, JSON, Combined} {
		var out writeLog
		w := New(&out, Options{Interval: time.Hour})
		var want strings.Builder
		for i := range 2000 {
			e := entry()
			e.Seq, e.RequestID = uint64(i), ""
			e.URI = "/" + strings.Repeat("u", i%300)
			if i%400 == 3 {
				e.URI = "/" + strings.Repeat("l", 5000) // longer than lineRoom
			}
			want.Write(f.Append(nil, e))
			w.WriteEntry(f, e)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		if got := strings.Join(out.writes, ""); got != want.String() {
			t.Errorf("%v: WriteEntry wrote %d bytes that differ from Append's %d", f, len(got), want.Len())
		}
		if w.Dropped() != 0 {
			t.Errorf("%v: %d lines dropped", f, w.Dropped())
		}
	}
	w := newWriter(io.Discard, Options{})
	e := entry()
	if n := testing.AllocsPerRun(1000, func() {
		w.WriteEntry(Text, e)
		if w.made == w.chunks && len(w.free) == 0 {
			w.Flush()
		}
	}); n != 0 {
		t.Errorf("%.2f allocations per WriteEntry", n)
	}
}

// logfmtReference is appendLogfmt's rule written out byte by byte.
func logfmtReference(s string) string {
	bare, plain := s != "", true
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < ' ' || c > '~' || c == '"' || c == '\\' {
			plain = false
		}
		if c == ' ' || c == '=' {
			bare = false
		}
	}
	switch {
	case bare && plain:
		return s
	case plain:
		return `"` + s + `"`
	}
	return strconv.Quote(s)
}

func TestLogfmtValues(t *testing.T) {
	values := []string{"", "GET", "a b", "k=v", `say "hi"`, `a\b`, "tab\there", "caf\xc3\xa9", "\xff", "~", "cellar; hit; ttl=3599"}
	for c := range 256 {
		values = append(values, string([]byte{byte(c)}), "x"+string([]byte{byte(c)})+"y")
	}
	for _, v := range values {
		if got, want := string(appendLogfmt(nil, v)), logfmtReference(v); got != want {
			t.Errorf("appendLogfmt(%q) = %s, want %s", v, got, want)
		}
	}
}

func TestNumbersAsStrconvWritesThem(t *testing.T) {
	for _, v := range []uint64{0, 1, 9, 10, 15, 16, 255, 256, 0xabcdef, 1<<32 - 1, 1 << 32, 1<<64 - 1} {
		if got, want := string(appendHex(nil, v)), strconv.FormatUint(v, 16); got != want {
			t.Errorf("appendHex(%d) = %s, want %s", v, got, want)
		}
	}
	for _, code := range []int{0, 1, 99, 100, 200, 304, 599, 999, 1000, -1} {
		if got, want := string(appendStatus(nil, code)), strconv.Itoa(code); got != want {
			t.Errorf("appendStatus(%d) = %s, want %s", code, got, want)
		}
	}
}
