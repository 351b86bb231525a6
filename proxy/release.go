package proxy

import "net/http"

// requestReleaser is a ResponseWriter that can tell the server engine that
// the request it serves will not be used once the handler returns
// (h1's ReleaseRequest: the engine then reads the connection's next
// request into the same memory, so a hit allocates less and the collector
// runs less often; docs/DESIGN.md, the tail of small hits). The wrappers
// around the engine's writer pass the call on.
type requestReleaser interface {
	ReleaseRequest()
}

// releaseRequest releases r's memory to w's engine when w can take it.
// Called where a hit has been answered from memory: nothing of the request
// is kept past the handler there (a background revalidation clones it; a
// fill or a waiting follower asks for the context's Done channel, which
// makes h1 keep the request anyway).
func releaseRequest(w http.ResponseWriter) {
	if rr, ok := w.(requestReleaser); ok {
		rr.ReleaseRequest()
	}
}

// ReleaseRequest passes the release on (release.go).
func (r *recorder) ReleaseRequest() { releaseRequest(r.ResponseWriter) }

// ReleaseRequest passes the release on (release.go).
func (w *statusWriter) ReleaseRequest() { releaseRequest(w.ResponseWriter) }

// ReleaseRequest passes the release on (release.go).
func (w *headerWriter) ReleaseRequest() { releaseRequest(w.ResponseWriter) }
