package listen

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cellar-cache/cellar/internal/h1/h1test"
)

// TestPROXYConnectionWritesAResponseInOneWritev: on a PROXY protocol
// connection, whose wrapper sits above the listener's Wrap, a response
// with a large body still reaches the wrapped connection in one writev.
func TestPROXYConnectionWritesAResponseInOneWritev(t *testing.T) {
	body := bytes.Repeat([]byte("0123456789"), 10<<10)
	wc := &h1test.WriteCounter{Vectored: true}
	g := startGroup(t, Options{
		Trusted:   func(a netip.Addr) bool { return a.IsLoopback() },
		Listeners: []Listener{{Address: "127.0.0.1:0", ProxyProtocol: true}},
		Wrap:      func(ln net.Listener) net.Listener { wc.Listener = ln; return wc },
		Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Length", strconv.Itoa(len(body)))
			w.Write(body)
		}),
	})
	conn, err := net.Dial("tcp", strings.TrimPrefix(g.Addrs()[0], "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(conn, "PROXY TCP4 203.0.113.7 127.0.0.1 5555 80\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, resp, nil); got != string(body) {
		t.Fatalf("%d bytes; want the %d-byte body", len(got), len(body))
	}
	if w, v := wc.Counts(); w != 0 || v != 1 {
		t.Errorf("the response took %d writes and %d writev calls; want 0 and 1", w, v)
	}
}
