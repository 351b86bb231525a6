package h1

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"
)

// pipeConn is a connection whose client sent in and then closed its side;
// what the server writes is kept.
type pipeConn struct {
	in  *bytes.Reader
	out bytes.Buffer
}

func (p *pipeConn) Read(b []byte) (int, error)         { return p.in.Read(b) }
func (p *pipeConn) Write(b []byte) (int, error)        { return p.out.Write(b) }
func (p *pipeConn) Close() error                       { return nil }
func (p *pipeConn) LocalAddr() net.Addr                { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 80} }
func (p *pipeConn) RemoteAddr() net.Addr               { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 4000} }
func (p *pipeConn) SetDeadline(t time.Time) error      { return nil }
func (p *pipeConn) SetReadDeadline(t time.Time) error  { return nil }
func (p *pipeConn) SetWriteDeadline(t time.Time) error { return nil }

// serveBytes serves one connection that sent in, synchronously, and
// returns the requests the handler saw and the answer.
func serveBytes(in []byte) (reqs []*http.Request, out string) {
	cfg := &http.Server{MaxHeaderBytes: 2048}
	cfg.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		reqs = append(reqs, r)
		io.WriteString(w, "ok")
	})
	s := New(cfg)
	pc := &pipeConn{in: bytes.NewReader(in)}
	c := newConn(s, pc)
	c.ctx = context.Background()
	s.addConn(c)
	c.serve()
	return reqs, pc.out.String()
}

// FuzzRequests: any bytes are served without a panic, every request that
// reaches the handler is one net/http reads alike (method, target, Host,
// body framing, header fields), and the first answer is a well-formed
// response.
func FuzzRequests(f *testing.F) {
	for _, s := range []string{
		"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
		"POST /p?q=1 HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabcGET /2 HTTP/1.1\r\nHost: a\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTrailer: X\r\n\r\n3;e=1\r\nabc\r\n0\r\nX: 1\r\n\r\n",
		"GET http://b:8/x HTTP/1.1\r\nHost: a\r\n\r\n",
		"GET /a%20b HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a\r\nX: 1\r\n 2\r\n\r\n",
		"\r\nGET / HTTP/1.1\nHost: a\n\n",
		"PUT / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\nz",
		"GET / HTTP/1.1\r\nhost: a\r\nuser-agent: x\r\nACCEPT: */*\r\nPragma: no-cache\r\nX-Custom: 1\r\nx-custom: 2\r\nAccept:\r\n\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		reqs, out := serveBytes(in)
		if out != "" {
			if _, err := http.ReadResponse(bufio.NewReader(strings.NewReader(strings.TrimPrefix(out, "HTTP/1.1 100 Continue\r\n\r\n"))), nil); err != nil {
				t.Fatalf("answer %q: %v", out, err)
			}
		}
		if len(reqs) == 0 {
			return
		}
		// The first request, as net/http reads the same bytes (without the
		// empty lines before it, which RFC 9112 §2.2 says to skip and
		// net/http does not).
		lead := in
		for {
			if t, ok := bytes.CutPrefix(lead, []byte("\r\n")); ok {
				lead = t
			} else if t, ok := bytes.CutPrefix(lead, []byte("\n")); ok {
				lead = t
			} else {
				break
			}
		}
		want, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(lead)))
		if err != nil {
			t.Fatalf("served a request net/http refuses (%v): %q", err, in)
		}
		got := reqs[0]
		if got.Method != want.Method || got.RequestURI != want.RequestURI || got.Host != want.Host ||
			got.URL.String() != want.URL.String() || got.ContentLength != want.ContentLength || got.Close != want.Close {
			t.Fatalf("read differently from net/http:\n got %s %s host %q url %q len %d close %v\nwant %s %s host %q url %q len %d close %v\n%q",
				got.Method, got.RequestURI, got.Host, got.URL, got.ContentLength, got.Close,
				want.Method, want.RequestURI, want.Host, want.URL, want.ContentLength, want.Close, in)
		}
		if !reflect.DeepEqual(got.Header, want.Header) {
			t.Fatalf("header read differently from net/http:\n got %q\nwant %q\n%q", got.Header, want.Header, in)
		}
	})
}
