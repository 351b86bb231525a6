package proxy

import (
	"bufio"
	"log/slog"
	"net"
	"net/http"
	"time"
)

// recorder notes the status and size of a response for the access log.
type recorder struct {
	http.ResponseWriter
	start  time.Time
	status int
	bytes  int64
}

func (r *recorder) WriteHeader(code int) {
	if r.status == 0 && code >= 200 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(p []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	n, err := r.ResponseWriter.Write(p)
	r.bytes += int64(n)
	return n, err
}

// Unwrap lets http.ResponseController reach the real writer (Flush).
func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// Hijack notes a switch of protocols (101, RFC 9110 §15.2.2): the reverse
// proxy hijacks the client connection only once the origin agreed to it.
func (r *recorder) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, brw, err := http.NewResponseController(r.ResponseWriter).Hijack()
	if err == nil && r.status == 0 {
		r.status = http.StatusSwitchingProtocols
	}
	return c, brw, err
}

// logAccess writes one access line.
func (s *Server) logAccess(rec *recorder, r *http.Request) {
	s.log.LogAttrs(r.Context(), slog.LevelInfo, "access",
		slog.String("method", r.Method),
		slog.String("host", r.Host),
		slog.String("uri", r.RequestURI),
		slog.Int("status", rec.status),
		slog.Int64("bytes", rec.bytes),
		slog.String("cache", rec.Header().Get("Cache-Status")),
		slog.Duration("duration", s.now().Sub(rec.start)),
		slog.String("remote", r.RemoteAddr),
	)
}
