// Package demo is the bundled demonstration origin that `make run` puts
// behind cellar: slow, cacheable, compressible pages, plus a few that show
// what a shared cache must not store. It is also the origin of the README's
// walkthrough.
package demo

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// Origin is the demo origin's handler. Delay is how long each page takes
// (default 300ms when zero through New); Hits counts requests served.
type Origin struct {
	Delay time.Duration
	Hits  atomic.Int64
	start time.Time
	mux   *http.ServeMux
}

// New returns a demo origin whose pages take delay to produce.
func New(delay time.Duration) *Origin {
	o := &Origin{Delay: delay, start: time.Now().UTC().Truncate(time.Second)}
	m := http.NewServeMux()
	m.HandleFunc("GET /{$}", o.index)
	m.HandleFunc("GET /page/{id}", o.page)
	m.HandleFunc("GET /api/items.json", o.items)
	m.HandleFunc("GET /private", o.private)
	m.HandleFunc("GET /nostore", o.nostore)
	m.HandleFunc("GET /hello", o.hello)
	m.HandleFunc("GET /big", o.big)
	o.mux = m
	return o
}

// ServeHTTP counts the request, waits Delay (or until the client leaves)
// and serves the page.
func (o *Origin) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	o.Hits.Add(1)
	t := time.NewTimer(o.Delay)
	select {
	case <-t.C:
	case <-r.Context().Done():
		t.Stop()
		return
	}
	w.Header().Set("X-Demo-Origin-Hits", strconv.FormatInt(o.Hits.Load(), 10))
	o.mux.ServeHTTP(w, r)
}

// Paths lists the URLs worth trying, with what each shows.
var Paths = []struct{ Path, What string }{
	{"/page/1", "an HTML page, public, max-age=60: a miss, then hits"},
	{"/api/items.json", "JSON, max-age=5, stale-while-revalidate=30, tagged"},
	{"/hello", "a small text with an ETag: try If-None-Match"},
	{"/big?mib=8", "a large body, streamed"},
	{"/private", "Cache-Control: private: never stored"},
	{"/nostore", "Cache-Control: no-store: never stored"},
}

func (o *Origin) index(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "public, max-age=60")
	fmt.Fprintf(w, "<!doctype html><title>cellar demo origin</title><h1>cellar demo origin</h1><p>Every page takes %v to make. Try:</p><ul>", o.Delay)
	for _, p := range Paths {
		fmt.Fprintf(w, "<li><a href=%q>%s</a>: %s</li>", p.Path, p.Path, p.What)
	}
	fmt.Fprint(w, "</ul>")
}

func (o *Origin) page(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "public, max-age=60")
	h.Set("Last-Modified", o.start.Format(http.TimeFormat))
	h.Set("ETag", strconv.Quote("page-"+id))
	h.Set("Surrogate-Key", "pages page-"+id)
	var b strings.Builder
	fmt.Fprintf(&b, "<!doctype html><title>page %s</title><h1>Page %s</h1>\n", id, id)
	for i := 0; i < 200; i++ {
		fmt.Fprintf(&b, "<p>Paragraph %d of page %s: a cache answers this from memory after the first request.</p>\n", i, id)
	}
	h.Set("Content-Length", strconv.Itoa(b.Len()))
	w.Write([]byte(b.String()))
}

func (o *Origin) items(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "max-age=5, stale-while-revalidate=30, stale-if-error=300")
	h.Set("Surrogate-Key", "api items")
	var b strings.Builder
	b.WriteString(`{"generated":"` + time.Now().UTC().Format(time.RFC3339Nano) + `","items":[`)
	for i := 0; i < 100; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"id":%d,"name":"item %d","price":%d.99}`, i, i, i)
	}
	b.WriteString("]}\n")
	w.Write([]byte(b.String()))
}

func (o *Origin) hello(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "max-age=30")
	w.Header().Set("ETag", `"hello-v1"`)
	fmt.Fprintln(w, "hello from the demo origin")
}

func (o *Origin) private(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "private, max-age=60")
	fmt.Fprintf(w, "private page made at %s\n", time.Now().UTC().Format(time.RFC3339Nano))
}

func (o *Origin) nostore(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	fmt.Fprintf(w, "no-store page made at %s\n", time.Now().UTC().Format(time.RFC3339Nano))
}

// big streams ?mib= MiB (default 8, at most 1024) of text.
func (o *Origin) big(w http.ResponseWriter, r *http.Request) {
	mib, err := strconv.Atoi(r.URL.Query().Get("mib"))
	if err != nil || mib <= 0 {
		mib = 8
	}
	mib = min(mib, 1024)
	w.Header().Set("Content-Type", "text/plain")
	w.Header().Set("Cache-Control", "public, max-age=300")
	w.Header().Set("Content-Length", strconv.Itoa(mib<<20))
	// Each line is exactly 1 KiB, so the body matches Content-Length.
	line := []byte(strings.Repeat("cellar streams large bodies in chunks. ", 27)[:1023] + "\n")
	for i := 0; i < mib<<10; i++ {
		if _, err := w.Write(line); err != nil {
			return
		}
	}
}
