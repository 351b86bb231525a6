package proxy

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/cellar-cache/cellar/listen"
)

func TestFramingFindsTheRequestWithBothLengths(t *testing.T) {
	get := "GET /a HTTP/1.1\r\nHost: h\r\n\r\n"
	cl := "POST /b HTTP/1.1\r\nHost: h\r\nContent-Length: 11\r\n\r\nhello\r\n\r\nxx"
	chunked := "POST /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n8\r\nX-A: b\r\n\r\n0\r\nTrailer: x\r\n\r\n"
	both := "POST /d HTTP/1.1\r\nHost: h\r\ncontent-length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
	for _, tc := range []struct {
		name string
		in   string
		want int64
	}{
		{"none", get + cl + chunked + get, 0},
		{"third", get + cl + both + get, 3},
		{"first", both, 1},
		{"after chunked data that looks like a header", chunked + both, 2},
		{"body that looks like a request is skipped", "POST /b HTTP/1.1\r\nContent-Length: 120\r\n\r\n" + both + strings.Repeat("z", 120-len(both)) + get, 0},
		{"tls is not followed", "\x16\x03\x01" + both, 0},
		{"upgrade stops it", "GET / HTTP/1.1\r\nUpgrade: websocket\r\n\r\n" + both, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// Fed whole, and byte by byte (reads split anywhere).
			for _, step := range []int{len(tc.in), 1, 7} {
				f := newFraming()
				for in := tc.in; len(in) > 0; {
					n := min(step, len(in))
					f.feed([]byte(in[:n]))
					in = in[n:]
				}
				if got := f.bad.Load(); got != tc.want {
					t.Errorf("reads of %d bytes: bad = %d, want %d", step, got, tc.want)
				}
			}
		})
	}
}

// The reproduction: a request with both Content-Length and
// Transfer-Encoding was served and the connection kept for the next
// pipelined request (RFC 9112 §6.1 says to close it).
func TestContentLengthWithTransferEncodingIs400AndCloses(t *testing.T) {
	r := newRig(t, func(w http.ResponseWriter, req *http.Request) {
		io.Copy(io.Discard, req.Body)
		io.WriteString(w, "served "+req.URL.Path)
	})
	c, err := net.Dial("tcp", r.front.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	io.WriteString(c, "GET /first HTTP/1.1\r\nHost: "+testHost+"\r\n\r\n"+
		"POST /smuggle HTTP/1.1\r\nHost: "+testHost+"\r\nContent-Length: 40\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"+
		"GET /next HTTP/1.1\r\nHost: "+testHost+"\r\n\r\n")
	br := bufio.NewReader(c)
	want := []int{200, 400}
	for i, code := range want {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("response %d: %v", i+1, err)
		}
		io.Copy(io.Discard, resp.Body)
		if resp.StatusCode != code {
			t.Fatalf("response %d: status %d, want %d", i+1, resp.StatusCode, code)
		}
	}
	if resp, err := http.ReadResponse(br, nil); err == nil {
		t.Fatalf("the connection stayed open: a response %d to the next pipelined request", resp.StatusCode)
	}
	if p := r.origin.lastRequest(); p != nil && p.URL.Path != "/first" {
		t.Errorf("the origin got %s", p.URL.Path)
	}
}

// Pipelined requests with honest framing keep being served on one
// connection.
func TestHonestPipelinedRequestsStayOnTheConnection(t *testing.T) {
	r := newRig(t, func(w http.ResponseWriter, req *http.Request) {
		b, _ := io.ReadAll(req.Body)
		io.WriteString(w, req.URL.Path+":"+string(b))
	})
	c, err := net.Dial("tcp", r.front.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	h := "Host: " + testHost + "\r\n"
	io.WriteString(c, "POST /cl HTTP/1.1\r\n"+h+"Content-Length: 5\r\n\r\nhello"+
		"POST /chunked HTTP/1.1\r\n"+h+"Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"+
		"DELETE /last HTTP/1.1\r\n"+h+"\r\n")
	br := bufio.NewReader(c)
	for _, want := range []string{"/cl:hello", "/chunked:abc", "/last:"} {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("%s: %v", want, err)
		}
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 || string(b) != want {
			t.Fatalf("got %d %q, want 200 %q", resp.StatusCode, b, want)
		}
	}
}

// FuzzFraming: any bytes, split anywhere, never panic the tracker nor grow
// its line buffer past its bound.
func FuzzFraming(f *testing.F) {
	f.Add([]byte("POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"), 3)
	f.Add([]byte("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffff\r\n"), 1)
	f.Add([]byte("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n7fffffffffffffff\r\nabc"), 2)
	f.Fuzz(func(t *testing.T, in []byte, step int) {
		step = max(1, step%64)
		fr := newFraming()
		for len(in) > 0 {
			n := min(step, len(in))
			fr.feed(in[:n])
			in = in[n:]
			if len(fr.line) > maxLinePrefix {
				t.Fatalf("line buffer %d bytes", len(fr.line))
			}
		}
	})
}

// TestListenerFollowsNoFramingForAnEngineThatFrames: once told that an
// engine which refuses ambiguous framing itself serves every connection
// (listen.EngineFramer), the listener's connections skip the scan and
// badFraming finds nothing on them; one that follows its framing is
// counted, so that badFraming looks its requests up.
func TestListenerFollowsNoFramingForAnEngineThatFrames(t *testing.T) {
	s := &Server{metrics: newMetrics()}
	for _, engineFrames := range []bool{false, true} {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		l := s.Listener(ln)
		if engineFrames {
			l.(listen.EngineFramer).EngineFramesRequests()
		}
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		sc, err := l.Accept()
		if err != nil {
			t.Fatal(err)
		}
		if got := sc.(*limitConn).framing != nil; got == engineFrames {
			t.Errorf("engine frames: %v; the connection follows the framing: %v", engineFrames, got)
		}
		if !engineFrames && framedConns.Load() < 1 {
			// badFraming would skip the lookup of this connection.
			t.Errorf("a connection that follows its framing is open, and framedConns is %d", framedConns.Load())
		}
		sc.Close()
		c.Close()
		l.Close()
	}
}
