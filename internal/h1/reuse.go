package h1

import (
	"net/http"
	"net/url"
)

// perRequest is what a handler may keep of a request: the Request, its
// URL, context and header map, in one allocation per request (plus the
// map's), unless the handler released the previous request of the
// connection (ReleaseRequest): then the next request is read into it, the
// map cleared and filled again.
//
// Why it matters (docs/DESIGN.md, the tail of small hits): on one CPU each
// collection stops serving for several milliseconds, and these objects
// were nine tenths of the bytes a 1 KiB hit allocated, so they set how
// often the collector runs.
type perRequest struct {
	req    http.Request
	ctx    requestContext
	url    url.URL
	header http.Header
}

// perRequestVals is a perRequest with room for the header's value slices,
// allocated when the request has more fields than Host.
type perRequestVals struct {
	perRequest
	vals [12]string
}

// ReleaseRequest tells the engine that nothing of the request being
// served will be used once ServeHTTP returns: not the *http.Request, its
// URL, header map or values, nor its context (no goroutine started by the
// handler still holds them). The connection's next request is then read
// into the same memory instead of a new allocation. A handler that is not
// sure must not call it: a request kept after a release changes under its
// holder. Only the engine's ResponseWriter has the method; wrappers pass
// the call on.
func (w *response) ReleaseRequest() { w.c.released = true }

// perRequest returns the memory for a request with n header lines: the
// released one of the previous request when there is one that fits (its
// header map empty), else a new one; vals is room for the header's values
// (nil: none).
func (c *conn) perRequest(n int) (pr *perRequest, vals []string) {
	if pr, vals = c.spare, c.spareVals; pr != nil && (n <= 1 || vals != nil) {
		h := pr.header
		clear(h)
		*pr = perRequest{header: h}
		clear(vals)
	} else if n > 1 {
		pv := &perRequestVals{}
		pr, vals = &pv.perRequest, pv.vals[:]
		pr.header = make(http.Header, n)
	} else {
		pr, vals = &perRequest{header: make(http.Header, n)}, nil
	}
	c.spare, c.spareVals = nil, nil
	c.cur, c.curVals = pr, vals
	return pr, vals
}

// request makes pr's Request the connection's template with pr's context,
// for the handler.
func (c *conn) request(pr *perRequest) *http.Request {
	pr.ctx.Context = c.ctx
	pr.ctx.c = c
	c.req.ctx = &pr.ctx
	pr.req = *c.tmpl.WithContext(&pr.ctx) // inlined: its copy stays on the stack
	return &pr.req
}

// recycle keeps the request just served for the next one if its handler
// released it and nothing else can hold it: no body reader, no hijack, and
// nobody asked for its context's Done channel (a goroutine may wait on it).
func (c *conn) recycle() {
	released := c.released
	c.released = false
	pr := c.cur
	c.cur = nil
	if !released || pr == nil || c.resp.hijacked || c.req.body != nil {
		return
	}
	pr.ctx.mu.Lock()
	asked := pr.ctx.done != nil
	pr.ctx.mu.Unlock()
	if asked {
		return
	}
	c.spare, c.spareVals = pr, c.curVals
}
