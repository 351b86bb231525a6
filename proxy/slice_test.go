package proxy

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cellar-cache/cellar/store"
)

// patterned is a large representation that is never held in memory: byte
// i is a function of i and seed.
type patterned struct {
	size, off int64
	seed      byte
}

func patternByte(i int64, seed byte) byte { return byte(i*31+i>>12) ^ seed }

func (p *patterned) Read(b []byte) (int, error) {
	if p.off >= p.size {
		return 0, io.EOF
	}
	n := int(min(int64(len(b)), p.size-p.off))
	for i := range n {
		b[i] = patternByte(p.off+int64(i), p.seed)
	}
	p.off += int64(n)
	return n, nil
}

func (p *patterned) Seek(off int64, whence int) (int64, error) {
	switch whence {
	case io.SeekStart:
	case io.SeekCurrent:
		off += p.off
	case io.SeekEnd:
		off += p.size
	}
	if off < 0 {
		return 0, errors.New("negative seek")
	}
	p.off = off
	return off, nil
}

// rangeOrigin serves a patterned representation with Range support and
// counts the body bytes it sends and the Range requests it gets.
type rangeOrigin struct {
	mu     sync.Mutex // protects size, seed, etag
	size   int64
	seed   byte
	etag   string
	sent   atomic.Int64
	ranges atomic.Int64
}

func (o *rangeOrigin) set(size int64, seed byte, etag string) {
	o.mu.Lock()
	o.size, o.seed, o.etag = size, seed, etag
	o.mu.Unlock()
}

func (o *rangeOrigin) handler(w http.ResponseWriter, r *http.Request) {
	o.mu.Lock()
	size, seed, etag := o.size, o.seed, o.etag
	o.mu.Unlock()
	if r.Header.Get("Range") != "" {
		o.ranges.Add(1)
	}
	w.Header().Set("Cache-Control", "max-age=3600")
	w.Header().Set("ETag", etag)
	w.Header().Set("Content-Type", "video/mp4")
	http.ServeContent(sentCounter{w, &o.sent}, r, "", time.Time{}, &patterned{size: size, seed: seed})
}

type sentCounter struct {
	http.ResponseWriter
	n *atomic.Int64
}

func (c sentCounter) Write(b []byte) (int, error) {
	n, err := c.ResponseWriter.Write(b)
	c.n.Add(int64(n))
	return n, err
}

// want checks body against the pattern from offset off.
func wantPattern(t *testing.T, body string, off int64, seed byte) {
	t.Helper()
	for i := 0; i < len(body); i++ {
		if body[i] != patternByte(off+int64(i), seed) {
			t.Fatalf("byte %d (offset %d) = %d, want %d", i, off+int64(i), body[i], patternByte(off+int64(i), seed))
		}
	}
}

func newSliceRig(t *testing.T, o *rangeOrigin) *rig {
	return newRig(t, o.handler, withProxyOptions(func(p *Options) {
		p.SliceSize, p.SliceMin = 1<<20, 8<<20
	}), withStoreOptions(func(s *store.Options) { s.DiskBytes = 128 << 20 }))
}

const mib = 1 << 20

// The demonstration: a 256 MiB object, a 1 MiB range from its
// middle, and what the origin sent.
func TestSliceRangeFetchesOnlyTheSlicesItNeeds(t *testing.T) {
	o := &rangeOrigin{}
	o.set(256*mib, 7, `"v1"`)
	r := newSliceRig(t, o)

	get := func(from, to int64) (*http.Response, string) {
		t.Helper()
		resp, body := r.sget("/video.mp4", fmt.Sprintf("Range: bytes=%d-%d", from, to))
		if resp.StatusCode != 206 || int64(len(body)) != to-from+1 {
			t.Fatalf("Range %d-%d: %d, %d bytes", from, to, resp.StatusCode, len(body))
		}
		if cr := resp.Header.Get("Content-Range"); cr != fmt.Sprintf("bytes %d-%d/%d", from, to, 256*mib) {
			t.Errorf("Content-Range %q", cr)
		}
		wantPattern(t, body, from, 7)
		return resp, body
	}
	resp, _ := get(128*mib, 129*mib-1)
	sent := o.sent.Load()
	t.Logf("256 MiB object, 1 MiB range from its middle: the origin sent %d bytes (%.2f MiB) in %d range requests; Cache-Status %s",
		sent, float64(sent)/mib, o.ranges.Load(), resp.Header.Get("Cache-Status"))
	if sent != mib {
		t.Errorf("the origin sent %d bytes, want one 1 MiB slice", sent)
	}
	// Again: from the stored slice.
	resp, _ = get(128*mib, 129*mib-1)
	if o.sent.Load() != sent || !isHit(resp.Header.Get("Cache-Status")) {
		t.Errorf("the second request sent %d more bytes (%s)", o.sent.Load()-sent, resp.Header.Get("Cache-Status"))
	}
	// A misaligned range over two slices fetches only the one missing.
	get(128*mib+mib/2, 129*mib+mib/2-1)
	if got := o.sent.Load() - sent; got != mib {
		t.Errorf("a range over a stored and a missing slice fetched %d bytes, want 1 MiB", got)
	}
	// A suffix range.
	get(256*mib-10, 256*mib-1)
	if got := o.sent.Load() - sent; got != 2*mib {
		t.Errorf("after the suffix range the origin sent %d bytes, want 2 MiB", got)
	}
	// A purge of the URL removes every slice.
	if n := r.purgeURL("http://cellar.test/video.mp4"); n != 4 {
		t.Errorf("purge removed %d objects, want the index and 3 slices", n)
	}
}

func TestSlicedObjectStreamsSliceBySlice(t *testing.T) {
	o := &rangeOrigin{}
	o.set(12*mib+5, 3, `"v1"`)
	r := newSliceRig(t, o)
	r.sget("/big", "Range: bytes=0-9")
	resp, body := r.sget("/big")
	if resp.StatusCode != 200 || int64(len(body)) != 12*mib+5 || resp.Header.Get("Content-Length") != fmt.Sprint(12*mib+5) {
		t.Fatalf("GET of a sliced object: %d, %d bytes, Content-Length %q", resp.StatusCode, len(body), resp.Header.Get("Content-Length"))
	}
	wantPattern(t, body, 0, 3)
	if sent := o.sent.Load(); sent != 12*mib+5 {
		t.Errorf("the origin sent %d bytes, want each byte once", sent)
	}
	resp, body = r.sget("/big")
	if !isHit(resp.Header.Get("Cache-Status")) || int64(len(body)) != 12*mib+5 || o.sent.Load() != 12*mib+5 {
		t.Errorf("second GET: %s, %d bytes, origin sent %d", resp.Header.Get("Cache-Status"), len(body), o.sent.Load())
	}
	if resp.Header.Get("Etag") != `"v1"` || resp.Header.Get("Content-Range") != "" {
		t.Errorf("header of the whole response: %v", resp.Header)
	}
	// HEAD of a sliced object is answered from its index.
	resp, _ = r.send(http.MethodHead, "", "/big")
	if resp.StatusCode != 200 || resp.Header.Get("Content-Length") != fmt.Sprint(12*mib+5) || o.sent.Load() != 12*mib+5 {
		t.Errorf("HEAD: %d, Content-Length %q, origin sent %d", resp.StatusCode, resp.Header.Get("Content-Length"), o.sent.Load())
	}
}

func TestSliceWithAnotherValidatorPurgesTheObject(t *testing.T) {
	o := &rangeOrigin{}
	o.set(10*mib, 1, `"v1"`)
	r := newSliceRig(t, o)
	r.sget("/v", "Range: bytes=0-99")
	o.set(10*mib, 2, `"v2"`) // the representation changes at the origin
	_, body := r.sget("/v", fmt.Sprintf("Range: bytes=%d-%d", 5*mib, 5*mib+99))
	wantPattern(t, body, 5*mib, 2)
	// Slice 0 of v1 was purged with the old index: it is fetched again.
	before := o.sent.Load()
	resp, body := r.sget("/v", "Range: bytes=0-99")
	wantPattern(t, body, 0, 2)
	if o.sent.Load() == before {
		t.Errorf("slice 0 of the old representation was served (%s)", resp.Header.Get("Cache-Status"))
	}
}

func TestSmallObjectsAndOriginsWithoutRangesAreNotSliced(t *testing.T) {
	o := &rangeOrigin{}
	o.set(2*mib, 4, `"v1"`) // below SliceMin
	r := newSliceRig(t, o)
	resp, body := r.sget("/small", "Range: bytes=10-19")
	if resp.StatusCode != 206 || len(body) != 10 {
		t.Fatalf("small object range: %d %d bytes", resp.StatusCode, len(body))
	}
	wantPattern(t, body, 10, 4)
	resp, _ = r.sget("/small", "Range: bytes=100-199")
	if !isHit(resp.Header.Get("Cache-Status")) {
		t.Errorf("the small object was not stored whole: %s", resp.Header.Get("Cache-Status"))
	}
	// An origin that answers 200 to a Range request.
	r.origin.setHandler(func(w http.ResponseWriter, req *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		w.Header().Set("Content-Length", fmt.Sprint(9*mib))
		io.Copy(w, &patterned{size: 9 * mib, seed: 5})
	})
	resp, body = r.sget("/norange", "Range: bytes=0-3")
	if resp.StatusCode != 206 || !bytes.Equal([]byte(body), []byte{patternByte(0, 5), patternByte(1, 5), patternByte(2, 5), patternByte(3, 5)}) {
		t.Errorf("origin without ranges: %d, %d bytes", resp.StatusCode, len(body))
	}
	if strings.Contains(resp.Header.Get("Cache-Status"), "sliced") {
		t.Errorf("sliced anyway: %s", resp.Header.Get("Cache-Status"))
	}
}
