package dashboard

import (
	"bytes"
	"cmp"
	"hash/maphash"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Tracker keeps what the dashboard shows beyond the metrics: the most
// requested URLs (approximately, in bounded memory), and the last errors
// and purges. Its methods are safe for concurrent use.
type Tracker struct {
	sample atomic.Uint64 // requests seen, for sampling the top URLs

	mu      sync.Mutex           // protects the fields below
	seed    maphash.Seed         // of the hashes that index top
	top     map[uint64]*urlCount // the summary's URLs, by the hash of the URL
	least   []*urlCount          // the same, a min-heap by count
	errors  ring[Event]
	purges  ring[Event]
	maxURLs int
}

// maxKeptURL is the longest URL an entry of the summary holds in its own
// buffer: a URL that takes the place of another (a hot set larger than
// the summary churns through it) is copied there, allocating nothing. A
// longer URL is allocated each time it enters.
const maxKeptURL = 256

// urlCount is a URL's count in the space-saving summary: count is at most
// over by err. at is its index in Tracker.least.
type urlCount struct {
	hash       uint64 // of url, its key in Tracker.top
	url        []byte // in buf, unless longer
	count, err uint64
	at         int
	// buf is apart, so that the heap's walks over counts touch one cache
	// line per entry.
	buf *[maxKeptURL]byte
}

// set makes c the entry of URL u, of hash h.
func (c *urlCount) set(u []byte, h uint64) {
	c.hash = h
	if len(u) > maxKeptURL {
		c.url = bytes.Clone(u)
		return
	}
	if c.buf == nil {
		c.buf = new([maxKeptURL]byte)
	}
	c.url = append(c.buf[:0], u...)
}

// Event is one recent error or purge.
type Event struct {
	Time   time.Time `json:"time"`
	Method string    `json:"method,omitempty"`
	URL    string    `json:"url"`
	Status int       `json:"status"`
	Detail string    `json:"detail,omitempty"`
}

// URLCount is one entry of the top URLs.
type URLCount struct {
	URL      string `json:"url"`
	Requests uint64 `json:"requests"`
}

// topSample is the sampling rate of the top URLs: one request in
// topSample is counted (as topSample), so that most requests take no
// lock.
const topSample = 4

// NewTracker returns a Tracker keeping the top URLs among up to maxURLs
// candidates and the last n errors and purges.
func NewTracker(maxURLs, n int) *Tracker {
	return &Tracker{seed: maphash.MakeSeed(), top: map[uint64]*urlCount{}, errors: newRing[Event](n), purges: newRing[Event](n), maxURLs: maxURLs}
}

// Request notes a proxied request and its status: its URL for the top
// URLs (sampled), and the request as a recent error when the status is a
// 5xx. detail is what the response's Cache-Status said.
func (t *Tracker) Request(r *http.Request, status int, detail string) {
	sampled := t.sample.Add(1)%topSample == 0
	if !sampled && status < 500 {
		return
	}
	var buf [256]byte
	u := append(append(buf[:0], r.Host...), r.URL.Path...)
	t.mu.Lock()
	defer t.mu.Unlock()
	if sampled {
		t.count(u)
	}
	if status >= 500 {
		t.errors.add(Event{Time: time.Now().UTC(), Method: r.Method, URL: string(u), Status: status, Detail: detail})
	}
}

// count adds topSample to u's count (space-saving: when the summary is
// full, the least counted URL gives its place and its count to u). It
// hashes u once, takes O(log maxURLs) and allocates only for an entry
// new to the summary (or a URL longer than maxKeptURL). Call with t.mu
// held.
func (t *Tracker) count(u []byte) {
	h := maphash.Bytes(t.seed, u)
	if c, ok := t.top[h]; ok {
		if !bytes.Equal(c.url, u) {
			return // two URLs of one 64-bit hash: the one held keeps its place
		}
		c.count += topSample
		t.down(c.at)
		return
	}
	if len(t.least) < t.maxURLs {
		c := &urlCount{count: topSample, at: len(t.least)}
		c.set(u, h)
		t.top[h] = c
		t.least = append(t.least, c)
		t.up(c.at)
		return
	}
	if len(t.least) == 0 {
		return
	}
	c := t.least[0]
	delete(t.top, c.hash)
	c.set(u, h)
	c.err = c.count
	c.count += topSample
	t.top[h] = c
	t.down(0)
}

// up and down restore the heap order of t.least after the count at i
// fell or rose.
func (t *Tracker) up(i int) {
	for i > 0 {
		p := (i - 1) / 2
		if t.least[p].count <= t.least[i].count {
			return
		}
		t.swap(i, p)
		i = p
	}
}

func (t *Tracker) down(i int) {
	for {
		m := i
		if l := 2*i + 1; l < len(t.least) && t.least[l].count < t.least[m].count {
			m = l
		}
		if r := 2*i + 2; r < len(t.least) && t.least[r].count < t.least[m].count {
			m = r
		}
		if m == i {
			return
		}
		t.swap(i, m)
		i = m
	}
}

func (t *Tracker) swap(i, j int) {
	t.least[i], t.least[j] = t.least[j], t.least[i]
	t.least[i].at, t.least[j].at = i, j
}

// Purge notes a purge request to the admin API.
func (t *Tracker) Purge(kind string, status int, detail string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.purges.add(Event{Time: time.Now().UTC(), URL: kind, Status: status, Detail: detail})
}

// Top returns the n most requested URLs, most first.
func (t *Tracker) Top(n int) []URLCount {
	t.mu.Lock()
	out := make([]URLCount, 0, len(t.top))
	for _, c := range t.top {
		out = append(out, URLCount{URL: string(c.url), Requests: c.count})
	}
	t.mu.Unlock()
	slices.SortFunc(out, func(a, b URLCount) int {
		return cmp.Or(cmp.Compare(b.Requests, a.Requests), strings.Compare(a.URL, b.URL))
	})
	return out[:min(n, len(out))]
}

// Recent returns the last errors and purges, newest first.
func (t *Tracker) Recent() (errors, purges []Event) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.errors.newestFirst(), t.purges.newestFirst()
}

// ring keeps the last len(buf) values added.
type ring[T any] struct {
	buf  []T
	next int
	full bool
}

func newRing[T any](n int) ring[T] { return ring[T]{buf: make([]T, n)} }

func (r *ring[T]) add(v T) {
	if len(r.buf) == 0 {
		return
	}
	r.buf[r.next] = v
	r.next = (r.next + 1) % len(r.buf)
	r.full = r.full || r.next == 0
}

func (r *ring[T]) newestFirst() []T {
	n := r.next
	if r.full {
		n = len(r.buf)
	}
	out := make([]T, 0, n)
	for i := range n {
		out = append(out, r.buf[(r.next-1-i+len(r.buf))%len(r.buf)])
	}
	return out
}
