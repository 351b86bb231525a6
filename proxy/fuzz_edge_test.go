package proxy

import (
	"bufio"
	"io"
	"log"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/cellar-cache/cellar/internal/proxytest"
)

// FuzzRequestHandling sends hostile raw requests through the proxy over
// TCP: whatever the bytes, no handler panics, every answer is a
// well-formed HTTP response with a status net/http or the edge chose (no
// 502 or 500: the origin is healthy, so a 5xx other than net/http's 501
// and 505 or only-if-cached's 504 blames it for the client's bytes), and
// the proxy keeps serving.
func FuzzRequestHandling(f *testing.F) {
	for _, s := range []string{
		"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
		"POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
		"POST /p HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
		"POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
		"GET /obj HTTP/1.1\r\nHost: a\r\nRange: bytes=0-0,1-1,2-2,3-3,4-4,5-5,6-6,7-7,8-8,9-9,10-10,11-11,12-12,13-13,14-14,15-15,16-16,17-17\r\n\r\n",
		"GET /obj HTTP/1.1\r\nHost: a\r\nRange: bytes=-1,0-,5-2\r\n\r\n",
		"GET http://evil.com/x HTTP/1.1\r\nHost: a\r\n\r\n",
		"GET /x HTTP/1.1\r\nHost: EVIL.com:80\r\n\r\n",
		"GET /x HTTP/1.1\r\nHost: a\r\nX: a\x00b\r\n\r\n",
		"GET /x HTTP/1.1\r\nHost: a\r\nCache-Control: max-age=99999999999, only-if-cached\r\n\r\n",
		"GET /x HTTP/1.1\r\nHost: a\r\nIf-None-Match: *\r\nIf-Modified-Since: yesterday\r\n\r\n",
		"PURGE /x HTTP/1.1\r\nHost: a\r\n\r\n",
		"GET /x HTTP/1.1\r\nHost: a\r\n\r\nGET /y HTTP/1.1\r\nHost: a\r\n\r\n",
		"GET /x HTTP/1.0\r\n\r\n",
		"GET /x?" + strings.Repeat("a", 9000) + " HTTP/1.1\r\nHost: a\r\n\r\n",
	} {
		f.Add([]byte(s))
	}
	errLog := &proxytest.SyncBuffer{}
	body := strings.Repeat("0123456789", 100)
	r := newRig(f, func(w http.ResponseWriter, req *http.Request) {
		io.Copy(io.Discard, req.Body)
		w.Header().Set("Cache-Control", "max-age=60")
		io.WriteString(w, body)
	}, withProxyOptions(func(o *Options) {
		o.Limits.MaxBody = 64 << 10
		o.ClientBodyTimeout = 2 * time.Second
		o.WriteTimeout = 2 * time.Second
	}))
	r.front.Config.ErrorLog = log.New(errLog, "", 0)
	addr := r.front.Listener.Addr().String()
	f.Fuzz(func(t *testing.T, raw []byte) {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		c.Write(raw)
		if tc, ok := c.(*net.TCPConn); ok {
			tc.CloseWrite() // the request ends here
		}
		br := bufio.NewReader(c)
		for {
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				break // closed, or nothing more: net/http decides
			}
			_, berr := io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			switch resp.StatusCode {
			case http.StatusNotImplemented, http.StatusGatewayTimeout, http.StatusHTTPVersionNotSupported:
				// net/http's answers to unsupported framing and versions;
				// only-if-cached.
			default:
				if resp.StatusCode >= 500 {
					t.Errorf("status %d for %q", resp.StatusCode, raw)
				}
			}
			if berr != nil {
				break
			}
		}
		if s := errLog.String(); strings.Contains(s, "panic") {
			t.Fatalf("the proxy panicked on %q:\n%s", raw, s)
		}
	})
	// Still serving.
	resp, got := r.get("/after")
	if resp.StatusCode != 200 || got != body {
		f.Errorf("after fuzzing: %d, %d bytes", resp.StatusCode, len(got))
	}
}
